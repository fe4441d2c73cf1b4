"""corral.services.internet in-process: real sockets on 127.0.0.1 port 0, a real loop.

Every wait has a deadline (eventually(), asyncio.wait_for); no sleep stands
in for synchronisation.
"""

import asyncio
import datetime
import errno
import importlib.util
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess

import pytest

import corral
from corral.service import MultiService
from corral.services.internet import (
    ClientStopped,
    SSLClient,
    SSLServer,
    TCPClient,
    TCPServer,
    UDPServer,
    UNIXClient,
    UNIXDatagramServer,
    UNIXServer,
    listening_sockets,
)
from tests.helpers import eventually, run

pytestmark = pytest.mark.timeout(30)

DEADLINE = 5.0
EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


class Echo(asyncio.Protocol):
    """Echoes; registers its transport in `connections` so a test can drop them."""

    def __init__(self, connections=None):
        self.connections = connections if connections is not None else set()

    def connection_made(self, transport):
        self.transport = transport
        self.connections.add(transport)

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.connections.discard(self.transport)


class EchoDatagram(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class Collect(asyncio.Protocol):
    """A client protocol that keeps what it receives."""

    def connection_made(self, transport):
        self.transport = transport
        self.received = b""
        self.lost = False

    def data_received(self, data):
        self.received += data

    def connection_lost(self, exc):
        self.lost = True


async def echo_over(reader, writer, payload=b"ping\n"):
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), DEADLINE)


async def tcp_echo(port, payload=b"ping\n", **kw):
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, **kw), DEADLINE)
    try:
        return await echo_over(reader, writer, payload)
    finally:
        writer.close()


def drop(connections):
    for transport in list(connections):
        transport.close()


# -- TCP ---------------------------------------------------------------------


def test_tcp_server_echoes_and_reports_its_port():
    async def go():
        service = TCPServer(0, Echo, interface="127.0.0.1")
        service.privilegedStartService()
        assert service.port != 0 and service.address == ("127.0.0.1", service.port)
        await service.startService()
        assert service.running
        assert await tcp_echo(service.port) == b"ping\n"
        await service.stopService()
        assert not service.running and service.server is None
        service.closeSocket()

    run(go())


def test_default_interface_is_all_ipv4_interfaces():
    service = TCPServer(0, Echo)
    try:
        service.privilegedStartService()
        assert service.address[0] == "0.0.0.0"
    finally:
        service.closeSocket()


def test_privileged_start_binds_once():
    service = TCPServer(0, Echo, interface="127.0.0.1")
    try:
        service.privilegedStartService()
        sock, fd, port = service.socket, service.socket.fileno(), service.port
        service.privilegedStartService()
        assert service.socket is sock and sock.fileno() == fd and service.port == port
        assert listening_sockets(service) == [sock]
    finally:
        service.closeSocket()
    assert service.socket is None and listening_sockets(service) == []


def test_start_without_privileged_start_binds_itself():
    async def go():
        service = TCPServer(0, Echo, interface="127.0.0.1")
        await service.startService()
        assert service.socket is not None and service.port != 0
        assert await tcp_echo(service.port) == b"ping\n"
        await service.stopService()
        service.closeSocket()

    run(go())


def test_a_socket_whose_fd_was_closed_is_bound_again():
    # A worker's bootstrap may close every inherited fd it was not told to keep.
    service = TCPServer(0, Echo, interface="127.0.0.1")
    try:
        service.privilegedStartService()
        old, port = service.socket, service.port
        os.close(old.fileno())
        service.privilegedStartService()
        assert service.socket is not old and old.fileno() == -1  # detached, not closed twice
        assert service.port == port
    finally:
        service.closeSocket()


def test_an_assigned_socket_is_adopted_not_bound_again():
    with socket.socket() as given:
        given.bind(("127.0.0.1", 0))
        given.listen()
        service = TCPServer(0, Echo, interface="127.0.0.1")
        service.socket = given
        service.privilegedStartService()
        assert service.socket is given and service.port == given.getsockname()[1]


def test_bind_error_names_the_service():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        service = TCPServer(taken.getsockname()[1], Echo, interface="127.0.0.1")
        service.setName("web")
        with pytest.raises(OSError) as info:
            service.privilegedStartService()
    assert info.value.errno == errno.EADDRINUSE and "'web'" in str(info.value)
    assert service.socket is None


