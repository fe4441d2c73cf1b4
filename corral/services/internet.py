"""Servers and clients as services, with the names of twisted.application.internet.

    TCPServer(port, protocol_factory, interface="", backlog=128, drain=5.0)
    SSLServer(port, protocol_factory, ssl_context, interface="", backlog=128, drain=5.0)
    UNIXServer(path, protocol_factory, mode=0o666, backlog=128, drain=5.0)
    UDPServer(port, protocol_factory, interface="")
    UNIXDatagramServer(path, protocol_factory, mode=0o666)
    TCPClient(host, port, protocol_factory, ...)  SSLClient(...)  UNIXClient(path, ...)
        (in corral.services.clients, re-exported here)

A protocol factory is what asyncio takes: a callable returning an
asyncio.Protocol (stream servers and clients) or an asyncio.DatagramProtocol
(UDPServer, UNIXDatagramServer). An interface of "" means all IPv4
interfaces, as in Twisted.

Who holds the listening socket. A server creates and binds its socket in
privilegedStartService() -- a plain blocking socket, SO_REUSEADDR, bound and
listening -- and keeps it in `self.socket`, but only if it does not hold a
bound socket already. So a master can call privilegedStartService() on its
copy of the tree once (as root, say), and a worker forked from it inherits
the socket and does not bind again; listening_sockets(tree) lists the
sockets held in a tree. startService() serves on a duplicate of that socket
(asyncio closes the socket it is given when its server closes), so
stopService() stops serving but the held socket stays bound and listening:
clients that connect while no worker serves wait in the backlog instead of
being refused, and the next startService() serves them. closeSocket() lets
the socket go for good.

Draining. A stream server's stopService() stops accepting at once (as
Twisted's stopListening does) and then waits, up to `drain` seconds, for
the connections already made to close, so that a restart, even of the last
instance, does not cut a request in flight: the worker exits only after.
Connections still open after `drain` are aborted where asyncio can (3.13+)
and otherwise end with the worker. drain=0 does not wait, as in Twisted.
Keep drain below the service's stop_timeout, after which the master kills
the worker. Idle keep-alive connections count as open: a protocol that
wants a quick stop closes them in its own stopService, before the server's.
"""

import asyncio
import errno
import logging
import os
import socket
import stat
import sys

from corral.service import MultiService, Service

log = logging.getLogger("corral.services.internet")

__all__ = [
    "ClientStopped", "ListeningService", "SSLClient", "SSLServer", "TCPClient",
    "TCPServer", "UDPServer", "UNIXClient", "UNIXDatagramServer", "UNIXServer",
    "listening_sockets",
]


def listening_sockets(tree):
    """The sockets held by the servers in `tree` (a service or a whole tree), in tree order."""
    found = []

    def walk(node):
        if isinstance(node, ListeningService) and node.socket is not None \
                and node.socket.fileno() != -1:
            found.append(node.socket)
        if isinstance(node, MultiService):
            for child in node:
                walk(child)

    walk(tree)
    return found


# -- servers -----------------------------------------------------------------


class ListeningService(Service):
    """The common part of the servers: hold a bound socket, serve on a duplicate."""

    socket = None  # the held socket, bound (and listening, for streams); may be assigned
    address = None  # its getsockname()

    def __init__(self, protocol_factory):
        super().__init__()
        if not callable(protocol_factory):
            raise TypeError(f"protocol_factory must be callable, not {protocol_factory!r}")
        self.protocol_factory = protocol_factory
        self._served = None  # the duplicate that asyncio serves on

    def __repr__(self):
        label = f" {self.name!r}" if self.name is not None else ""
        return f"<{type(self).__name__}{label} {self._where()}>"

    def bind(self):
        """Create and bind the held socket unless it is held already; return it."""
        if not self._holds_socket():
            sock = self._make_socket()
            self.socket, self.address = sock, sock.getsockname()
            self._bound(self.address)
        return self.socket

    def _holds_socket(self):
        # A forked child whose files were closed, or whose fd number now
        # names another file, does not hold the socket any more.
        sock = self.socket
        if sock is None or sock.fileno() == -1:
            return False
        try:
            if self.address is None:  # assigned from outside (socket activation, say)
                self.address = sock.getsockname()
                self._bound(self.address)
            if sock.getsockname() == self.address:
                return True
        except OSError:
            pass
        sock.detach()  # the number is not ours: never close it
        self.socket = None
        return False

    def closeSocket(self):
        """Close the held socket; for its owner, once the service is gone for good."""
        sock, self.socket = self.socket, None
        if sock is not None:
            sock.close()

    def privilegedStartService(self):
        super().privilegedStartService()
        self.bind()

    def startService(self):
        super().startService()
        return self._start()

    async def _start(self):
        if self._served is not None and self._served.fileno() != -1:
            return  # serving already
        sock = self.bind()
        served = socket.socket(fileno=os.dup(sock.fileno()))
        self._served = served
        try:
            await self._serve(served)
        except BaseException:
            if not self._serving():
                served.close()
            raise
        log.info("%r serving", self)

    def stopService(self):
        super().stopService()
        return self._stop()

    def _bound(self, address):
        pass

    def _where(self):
        raise NotImplementedError

    def _make_socket(self):
        raise NotImplementedError

    async def _serve(self, sock):
        raise NotImplementedError

    def _serving(self):
        raise NotImplementedError

    async def _stop(self):
        raise NotImplementedError


