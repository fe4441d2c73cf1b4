"""Listening sockets the master holds (supervisor/sockets.py), with real processes:
no connection refused across a worker's SIGKILL or a rolling restart, for a
Python tree and for a socket-activated command; numprocs sharing one socket;
LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES as systemd sets them; bind failures,
bad `sockets` entries, reload and master exit."""

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from corral.config import load
from corral.errors import ConfigError
from tests.helpers import free_port
from tests.integration.harness import ask, wait_until

PY = sys.executable
EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                                        "examples", "activation"))
ECHO_ACTIVATED = os.path.join(EXAMPLES, "echo_activated.py")


class Clients:
    """Connect-echo-close in a loop (in a thread) until stopped; keep every outcome."""

    def __init__(self, port):
        self.port = port
        self.replies = []
        self.refused = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.replies.append(ask(self.port))
            except ConnectionRefusedError:
                self.refused += 1
            except OSError as exc:
                self.errors.append(repr(exc))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


def tree_config(port, numprocs=1, mark=None):
    """A Python config: an echo TCPServer that answers "PID INSTANCE: line"."""
    return f"""
import asyncio, os
import corral
from corral.services.internet import TCPServer

class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        who = f"{{os.getpid()}} {{os.environ['CORRAL_INSTANCE']}}: ".encode()
        self.transport.write(who + data)

class Marked(TCPServer):
    def privilegedStartService(self):
        if {mark!r}:
            with open({mark!r}, "a") as f:
                f.write(f"{{os.getpid()}}\\n")
        super().privilegedStartService()

application = corral.Application("sockets")
server = Marked({port}, Echo, interface="127.0.0.1")
server.setName("echo")
server.supervise(numprocs={numprocs}, backoff_initial=0.05, backoff_jitter=0, max_restarts=100)
server.setServiceParent(application)
"""


def activated_config(port, numprocs=1, extra_sockets=()):
    sockets = json.dumps([f"tcp://127.0.0.1:{port}", *extra_sockets])
    return f"""
[services.echo]
command = {json.dumps([PY, ECHO_ACTIVATED])}
sockets = {sockets}
numprocs = {numprocs}
backoff_initial = 0.05
backoff_jitter = 0
max_restarts = 100
stop_timeout = 5
"""


def pid_of_reply(reply):
    """"PID INSTANCE: line" (tree) or "NAME PID: line" (activated) -> PID."""
    head = reply.split(":")[0].split()
    return int(head[0]) if head[0].isdigit() else int(head[1])


def kill_under_clients(m, port, name="echo"):
    """SIGKILL the worker while a client loops: no refusal, and the first reply
    after the kill comes from the new worker."""
    old = m.wait_state(name, "RUNNING")["pid"]
    assert pid_of_reply(ask(port)) == old
    start = time.monotonic()
    killed_at = None
    after_kill = []
    refused, errors = 0, []
    while time.monotonic() - start < 1.0 or not after_kill:
        assert time.monotonic() - start < 10, "no reply after the kill"
        if killed_at is None and time.monotonic() - start >= 0.25:
            os.kill(old, signal.SIGKILL)
            killed_at = time.monotonic()
        try:
            reply = ask(port)
        except ConnectionRefusedError:
            refused += 1
            continue
        except OSError as exc:
            errors.append(repr(exc))
            continue
        if killed_at is not None:
            after_kill.append(reply)
    assert refused == 0 and errors == [], (refused, errors, m.output())
    assert pid_of_reply(after_kill[0]) != old, after_kill[:3]
    new = m.wait_state(name, "RUNNING")["pid"]
    assert new != old and pid_of_reply(after_kill[-1]) == new
    return old, new


# -- a Python tree: the master binds, the worker serves ---------------------------


@pytest.mark.timeout(30)
def test_tree_socket_survives_sigkill_and_closes_with_the_master(master, tmp_path):
    port = free_port()
    mark = str(tmp_path / "privileged.txt")
    m = master(tree_config(port, mark=mark), suffix=".py")
    kill_under_clients(m, port)
    # privilegedStartService ran once, in the master, not in either worker.
    with open(mark) as f:
        assert f.read().split() == [str(m.proc.pid)]
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.timeout(30)
def test_tree_that_cannot_bind_is_fatal_at_once(master):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        m = master(tree_config(port), suffix=".py")
        row = m.wait_state("echo", "FATAL")
        assert "cannot bind its sockets" in row["description"], row
        m.wait_log(r"echo: Traceback \(most recent call last\)")
        m.wait_log(r"echo: FATAL: cannot bind its sockets: .*cannot bind 127.0.0.1:\d+")
        time.sleep(0.2)
        row = m.status("echo")
        assert row["state"] == "FATAL" and row["pid"] is None and row["restarts"] == 0