def test_stop_keeps_the_held_socket_and_restart_serves_the_waiting_client():
    async def go():
        connections = set()
        service = TCPServer(0, lambda: Echo(connections), interface="127.0.0.1")
        service.privilegedStartService()
        held, port = service.socket, service.port
        await service.startService()
        assert await tcp_echo(port, b"one\n") == b"one\n"
        await service.stopService()
        assert service.server is None and held.fileno() != -1

        # Nobody serves now, yet a client is not refused: it waits in the backlog.
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), DEADLINE)
        writer.write(b"waited\n")
        await writer.drain()
        assert not connections

        await service.startService()
        assert service.socket is held and service.port == port
        assert await asyncio.wait_for(reader.readexactly(7), DEADLINE) == b"waited\n"
        writer.close()
        assert await tcp_echo(port, b"again\n") == b"again\n"

        await service.stopService()
        drop(connections)
        service.closeSocket()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)

    run(go())


def test_forked_child_serves_the_parents_socket_without_binding():
    """The master binds, the worker inherits: the design this module exists for."""
    tree = MultiService()
    service = TCPServer(0, Echo, interface="127.0.0.1")
    service.setServiceParent(tree)
    tree.privilegedStartService()
    (held,) = listening_sockets(tree)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        try:
            os.close(r)

            async def worker():
                tree.privilegedStartService()  # holds the socket already: no bind
                await tree.startService()
                os.write(w, b"%d\n" % service.socket.fileno())
                await asyncio.Event().wait()

            asyncio.run(worker())
        finally:
            os._exit(1)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], DEADLINE)
        assert ready, "the child did not report"
        assert int(os.read(r, 64)) == held.fileno()
        with socket.create_connection(("127.0.0.1", service.port), timeout=DEADLINE) as conn:
            conn.sendall(b"from the child\n")
            assert conn.recv(64) == b"from the child\n"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)

    async def parent():
        # The worker died; the parent still holds the socket, so the next
        # server (here: the parent itself) picks up where it left off.
        with socket.create_connection(("127.0.0.1", service.port), timeout=DEADLINE) as conn:
            conn.sendall(b"queued\n")
            await tree.startService()
            conn.setblocking(False)
            data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(conn, 64), DEADLINE)
            assert data == b"queued\n"
        await tree.stopService()

    try:
        run(parent())
    finally:
        service.closeSocket()


# -- UNIX --------------------------------------------------------------------


def test_unix_server_echoes_replaces_a_stale_path_and_sets_the_mode(short_dir):
    path = os.path.join(short_dir, "echo.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # leaves the file behind, as a crashed process would

    async def go():
        service = UNIXServer(path, Echo, mode=0o600)
        service.privilegedStartService()
        assert os.stat(path).st_mode & 0o777 == 0o600
        await service.startService()
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), DEADLINE)
        assert await echo_over(reader, writer) == b"ping\n"
        writer.close()
        await service.stopService()
        assert os.path.exists(path)  # still held: clients wait, they are not refused
        await service.startService()
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), DEADLINE)
        assert await echo_over(reader, writer, b"again\n") == b"again\n"
        writer.close()
        await service.stopService()
        service.closeSocket()
        assert not os.path.exists(path)

    run(go())


def test_unix_server_refuses_a_path_in_use(short_dir):
    path = os.path.join(short_dir, "busy.sock")
    first = UNIXServer(path, Echo)
    first.privilegedStartService()
    try:
        second = UNIXServer(path, Echo)
        with pytest.raises(OSError) as info:
            second.privilegedStartService()
        assert info.value.errno == errno.EADDRINUSE
        assert os.path.exists(path)
    finally:
        first.closeSocket()


def test_unix_datagram_server_echoes(short_dir):
    path = os.path.join(short_dir, "dgram.sock")
    client_path = os.path.join(short_dir, "client.sock")

    async def go():
        service = UNIXDatagramServer(path, EchoDatagram)
        service.privilegedStartService()
        await service.startService()
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.bind(client_path)
            client.setblocking(False)
            await loop.sock_sendto(client, b"hello", path)
            data, _ = await asyncio.wait_for(loop.sock_recvfrom(client, 64), DEADLINE)
        assert data == b"hello"
        await service.stopService()
        assert service.socket.fileno() != -1 and service.transport is None
        service.closeSocket()
        assert not os.path.exists(path)

    run(go())