DRAIN_POLL = 0.02  # s between looks at the open connections while draining


class _StreamServer(ListeningService):
    server = None  # the asyncio.Server while serving

    def __init__(self, protocol_factory, backlog, drain):
        super().__init__(protocol_factory)
        if not isinstance(drain, (int, float)) or isinstance(drain, bool) or drain < 0:
            raise ValueError(f"drain must be a number of seconds >= 0, not {drain!r}")
        self.backlog, self.drain = backlog, drain

    def _ssl(self):
        return None

    def _create(self, loop, sock):
        return loop.create_server(
            self.protocol_factory, sock=sock, backlog=self.backlog, ssl=self._ssl(),
            start_serving=False)

    async def _serve(self, sock):
        # With start_serving=False and a socket, creating the server does not
        # suspend, so self.server is set before any cancellation can land.
        self.server = await self._create(asyncio.get_running_loop(), sock)
        await self.server.start_serving()

    def _serving(self):
        return self.server is not None

    async def _stop(self):
        server, served = self.server, self._served
        self.server = self._served = None
        if server is None:
            return
        if self.drain and served is not None and served.fileno() != -1:
            # Stop accepting first, then let the connections already accepted
            # become transports: asyncio makes each in a task a loop turn
            # after accept(), and a server closed before that drops it (reset).
            loop = asyncio.get_running_loop()
            loop.remove_reader(served.fileno())
            for _ in range(2):
                await asyncio.sleep(0)
        server.close()  # closes our duplicate at once, never the held socket
        await self._drain(server)
        if hasattr(server, "abort_clients"):   # 3.13+
            server.abort_clients()
            await server.wait_closed()
        elif sys.version_info < (3, 12):
            # From 3.12 on, wait_closed waits for every connection, unbounded.
            await server.wait_closed()

    async def _drain(self, server):
        open_now = _open_connections(server)
        if not open_now or not self.drain:
            return
        log.info("%r: waiting up to %g s for %d open connection(s)", self, self.drain, open_now)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain
        while _open_connections(server) and loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL)
        left = _open_connections(server)
        if left:
            log.warning("%r: %d connection(s) still open after %g s", self, left, self.drain)


def _open_connections(server):
    # asyncio.Server counts its open connections (3.8 to 3.13 at least) but
    # does not say so publicly; without the count there is nothing to wait for.
    return getattr(server, "_active_count", 0)