# -- a command by socket activation ------------------------------------------------

PROBE = r"""
import json, os, socket, time
kinds = {}
for fd in range(3, 3 + int(os.environ["LISTEN_FDS"])):
    s = socket.socket(fileno=fd)
    kinds[fd] = [s.family.name, s.type.name]
    s.detach()
print(json.dumps({"pid": os.getpid(), "listen_pid": os.environ["LISTEN_PID"],
                  "listen_fds": os.environ["LISTEN_FDS"],
                  "names": os.environ["LISTEN_FDNAMES"], "kinds": kinds,
                  "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
                  "instance": os.environ["CORRAL_INSTANCE"]}), flush=True)
time.sleep(60)
"""


@pytest.mark.timeout(30)
def test_activation_environment_is_systemds(master):
    tcp, udp = free_port(), free_port(socket.SOCK_DGRAM)
    m = master(f"""
[services.probe]
command = {json.dumps([PY, "-c", PROBE])}
sockets = ["tcp://127.0.0.1:{tcp}#web", "unix://p.sock", "udp://127.0.0.1:{udp}#dns"]
""")
    line = m.wait_log(r"probe\[\d+\] +\{")
    text = next(ln for ln in m.log_text().splitlines() if re.search(r"probe\[\d+\] +\{", ln))
    got = json.loads(text.split("] ", 1)[1].lstrip())
    assert got["listen_pid"] == str(got["pid"])  # LISTEN_PID is the command's own pid
    assert got["pid"] == m.status("probe")["pid"]
    assert got["listen_fds"] == "3"
    assert got["names"] == "web:probe:dns"  # #name, else the service's name
    assert got["kinds"] == {"3": ["AF_INET", "SOCK_STREAM"], "4": ["AF_UNIX", "SOCK_STREAM"],
                            "5": ["AF_INET", "SOCK_DGRAM"]}
    # Nothing else leaked: 0-2, the three sockets, and listdir's own fd.
    assert got["fds"][:6] == [0, 1, 2, 3, 4, 5] and len(got["fds"]) <= 7, got["fds"]
    assert os.path.exists(os.path.join(m.dir, "p.sock"))
    assert line


@pytest.mark.timeout(30)
def test_activated_command_socket_survives_sigkill(master):
    port, udp = free_port(), free_port(socket.SOCK_DGRAM)
    m = master(activated_config(port, extra_sockets=[f"udp://127.0.0.1:{udp}#udp",
                                                     "unix://echo.sock#local"]))
    _, new = kill_under_clients(m, port)
    assert ask(port).startswith(f"echo {new}: ")
    with socket.socket(socket.AF_UNIX) as conn:  # the unix socket, fd 5
        conn.settimeout(5)
        conn.connect(os.path.join(m.dir, "echo.sock"))
        conn.sendall(b"hi\n")
        assert conn.recv(100) == f"local {new}: hi\n".encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram:  # fd 4
        dgram.settimeout(5)
        dgram.sendto(b"yo", ("127.0.0.1", udp))
        assert dgram.recv(100) == f"udp {new}: yo".encode()
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    assert not os.path.exists(os.path.join(m.dir, "echo.sock"))  # closed and unlinked
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# -- numprocs share one socket ----------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["tree", "command"])
def test_numprocs_share_one_socket(master, kind):
    port = free_port()
    if kind == "tree":
        m = master(tree_config(port, numprocs=2), suffix=".py")
    else:
        m = master(activated_config(port, numprocs=2))
    pids = {m.wait_state(f"echo:{i}", "RUNNING")["pid"] for i in range(2)}
    seen = set()
    wait_until(lambda: seen.add(pid_of_reply(ask(port))) or seen == pids, timeout=8,
               interval=0, message=f"replies from both {pids}", dump=m.output)


# -- rolling restart ----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_rolling_restart_refuses_nobody_and_replaces_every_instance(master):
    port = free_port()
    m = master(tree_config(port, numprocs=2), suffix=".py")
    old = {m.wait_state(f"echo:{i}", "RUNNING")["pid"] for i in range(2)}
    seen_before = len(m.events())
    with Clients(port) as clients:
        time.sleep(0.1)
        done = m.cli("restart", "--rolling", "echo")
        time.sleep(0.1)
    assert done.returncode == 0, done.stdout + done.stderr
    assert clients.refused == 0, (clients.refused, clients.errors)
    # A stopping instance drains: the connection it had accepted is answered.
    assert clients.errors == []
    assert len(clients.replies) > 10
    new = {m.status(f"echo:{i}")["pid"] for i in range(2)}
    assert not new & old and None not in new
    # Each new instance was RUNNING before the next old one stopped.
    moves = [(e["name"], e["to"]) for e in m.events()[seen_before:]]
    assert moves.index(("echo:0", "RUNNING")) < moves.index(("echo:1", "STOPPING")), moves
    assert {pid_of_reply(r) for r in clients.replies[-5:]} <= new