def test_unix_client_connects(short_dir):
    path = os.path.join(short_dir, "c.sock")

    async def go():
        server = UNIXServer(path, Echo)
        await server.startService()
        client = UNIXClient(path, Collect, initial_delay=0.01, jitter=0)
        await client.startService()
        protocol = await asyncio.wait_for(client.whenConnected(), DEADLINE)
        protocol.transport.write(b"unix\n")
        await eventually(lambda: protocol.received == b"unix\n", "the echo")
        await client.stopService()
        assert protocol.lost and client.protocol is None
        await server.stopService()
        server.closeSocket()

    run(go())


# -- UDP ---------------------------------------------------------------------


def test_udp_server_echoes_and_survives_a_restart():
    async def go():
        service = UDPServer(0, EchoDatagram, interface="127.0.0.1")
        service.privilegedStartService()
        port, held = service.port, service.socket
        assert port != 0 and held.type == socket.SOCK_DGRAM
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            for word in (b"first", b"second"):
                await service.startService()
                assert isinstance(service.protocol, EchoDatagram)
                await loop.sock_sendto(client, word, ("127.0.0.1", port))
                data, _ = await asyncio.wait_for(loop.sock_recvfrom(client, 64), DEADLINE)
                assert data == word
                await service.stopService()
                assert service.socket is held and held.fileno() != -1
        service.closeSocket()

    run(go())


# -- SSL ---------------------------------------------------------------------


def make_certificate(folder):
    """A self-signed cert and key for localhost/127.0.0.1: (cert_path, key_path)."""
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl binary is available")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
             "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=20)
        return cert, key
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256()))
    with open(cert, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key, "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return cert, key


def test_ssl_server_and_client(tmp_path):
    cert, key = make_certificate(str(tmp_path))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=cert)

    async def go():
        connections = set()
        service = SSLServer(0, lambda: Echo(connections), server_context, interface="127.0.0.1")
        service.privilegedStartService()
        await service.startService()
        assert await tcp_echo(service.port, b"secret\n", ssl=client_context) == b"secret\n"

        client = SSLClient("127.0.0.1", service.port, Collect, client_context,
                           initial_delay=0.01, jitter=0)
        await client.startService()
        protocol = await asyncio.wait_for(client.whenConnected(), DEADLINE)
        assert protocol.transport.get_extra_info("ssl_object") is not None
        protocol.transport.write(b"tls\n")
        await eventually(lambda: protocol.received == b"tls\n", "the TLS echo")
        await client.stopService()

        await service.stopService()
        drop(connections)
        service.closeSocket()

    run(go())


# -- clients -----------------------------------------------------------------


def test_backoff_delays():
    client = TCPClient("127.0.0.1", 1, Collect, initial_delay=0.5, factor=2, max_delay=3,
                       jitter=0)
    assert [client.delay(n) for n in (1, 2, 3, 4, 5, 10_000)] == [0.5, 1, 2, 3, 3, 3]
    jittery = TCPClient("127.0.0.1", 1, Collect, initial_delay=1, jitter=0.5)
    assert all(1 <= jittery.delay(1) <= 1.5 for _ in range(50))


def test_tcp_client_reconnects_when_the_server_comes_back():
    async def go():
        connections = set()
        # drain=0: the server goes away with its connection open, at once.
        server = TCPServer(0, lambda: Echo(connections), interface="127.0.0.1", drain=0)
        await server.startService()
        port = server.port

        client = TCPClient("127.0.0.1", port, Collect, initial_delay=0.01, factor=2,
                           max_delay=0.05, jitter=0)
        await client.startService()
        first = await asyncio.wait_for(client.whenConnected(), DEADLINE)
        first.transport.write(b"one\n")
        await eventually(lambda: first.received == b"one\n", "the first echo")

        # The server goes away for good: connects are refused, the client backs off.
        await server.stopService()
        server.closeSocket()
        drop(connections)
        await eventually(lambda: first.lost and client.protocol is None, "the loss")
        await eventually(lambda: client.failedAttempts >= 3, "refused reconnects")
        waiting = asyncio.ensure_future(client.whenConnected())
        await asyncio.sleep(0)
        assert not waiting.done()

        # It comes back on the same port; the client finds it.
        server = TCPServer(port, lambda: Echo(connections), interface="127.0.0.1")
        await server.startService()
        second = await asyncio.wait_for(waiting, DEADLINE)
        assert second is not first and second is client.protocol
        assert client.failedAttempts == 0
        second.transport.write(b"two\n")
        await eventually(lambda: second.received == b"two\n", "the second echo")

        await client.stopService()
        assert second.lost and client.transport is None
        await server.stopService()
        drop(connections)
        server.closeSocket()

    run(go())


