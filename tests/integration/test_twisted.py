"""Twisted applications in corral workers, with real processes and clients:
a .tac whose `application` is Twisted's, loaded in the workers on Twisted's
asyncio reactor, its listening sockets held by the master and adopted.

One master serves the checks that do not change it; each check talks to its
own service. Clients are real: TCP connections, UDP datagrams, a Twisted
client, the DNS and HTTP examples answered over the network.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from corral.config import load
from corral.errors import ConfigError
from tests.helpers import free_port
from tests.integration.harness import Master, ask, running_pid, wait_until

pytestmark = pytest.mark.timeout(60)

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                                        "examples", "twisted"))

APP = """
import os
import sys
import time

# The master's probe waits here while HOLD exists beside the file, until GO
# does (the reload test: the master must serve meanwhile); the workers do not.
here = os.path.dirname(os.path.abspath(__file__))
if os.path.basename(sys.argv[0]) == "probe.py" and os.path.exists(os.path.join(here, "HOLD")):
    open(os.path.join(here, "PROBING"), "w").close()
    deadline = time.monotonic() + 20
    while not os.path.exists(os.path.join(here, "GO")) and time.monotonic() < deadline:
        time.sleep(0.02)
    if not os.path.exists(os.path.join(here, "GO")):
        open(os.path.join(here, "GAVE-UP"), "w").close()

from twisted.application import internet, service, strports
from twisted.internet import defer, protocol, reactor, task
from twisted.logger import Logger
from twisted.python import log

from corral.twisted import supervise


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        for line in data.splitlines():
            self.transport.write(b"%d %s\\n" % (os.getpid(), line))


class EchoFactory(protocol.Factory):
    protocol = Echo


class Answer(protocol.DatagramProtocol):
    def datagramReceived(self, data, addr):
        self.transport.write(b"%d %s" % (os.getpid(), data), addr)


class Slow(service.Service):
    \"\"\"Starts and stops with Deferreds; logs both ways Twisted can.\"\"\"
    log = Logger()

    def startService(self):
        service.Service.startService(self)
        self.log.info("slow starting on {{reactor}}", reactor=type(reactor).__name__)
        defer.fail(LookupError("nobody caught this"))  # dropped: Twisted logs it when collected
        return task.deferLater(reactor, 0.2, log.msg, "slow started")

    def stopService(self):
        service.Service.stopService(self)
        self.log.warn("slow stopping")
        return task.deferLater(reactor, 0.2, log.msg, "slow stopped")


class Broken(service.Service):
    def startService(self):
        return defer.fail(ValueError("no database"))