# -- config and reload ------------------------------------------------------------


@pytest.mark.parametrize("value, message", [
    ('"tcp://127.0.0.1:80"', "must be a list of socket URLs"),
    ('["http://127.0.0.1:80"]', "the scheme must be tcp://, udp:// or unix://"),
    ('["tcp://127.0.0.1"]', "give HOST:PORT with a port from 1 to 65535"),
    ('["tcp://127.0.0.1:0"]', "port from 1 to 65535"),
    ('["udp://127.0.0.1:70000"]', "port from 1 to 65535"),
    ('["tcp://[::1:80"]', "an IPv6 host is written [::1]"),
    ('["tcp://a/b:80"]', "bad host"),
    ('["unix://"]', "give a path"),
    ('["tcp://127.0.0.1:80#a:b"]', "the name after '#'"),
    ('["tcp://127.0.0.1:80", "tcp://127.0.0.1:80#again"]', "listed twice"),
    ("[1]", "must be a list of socket URLs"),
])
def test_bad_sockets_entry_is_a_config_error(tmp_path, value, message):
    path = tmp_path / "corral.toml"
    path.write_text(f'[services.web]\ncommand = ["/bin/true"]\nsockets = {value}\n')
    with pytest.raises(ConfigError) as info:
        load(str(path))
    text = str(info.value)
    assert "sockets" in text and "web" in text and message in text, text


def test_sockets_are_for_commands_only(tmp_path):
    path = tmp_path / "app.py"
    path.write_text("import corral\napplication = corral.Application('a')\n"
                    "corral.Service().supervise(sockets=['tcp://127.0.0.1:8000'])"
                    ".setServiceParent(application)\n")
    with pytest.raises(ConfigError, match="sockets.*is for commands"):
        load(str(path))


def test_good_sockets_are_normalised(tmp_path):
    path = tmp_path / "corral.toml"
    path.write_text('[services.web]\ncommand = ["/bin/true"]\nsockets = '
                    '["tcp://*:80", "tcp://[::1]:81#v6", "udp://:53", "unix://run/a.sock",'
                    ' "unix://@abstract"]\n')
    spec = {s.name: s for s in load(str(path)).services}["web"]
    assert spec.sockets == ("tcp://:80", "tcp://[::1]:81#v6", "udp://:53",
                            f"unix://{tmp_path}/run/a.sock", "unix://@abstract")


@pytest.mark.timeout(30)
def test_bad_sockets_entry_starts_nothing(master):
    m = master('[services.web]\ncommand = ["/bin/sleep", "10"]\nsockets = ["tcp://x"]\n',
               start=False)
    done = m.cli("run", m.config)
    assert done.returncode != 0
    assert "web" in done.stderr and "sockets" in done.stderr, done.stderr


@pytest.mark.timeout(30)
def test_reload_closes_a_changed_services_socket_before_binding_the_new(master):
    first, second = free_port(), free_port()
    m = master(activated_config(first))
    old = m.wait_state("echo", "RUNNING")["pid"]
    assert pid_of_reply(ask(first)) == old
    with open(m.config, "w") as f:
        f.write(activated_config(second))
    result = m.call("reload")
    assert result["changed"] == ["echo"]
    new = m.wait_state("echo", "RUNNING")["pid"]
    assert new != old and pid_of_reply(ask(second)) == new
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", first), timeout=2).close()


# -- gunicorn, if installed ---------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.skipif(importlib.util.find_spec("gunicorn") is None, reason="gunicorn not installed")
def test_gunicorn_serves_on_the_held_socket_across_a_restart(master):
    import urllib.request

    port = free_port()
    m = master(f"""
[services.web]
command = {json.dumps([PY, "-m", "gunicorn", "--workers", "1", "wsgi_app:app"])}
sockets = ["tcp://127.0.0.1:{port}#http"]
cwd = {json.dumps(EXAMPLES)}
""")
    m.wait_state("web", "RUNNING")

    def get():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as reply:
            return reply.read().decode()

    first = get()
    assert first.startswith("hello from pid"), first
    old = m.status("web")["pid"]
    restarting = subprocess.Popen([PY, "-m", "corral", "restart", "web", "--socket", m.socket],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: m.status("web")["pid"] != old, dump=m.output,
                   message="the restart to begin")
        assert get().startswith("hello from pid")  # waits in the backlog, never refused
    finally:
        assert restarting.wait(20) == 0, restarting.stdout.read()
    assert get().startswith("hello from pid")
