"""Datagram servers: UDPServer and UNIXDatagramServer.

The protocol factory makes an asyncio.DatagramProtocol, which answers with
transport.sendto. As Twisted's UDP port, a stop drops unsent datagrams.
"""

import asyncio
import socket

from corral.services.addresses import bind_inet, bind_unix, UnixPathMixin
from corral.services.listening import ListeningService


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
        return bind_inet(self, self.interface, self.port, socket.SOCK_DGRAM)

    def _bound(self, address):
        self.port = address[1]


class UNIXDatagramServer(UnixPathMixin, _DatagramServer):
    """Receive datagrams on the UNIX datagram socket `path`."""

    def __init__(self, path, protocol_factory, *, mode=0o666):
        super().__init__(protocol_factory)
        self.path = path
        self.mode = mode

    def _make_socket(self):
        return bind_unix(self, self.path, socket.SOCK_DGRAM, self.mode)
