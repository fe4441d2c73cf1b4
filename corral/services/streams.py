"""Stream servers: TCPServer, SSLServer, UNIXServer, and how they drain.

A stream server's stopService() stops accepting at once (as Twisted's
stopListening does) and then waits, up to `drain` seconds, for the
connections already made to close, so that a restart, even of the last
instance, does not cut a request in flight: the worker exits only after.
Connections still open after `drain` are aborted where asyncio can (3.13+)
and otherwise end with the worker. drain=0 does not wait, as in Twisted.
Keep drain below the service's stop_timeout, after which the master kills
the worker. Idle keep-alive connections count as open: a protocol that
wants a quick stop closes them in its own stopService, before the server's.
"""

import asyncio
import socket
import sys

from corral.services.addresses import bind_inet, bind_unix, UnixPathMixin
from corral.services.listening import ListeningService, log


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


class TCPServer(_StreamServer):
    """Listen on TCP `port` (0: any free port; `port` then tells which)."""

    def __init__(self, port, protocol_factory, *, interface="", backlog=128, drain=5.0):
        super().__init__(protocol_factory, backlog, drain)
        self.port = port
        self.interface = interface

    def _where(self):
        return f"{self.interface or '*'}:{self.port}"

    def _make_socket(self):
        return bind_inet(self, self.interface, self.port, socket.SOCK_STREAM, self.backlog)

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


class UNIXServer(UnixPathMixin, _StreamServer):
    """Listen on the UNIX stream socket `path` (a stale socket file is replaced)."""

    def __init__(self, path, protocol_factory, *, mode=0o666, backlog=128, drain=5.0):
        super().__init__(protocol_factory, backlog, drain)
        self.path = path
        self.mode = mode

    def _make_socket(self):
        return bind_unix(self, self.path, socket.SOCK_STREAM, self.mode, self.backlog)

    def _create(self, loop, sock):
        extra = {"cleanup_socket": False} if sys.version_info >= (3, 13) else {}
        return loop.create_unix_server(
            self.protocol_factory, sock=sock, backlog=self.backlog, start_serving=False, **extra)