application = service.Application("twisted-app")
tcp = internet.TCPServer({tcp}, EchoFactory(), interface="127.0.0.1")
tcp.setName("echo")
supervise(tcp, stop_timeout=5)
tcp.setServiceParent(application)
udp = internet.UDPServer({udp}, Answer(), interface="127.0.0.1")
udp.setName("udp")
udp.setServiceParent(application)
ep = strports.service("tcp:{ep}:interface=127.0.0.1", EchoFactory())
ep.setName("endpoint")
ep.setServiceParent(application)
unix = internet.UNIXServer("echo.sock", EchoFactory())  # relative: the master's cwd
unix.setName("unix")
unix.setServiceParent(application)
gram = internet.UNIXDatagramServer("gram.sock", Answer())
gram.setName("gram")
gram.setServiceParent(application)
slow = Slow()
slow.setName("slow")
slow.setServiceParent(application)
broken = supervise(Broken(), restart="always")
broken.setName("broken")
broken.setServiceParent(application)
"""


@pytest.fixture(scope="module")
def app():
    ports = {"tcp": free_port(), "udp": free_port(socket.SOCK_DGRAM), "ep": free_port()}
    m = Master(APP.format(**ports), suffix=".tac")
    m.ports = ports
    m.start()
    try:
        for name in ("echo", "udp", "endpoint", "unix", "gram", "slow"):
            m.wait_state(name, "RUNNING")
        yield m
    finally:
        m.close()


def test_the_master_learns_the_tree_without_a_reactor(app):
    tree = app.call("tree")
    assert tree["name"] == "twisted-app"
    assert [c["name"] for c in tree["children"]] == ["echo", "udp", "endpoint", "unix", "gram",
                                                     "slow", "broken"]
    shown = {c["name"]: (c["kind"], c["class"]) for c in tree["children"]}
    assert shown["echo"] == ("twisted", "twisted.application.internet.TCPServer")
    assert shown["slow"] == ("twisted", "Slow")  # a class of the .tac itself
    # The names came from a throwaway child; each service has its own worker.
    pids = {app.status(name)["pid"] for name in ("echo", "udp", "endpoint", "slow")}
    assert len(pids) == 4 and app.proc.pid not in pids


def test_a_reload_probes_the_tac_off_the_masters_loop(app):
    """The probe of a reload (a child that loads the .tac) is waited on in a
    thread: the master answers while it runs, and applies the result after."""
    here = app.dir
    open(os.path.join(here, "HOLD"), "w").close()
    reload = subprocess.Popen([sys.executable, "-m", "corral", "reload", "--socket", app.socket],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: os.path.exists(os.path.join(here, "PROBING")),
                   message="the reload's probe to load the file")
        # Answered while the probe still waits for GO (a blocked loop would
        # answer only once it gave up, 20 s on).
        assert app.status("echo")["state"] == "RUNNING"
        assert not os.path.exists(os.path.join(here, "GAVE-UP"))
        open(os.path.join(here, "GO"), "w").close()
        out, _ = reload.communicate(timeout=30)
        assert reload.returncode == 0, out
        assert "no changes" in out
    finally:
        if reload.poll() is None:
            reload.kill()
            reload.wait()
        for name in ("HOLD", "PROBING", "GO"):
            if os.path.exists(os.path.join(here, name)):
                os.remove(os.path.join(here, name))
    assert not os.path.exists(os.path.join(here, "GAVE-UP"))


def test_a_tcp_server_serves_on_the_held_socket_and_refuses_nothing_across_sigkill(app):
    # The client loops; the kill falls between two of its requests (one in
    # flight would die with the worker, refused or not).
    port = app.ports["tcp"]
    before = running_pid(app, "echo")
    assert ask(port) == f"{before} ping"
    replies, refused, errors = [], 0, []
    for i in range(400):
        if i == 20:
            os.kill(before, signal.SIGKILL)
        try:
            replies.append(ask(port))
        except ConnectionRefusedError:
            refused += 1
        except OSError as exc:
            errors.append(repr(exc))
        if i > 20 and not replies[-1].startswith(f"{before} "):
            break
    assert refused == 0 and errors == [], (refused, errors)
    after = running_pid(app, "echo", other_than=before)
    assert replies[-1] == f"{after} ping"


def test_a_restart_under_a_client_loop_refuses_nobody(app):
    """`corral restart` of a Twisted server while a client connects again and
    again: the held socket's backlog keeps every connection for the new worker.
    The one connection the old worker may have accepted just before its
    stopService is closed with it, as under twistd (the client is sequential,
    so there is at most one)."""
    import threading

    port = app.ports["tcp"]
    before = running_pid(app, "echo")
    done = threading.Event()
    threading.Thread(target=lambda: (app.call("restart", names=["echo"]), done.set()),
                     daemon=True).start()
    served, refused, errors = 0, 0, []
    while not done.is_set() or served < 5:
        try:
            ask(port)
            served += 1
        except ConnectionRefusedError:
            refused += 1
        except OSError as exc:
            errors.append(repr(exc))
        if served > 5000:
            break
    closed = [e for e in errors if e.startswith("ConnectionError(\"closed after")]
    assert done.is_set() and refused == 0, (served, refused, errors)
    assert len(closed) <= 1 and len(closed) == len(errors), errors
    after = running_pid(app, "echo", other_than=before)
    assert ask(port) == f"{after} ping"


def test_udp_answers_through_an_adopted_datagram_socket(app):
    pid = running_pid(app, "udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(b"hello", ("127.0.0.1", app.ports["udp"]))
        data, _ = sock.recvfrom(100)
    assert data == f"{pid} hello".encode()


def test_unix_stream_and_datagram_servers_serve_on_held_sockets(app):
    unix_pid, gram_pid = running_pid(app, "unix"), running_pid(app, "gram")
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(os.path.join(app.dir, "echo.sock"))
        conn.sendall(b"unix\n")
        assert conn.recv(100) == f"{unix_pid} unix\n".encode()
    mine = os.path.join(app.dir, "client.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(mine)  # the server answers to the sender's address
        sock.sendto(b"gram", os.path.join(app.dir, "gram.sock"))
        data, _ = sock.recvfrom(100)
    os.remove(mine)
    assert data == f"{gram_pid} gram".encode()
    # The master bound them: they are its sockets, the workers' are copies.
    assert all(app.status(name)["pid"] != app.proc.pid for name in ("unix", "gram"))


def test_an_endpoint_service_is_adopted_and_a_twisted_client_is_served(app):
    pid = running_pid(app, "endpoint")
    # A real Twisted client, in a process of its own.
    client = textwrap.dedent(f"""
        from twisted.internet import defer, endpoints, protocol, reactor, task

        class Ask(protocol.Protocol):
            def connectionMade(self):
                self.transport.write(b"twisted\\n")
            def dataReceived(self, data):
                print(data.decode().strip(), flush=True)
                self.transport.loseConnection()
            def connectionLost(self, reason):
                reactor.stop()

        endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", {app.ports["ep"]})
        endpoints.connectProtocol(endpoint, Ask()).addErrback(lambda f: (print(f), reactor.stop()))
        reactor.run()
    """)
    out = subprocess.run([sys.executable, "-c", client], capture_output=True, text=True,
                         timeout=30).stdout
    assert out.strip() == f"{pid} twisted"


def test_deferred_lifecycle_and_twisted_logs_reach_corral_logs(app):
    app.wait_log(r"slow\[\d+\] +INFO __corral_tac__.Slow: slow starting on "
                 r"AsyncioSelectorReactor")
    app.wait_log(r"slow\[\d+\] +INFO -: slow started")
    # RUNNING only once the Deferred of startService fired.
    log = app.log_text()
    assert log.index("slow started") < log.index("slow: ready")
    out = app.cli("logs", "slow", "-n", "50").stdout
    assert "slow starting on AsyncioSelectorReactor" in out and "slow started" in out
    # An unhandled error in a Deferred, with its traceback, under the worker's name.
    app.wait_log(r"slow\[\d+\] +CRITICAL .*Unhandled error in Deferred")
    app.wait_log(r"slow\[\d+\] +.*LookupError: nobody caught this")


def test_a_deferred_that_fails_at_start_is_a_failed_start_not_retried(app):
    row = app.wait_state("broken", "FATAL")
    assert row["last_exit"] == "exit 78"
    app.wait_log(r"broken\[\d+\] +.*ValueError: no database")


def test_stop_awaits_stop_services_deferred(app):
    app.cli("stop", "slow")
    app.wait_state("slow", "STOPPED")
    app.wait_log(r"slow\[\d+\] +WARNING __corral_tac__.Slow: slow stopping")
    app.wait_log(r"slow\[\d+\] +INFO -: slow stopped")
    assert app.status("slow")["last_exit"] == "exit 0"
    app.cli("start", "slow")
    app.wait_state("slow", "RUNNING")


def test_bad_twisted_configs_get_one_clear_line(tmp_path):
    path = tmp_path / "bad.tac"
    path.write_text("from twisted.application import service\n\nraise KeyError('db')\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value) == f"{path}:3: raised KeyError: 'db'"
    path.write_text("from twisted.application import service\nx = 1\n")
    with pytest.raises(ConfigError, match="defines no variable 'application'"):
        load(path)
    path.write_text("from twisted.application import service\n"
                    "application = service.Application('x')\n"
                    "s = service.Service()\ns.supervision = {'restart': 'sometimes'}\n"
                    "s.setServiceParent(application)\n")
    with pytest.raises(ConfigError, match=r"service 'service': key 'restart'"):
        load(path)


def test_twisted_application_uid_gid_are_the_services_user_and_group(tmp_path):
    path = tmp_path / "app.py"  # a .py whose application is Twisted's, as a .tac
    uid, gid = os.getuid(), os.getgid()
    path.write_text("from twisted.application import internet, service\n"
                    f"application = service.Application('x', uid={uid}, gid={gid})\n"
                    "service.Service().setServiceParent(application)\n"
                    "internet.UNIXServer('s.sock', None).setServiceParent(application)\n")
    config = load(path)
    assert [(s.name, s.user, s.group, s.kind.name) for s in config.services] == \
        [("service", uid, gid, "twisted"), ("unixserver", uid, gid, "twisted")]
    unix = config.services[1]
    # Relative to the cwd, as under twistd (the master's, where the probe ran)
    assert unix.kind.sockets(unix) == [f"unix://{os.path.abspath('s.sock')}"]
    assert config.services[0].kind.describe(config.services[0])["class"] == \
        "twisted.application.service.Service"


LOW_PORT_APP = """
import os