def test_when_connected_gives_up_after_failures_and_on_stop():
    with socket.socket() as s:  # a port with nobody behind it
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def go():
        client = TCPClient("127.0.0.1", port, Collect, initial_delay=0.01, jitter=0)
        await client.startService()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(client.whenConnected(failAfterFailures=2), DEADLINE)
        waiting = asyncio.ensure_future(client.whenConnected())
        await asyncio.sleep(0)
        await client.stopService()
        with pytest.raises(ClientStopped):
            await asyncio.wait_for(waiting, DEADLINE)

    run(go())


# -- trees -------------------------------------------------------------------


def test_listening_sockets_walks_the_tree(short_dir):
    app = corral.Application("app")
    top = MultiService()
    top.setName("top")
    top.setServiceParent(app)
    tcp = TCPServer(0, Echo, interface="127.0.0.1")
    tcp.setServiceParent(top)
    inner = MultiService()
    inner.setServiceParent(top)
    unix = UNIXServer(os.path.join(short_dir, "t.sock"), Echo)
    unix.setServiceParent(inner)
    TCPClient("127.0.0.1", 1, Collect).setServiceParent(inner)
    udp = UDPServer(0, EchoDatagram, interface="127.0.0.1")
    udp.setServiceParent(app)
    assert listening_sockets(app) == []
    app.privilegedStartService()
    try:
        assert listening_sockets(app) == [tcp.socket, unix.socket, udp.socket]
        assert listening_sockets(inner) == [unix.socket]
    finally:
        for server in (tcp, unix, udp):
            server.closeSocket()


def test_names_are_exported_from_corral():
    assert corral.TCPServer is TCPServer and corral.UNIXDatagramServer is UNIXDatagramServer
    assert corral.listening_sockets is listening_sockets
    from corral.services.timer import TimerService

    assert corral.TimerService is TimerService


def load_dns_example():
    spec = importlib.util.spec_from_file_location(
        "corral_example_dns", os.path.join(EXAMPLES, "dns", "dns.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dns_example_tree_answers_over_tcp_and_udp():
    dns = load_dns_example()
    assert [s.name for s in dns.application] == ["dns"]
    assert [s.name for s in dns.application.getServiceNamed("dns")] == ["tcp", "udp"]

    tree = dns.make_service(port=0)
    tcp, udp = tree.getServiceNamed("tcp"), tree.getServiceNamed("udp")
    tcp.bind()
    udp.port = tcp.port  # one port number for both, as in the example
    tree.privilegedStartService()
    assert udp.port == tcp.port and len(listening_sockets(tree)) == 2

    async def go():
        result = tree.startService()
        if result is not None:
            await result
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", tcp.port), DEADLINE)
        writer.write(b"corral.example\nExample.ORG.\n-bad-\n")
        lines = [await asyncio.wait_for(reader.readline(), DEADLINE) for _ in range(3)]
        writer.close()
        assert lines[0] == b"corral.example A 192.0.2.1\n"
        assert lines[1].startswith(b"example.org A 10.")
        assert lines[2] == b"ERROR bad name\n"

        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            await loop.sock_sendto(client, b"example.org", ("127.0.0.1", udp.port))
            data, _ = await asyncio.wait_for(loop.sock_recvfrom(client, 512), DEADLINE)
        assert data == lines[1]  # the same stable fake address over both
        assert tree.resolver.answered == 3

        result = tree.stopService()
        if result is not None:
            await result
        assert not tcp.running and not udp.running

    try:
        run(go())
    finally:
        for server in (tcp, udp):
            server.closeSocket()
