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

Who holds the listening socket, and why a restart refuses no connection:
services/listening.py. Draining on stop: services/streams.py. This module
only gathers the names, where Twisted users look for them.
"""

from corral.services.clients import ClientStopped, SSLClient, TCPClient, UNIXClient
from corral.services.datagrams import UDPServer, UNIXDatagramServer
from corral.services.listening import ListeningService, listening_services, listening_sockets
from corral.services.streams import SSLServer, TCPServer, UNIXServer

__all__ = [
    "ClientStopped", "ListeningService", "SSLClient", "SSLServer", "TCPClient",
    "TCPServer", "UDPServer", "UNIXClient", "UNIXDatagramServer", "UNIXServer",
    "listening_services", "listening_sockets",
]

# Named where users import them from: `corral tree`, `corral check` and
# reprs say corral.services.internet.TCPServer, not the module that holds
# the code (the classes still pickle, as this module exports them).
for _cls in (ClientStopped, SSLClient, TCPClient, UNIXClient, UDPServer, UNIXDatagramServer,
             SSLServer, TCPServer, UNIXServer):
    _cls.__module__ = __name__
del _cls