from twisted.application import internet, service
from twisted.internet import protocol


class Who(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(b"uid %d gid %d\\n" % (os.getuid(), os.getgid()))


application = service.Application("low", uid={uid}, gid={gid})
server = internet.TCPServer({port}, protocol.Factory.forProtocol(Who), interface="127.0.0.1")
server.setName("low")
server.setServiceParent(application)
"""


def free_low_port():
    for port in range(1023, 600, -1):
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise AssertionError("no port below 1024 is free")


@pytest.mark.skipif(os.geteuid() != 0, reason="binding below 1024 and switching users need root")
def test_application_uid_gid_run_the_worker_and_a_port_below_1024_is_held_for_it():
    """Application(name, uid, gid) as twistd honours it: the worker runs as
    them, and serves on a port below 1024 that the master bound as root."""
    import pwd

    nobody = pwd.getpwnam("nobody")
    port = free_low_port()
    m = Master(LOW_PORT_APP.format(uid=nobody.pw_uid, gid=nobody.pw_gid, port=port),
               suffix=".tac")
    os.chmod(m.dir, 0o755)  # the worker loads the file as nobody
    os.chmod(m.config, 0o644)
    try:
        m.start()
        m.wait_state("low", "RUNNING")
        assert ask(port) == f"uid {nobody.pw_uid} gid {nobody.pw_gid}"
    finally:
        m.close()


def test_a_twistd_plugin_whose_make_service_raises_is_a_clear_config_error(tmp_path):
    from corral.loaders import plugin

    folder = tmp_path / "twisted" / "plugins"
    folder.mkdir(parents=True)
    (folder / "shaky_plugin.py").write_text(textwrap.dedent("""
        from zope.interface import implementer
        from twisted.application.service import IServiceMaker
        from twisted.plugin import IPlugin
        from twisted.python import usage

        class Options(usage.Options):
            optParameters = [["db", None, None, "The database."]]

        @implementer(IServiceMaker, IPlugin)
        class Maker:
            tapname = "shaky"
            description = "Needs a database."
            options = Options

            def makeService(self, options):
                raise ValueError(f"no database {options['db']!r}")

        maker = Maker()
    """))
    with pytest.raises(ConfigError) as err:
        plugin.load_twisted("shaky", ["--db", "pg"], str(tmp_path))
    assert str(err.value) == "plugin shaky: makeService raised ValueError: no database 'pg'"
    assert "shaky_plugin.py" in err.value.detail  # the traceback, shown before the line


TLS_APP = """
import os
from twisted.application import internet, service, strports
from twisted.internet import protocol, ssl


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(b"%d tls %s" % (os.getpid(), data))


factory = protocol.Factory.forProtocol(Echo)
here = os.path.dirname(os.path.abspath(__file__))
key, cert = os.path.join(here, "key.pem"), os.path.join(here, "cert.pem")
application = service.Application("tls")
tls = internet.SSLServer({tls}, factory, ssl.DefaultOpenSSLContextFactory(key, cert),
                         interface="127.0.0.1")
tls.setName("tls")
tls.setServiceParent(application)
ep = strports.service(f"ssl:{ep}:interface=127.0.0.1:privateKey={{key}}:certKey={{cert}}", factory)
ep.setName("tlsendpoint")
ep.setServiceParent(application)
"""


def _self_signed(folder):
    """key.pem and cert.pem for 127.0.0.1, made with cryptography (pyOpenSSL's own)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    with open(os.path.join(folder, "key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(folder, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _ask_tls(port, line):
    import ssl

    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # self-signed
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as conn:
            conn.sendall(line)
            return conn.recv(100)


def test_ssl_servers_serve_tls_on_held_sockets_across_a_sigkill(tmp_path):
    """internet.SSLServer and an ssl: endpoint string: the master binds,
    the worker wraps what it adopts in TLS, and serves again after a SIGKILL."""
    pytest.importorskip("OpenSSL", reason="Twisted's TLS needs pyOpenSSL (twisted[tls])")
    ports = {"tls": free_port(), "ep": free_port()}
    m = Master(TLS_APP.format(**ports), suffix=".tac")
    _self_signed(m.dir)
    m.start()
    try:
        for name, port in (("tls", ports["tls"]), ("tlsendpoint", ports["ep"])):
            pid = running_pid(m, name)
            assert _ask_tls(port, b"hello") == f"{pid} tls hello".encode()
        before = running_pid(m, "tls")
        os.kill(before, signal.SIGKILL)
        after = running_pid(m, "tls", other_than=before)  # meanwhile the backlog holds clients
        assert _ask_tls(ports["tls"], b"again") == f"{after} tls again".encode()
    finally:
        m.close()


WATCHDOG_TAC = """
import time
from twisted.application import service
from twisted.internet import reactor, task
from twisted.python import log

from corral.twisted import supervise


class Stuck(service.Service):
    \"\"\"Blocks the reactor (and so the worker's loop) half a second after it starts.\"\"\"

    def startService(self):
        service.Service.startService(self)
        log.msg("stuck up")
        reactor.callLater(0.5, time.sleep, 60)


class Fine(service.Service):
    def startService(self):
        service.Service.startService(self)
        self.ticks = task.LoopingCall(lambda: None)
        self.ticks.start(0.05)


application = service.Application("watched")
for name, cls in (("stuck", Stuck), ("fine", Fine)):
    svc = supervise(cls(), watchdog=0.6)
    svc.setName(name)
    svc.setServiceParent(application)
"""


def test_the_watchdog_kills_a_twisted_worker_whose_reactor_is_blocked():
    """The heartbeat runs on the loop Twisted's reactor shares: code that
    blocks the reactor stops it, and the master kills and restarts the
    worker; a busy but turning reactor is left alone."""
    m = Master(WATCHDOG_TAC, suffix=".tac")
    m.start()
    try:
        first = m.wait_state("stuck", "RUNNING")["pid"]
        m.wait_log(r"stuck: killed by the watchdog: no heartbeat for 0\.[67] s")
        running_pid(m, "stuck", other_than=first)
        m.wait_log(r"stuck\[\d+\] +.*stuck up", count=2)
        fine = m.status("fine")
        assert fine["state"] == "RUNNING" and fine["restarts"] == 0
    finally:
        m.close()