def _inet_address(interface, port, kind):
    """(family, sockaddr) to bind: "" is all IPv4 interfaces, as in Twisted."""
    if interface == "":
        return socket.AF_INET, ("0.0.0.0", port)
    infos = socket.getaddrinfo(interface, port, socket.AF_UNSPEC, kind, 0, socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def _bind_inet(owner, interface, port, kind, backlog=None):
    family, sockaddr = _inet_address(interface, port, kind)
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        if backlog is not None:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"{owner!r} cannot bind {sockaddr[0]}:{sockaddr[1]}: "
                                 f"{exc.strerror}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


class TCPServer(_StreamServer):
    """Listen on TCP `port` (0: any free port; `port` then tells which)."""

    def __init__(self, port, protocol_factory, *, interface="", backlog=128, drain=5.0):
        super().__init__(protocol_factory, backlog, drain)
        self.port = port
        self.interface = interface

    def _where(self):
        return f"{self.interface or '*'}:{self.port}"

    def _make_socket(self):
        return _bind_inet(self, self.interface, self.port, socket.SOCK_STREAM, self.backlog)

    def _bound(self, address):
        self.port = address[1]


class SSLServer(TCPServer):
    """A TCPServer whose connections speak TLS with `ssl_context` (an ssl.SSLContext)."""

    def __init__(self, port, protocol_factory, ssl_context, *, interface="", backlog=128,
                 drain=5.0):
        super().__init__(port, protocol_factory, interface=interface, backlog=backlog,
                         drain=drain)
        self.ssl_context = ssl_context

    def _ssl(self):
        return self.ssl_context


def _is_abstract(path):
    return path[:1] in ("\0", b"\0")


def _remove_stale(owner, path, kind):
    """Unlink a socket file nobody listens on any more; refuse one that is in use."""
    if _is_abstract(path):
        return
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return  # not a socket: bind will say the address is in use
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, kind) as probe:
        probe.setblocking(False)
        err = probe.connect_ex(path)
    if err in (0, errno.EAGAIN):
        raise OSError(errno.EADDRINUSE, f"{owner!r}: {path!r} is in use by a live socket")
    if err == errno.ECONNREFUSED:  # nobody holds it
        os.unlink(path)


def _bind_unix(owner, path, kind, mode, backlog=None):
    _remove_stale(owner, path, kind)
    sock = socket.socket(socket.AF_UNIX, kind)
    try:
        sock.bind(path)
        if not _is_abstract(path):
            os.chmod(path, mode)
        if backlog is not None:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"{owner!r} cannot bind {path!r}: {exc.strerror}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


class _UnixPathMixin:
    def _where(self):
        return repr(self.path)

    def closeSocket(self):
        held = self.socket is not None and self.socket.fileno() != -1
        super().closeSocket()
        if held and not _is_abstract(self.path):
            try:
                if stat.S_ISSOCK(os.stat(self.path).st_mode):
                    os.unlink(self.path)
            except FileNotFoundError:
                pass


class UNIXServer(_UnixPathMixin, _StreamServer):
    """Listen on the UNIX stream socket `path` (a stale socket file is replaced)."""

    def __init__(self, path, protocol_factory, *, mode=0o666, backlog=128, drain=5.0):
        super().__init__(protocol_factory, backlog, drain)
        self.path = path
        self.mode = mode

    def _make_socket(self):
        return _bind_unix(self, self.path, socket.SOCK_STREAM, self.mode, self.backlog)

    def _create(self, loop, sock):
        extra = {"cleanup_socket": False} if sys.version_info >= (3, 13) else {}
        return loop.create_unix_server(
            self.protocol_factory, sock=sock, backlog=self.backlog, start_serving=False, **extra)


class _DatagramServer(ListeningService):
    transport = None  # the asyncio datagram transport while serving
    protocol = None  # the protocol the factory made for it

    async def _serve(self, sock):
        loop = asyncio.get_running_loop()
        self.transport, self.protocol = await loop.create_datagram_endpoint(
            self.protocol_factory, sock=sock)

    def _serving(self):
        return self.transport is not None

    async def _stop(self):
        transport, served = self.transport, self._served
        self.transport = self.protocol = self._served = None
        if transport is None:
            return
        # As Twisted's UDP port: unsent datagrams are dropped. The transport
        # closes our duplicate in a callback it schedules; let that run.
        transport.abort()
        for _ in range(100):
            if served.fileno() == -1:
                break
            await asyncio.sleep(0)


class UDPServer(_DatagramServer):
    """Receive datagrams on UDP `port`; the protocol answers with transport.sendto."""

    def __init__(self, port, protocol_factory, *, interface=""):
        super().__init__(protocol_factory)
        self.port = port
        self.interface = interface

    def _where(self):
        return f"udp {self.interface or '*'}:{self.port}"

    def _make_socket(self):
        return _bind_inet(self, self.interface, self.port, socket.SOCK_DGRAM)

    def _bound(self, address):
        self.port = address[1]


class UNIXDatagramServer(_UnixPathMixin, _DatagramServer):
    """Receive datagrams on the UNIX datagram socket `path`."""

    def __init__(self, path, protocol_factory, *, mode=0o666):
        super().__init__(protocol_factory)
        self.path = path
        self.mode = mode

    def _make_socket(self):
        return _bind_unix(self, self.path, socket.SOCK_DGRAM, self.mode)


# The clients live in their own module; Twisted users find them here.
from corral.services.clients import ClientStopped, SSLClient, TCPClient, UNIXClient  # noqa: E402,F401
