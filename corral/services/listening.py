"""The held listening socket that every server of corral.services is built on.

A server creates and binds its socket in privilegedStartService() -- a
plain blocking socket, SO_REUSEADDR, bound and listening -- and keeps it in
`self.socket`, but only if it does not hold a bound socket already. So a
master can call privilegedStartService() on its copy of the tree once (as
root, say), and a worker forked from it inherits the socket and does not
bind again. startService() serves on a duplicate of that socket (asyncio
closes the socket it is given when its server closes), so stopService()
stops serving but the held socket stays bound and listening: clients that
connect while no worker serves wait in the backlog instead of being
refused, and the next startService() serves them. closeSocket() lets the
socket go for good.
"""

import logging
import os
import socket

from corral.service import Service, walk

log = logging.getLogger("corral.services.internet")


def listening_services(tree):
    """The servers in `tree` (a service or a whole tree) that hold a socket, in tree order."""
    return [node for node in walk(tree) if isinstance(node, ListeningService)
            and node.socket is not None and node.socket.fileno() != -1]


def listening_sockets(tree):
    """The sockets held by the servers in `tree`, in tree order."""
    return [server.socket for server in listening_services(tree)]


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
