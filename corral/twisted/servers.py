"""Twisted's listening services: where each listens, and adopting the socket
the master holds for it instead of binding one.

The master binds every listening socket of a Twisted tree before the worker
starts (supervisor/kinds.py, from the addresses the probe reported) and
keeps it across restarts, as it does for corral's own servers: a crash or a
restart then refuses no connection, and a port below 1024 works with a
`user`. In the worker, each server gets the held socket in the same tree
order, through the reactor's adoptStreamPort / adoptDatagramPort (which
duplicate the fd: the held one stays open for the next worker).

    internet.TCPServer, SSLServer, UNIXServer     stream: listen<method>(...)
    internet.UDPServer, UNIXDatagramServer         datagram
    strports.service / StreamServerEndpointService with a TCP4, TCP6, SSL4
    or UNIX server endpoint                        stream, by its endpoint

A server of another kind (a custom endpoint, multicast) binds for itself in
the worker, as under twistd: a restart refuses connections meanwhile.
"""

import os
import socket


def walk(tree):
    """Every service of tree, depth first, in tree order."""
    from twisted.application.service import IServiceCollection

    yield tree
    collection = IServiceCollection(tree, None)
    if collection is not None:
        for child in collection:
            yield from walk(child)


def _arg(server, index, key, default):
    if key in server.kwargs:
        return server.kwargs[key]
    return server.args[index] if len(server.args) > index else default


def address(service):
    """{"kind": tcp|udp|unix|unixgram, "host", "port", "path"} where service
    listens, or None when it is not a listening service the master can hold."""
    from twisted.application import internet
    from twisted.internet import endpoints

    if isinstance(service, internet._AbstractServer):  # TCPServer & co: listen<method>
        method = service.method
        if method in ("TCP", "SSL"):
            where = _arg(service, 4 if method == "SSL" else 3, "interface", "")
            return {"kind": "tcp", "host": where, "port": int(service.args[0])}
        if method == "UDP":
            return {"kind": "udp", "host": _arg(service, 2, "interface", ""),
                    "port": int(service.args[0])}
        if method in ("UNIX", "UNIXDatagram"):
            path = service.args[0]
            path = path.decode() if isinstance(path, bytes) else path
            return {"kind": "unix" if method == "UNIX" else "unixgram", "path": path}
        return None
    if isinstance(service, internet.StreamServerEndpointService):
        endpoint = service.endpoint
        if isinstance(endpoint, (endpoints.TCP4ServerEndpoint, endpoints.TCP6ServerEndpoint,
                                 endpoints.SSL4ServerEndpoint)):
            host = endpoint._interface
            if isinstance(endpoint, endpoints.TCP6ServerEndpoint) and not host:
                host = "::"
            return {"kind": "tcp", "host": host, "port": int(endpoint._port)}
        if isinstance(endpoint, endpoints.UNIXServerEndpoint):
            path = endpoint._address
            return {"kind": "unix", "path": path.decode() if isinstance(path, bytes) else path}
    return None


def listening(tree):
    """[(service, address)] of the services of tree the master can hold for."""
    found = []
    for service in walk(tree):
        where = address(service)
        if where is not None:
            found.append((service, where))
    return found


def adopt(service, fd, reactor):
    """Make service listen on the held socket fd instead of binding its own."""
    from twisted.application import internet
    from twisted.internet import endpoints

    family = _family(fd)
    # Twisted accepts until EAGAIN: a blocking socket would hang the loop.
    os.set_blocking(fd, False)
    if isinstance(service, internet.StreamServerEndpointService):
        wrap = _tls_wrapper(service.endpoint)
        service.endpoint = endpoints.AdoptedStreamServerEndpoint(reactor, fd, family)
        if wrap is not None:
            service.factory = wrap(service.factory)
        return
    method = service.method
    if method in ("TCP", "SSL", "UNIX"):
        factory = service.args[1]
        if method == "SSL":
            from twisted.protocols.tls import TLSMemoryBIOFactory

            factory = TLSMemoryBIOFactory(_arg(service, 2, "contextFactory", None), False,
                                          factory)
        service._getPort = lambda: reactor.adoptStreamPort(fd, family, factory)
    elif method == "UDP":
        protocol, size = service.args[1], _arg(service, 3, "maxPacketSize", 8192)
        service._getPort = lambda: reactor.adoptDatagramPort(fd, family, protocol, size)
    else:  # UNIXDatagram: adoptDatagramPort takes only AF_INET and AF_INET6
        path, protocol = service.args[0], service.args[1]
        size = _arg(service, 2, "maxPacketSize", 8192)
        service._getPort = lambda: _adopt_unix_datagram(reactor, fd, path, protocol, size)


def _adopt_unix_datagram(reactor, fd, path, protocol, size):
    """A listening twisted.internet.unix.DatagramPort on a copy of the held
    socket fd, instead of a socket it binds to path."""
    from twisted.internet import unix

    class Adopted(unix.DatagramPort):
        def _bindSocket(self):
            self.socket = socket.fromfd(fd, socket.AF_UNIX, socket.SOCK_DGRAM)  # a dup
            self.socket.setblocking(False)
            self.fileno = self.socket.fileno
            self.connected = 1

    port = Adopted(path, protocol, maxPacketSize=size, reactor=reactor)
    port.startListening()
    return port


def _family(fd):
    sock = socket.socket(fileno=fd)
    try:
        return sock.family
    finally:
        sock.detach()  # the fd stays the master's


def _tls_wrapper(endpoint):
    from twisted.internet import endpoints

    if not isinstance(endpoint, endpoints.SSL4ServerEndpoint):
        return None
    from twisted.protocols.tls import TLSMemoryBIOFactory

    context = endpoint._sslContextFactory
    return lambda factory: TLSMemoryBIOFactory(context, False, factory)
