"""Bind the listening sockets of one service, in the master: the how.

Which sockets a service has is its kind's business (supervisor/kinds.py):
a command's `sockets` URLs, a tree's servers. This module makes them and
returns a Held, which the SocketKeeper (sockets.py) keeps across worker
restarts. What it binds is bound completely or not at all: a failure closes
what was already bound before it raises.
"""

import fcntl
import socket

FIRST_FD = 3  # SD_LISTEN_FDS_START; also the worker's notify fd (workers/bootstrap.py)


class Held:
    """The sockets of one service: ListeningService nodes holding them, and
    for those passed to the worker by number, the name of each fd."""

    def __init__(self, spec, servers, names=()):
        self.spec = spec
        self.servers = servers  # ListeningService nodes holding the sockets
        self.names = list(names)  # LISTEN_FDNAMES entries, one per passed socket

    def fds(self):
        """(fd, name) pairs to pass to the worker; none for a tree (inherited)."""
        return [(server.socket.fileno(), name) for server, name in zip(self.servers, self.names)]

    def close(self):
        for server in self.servers:
            server.closeSocket()


def server_for(endpoint):
    """A ListeningService that binds the endpoint: it does the binding, stale
    unix socket files and the clean-up on close (corral.services.internet)."""
    from corral.services import internet

    def factory():  # never served on: the worker serves
        raise RuntimeError("not served by the master")

    if endpoint.kind == "tcp":
        return internet.TCPServer(endpoint.port, factory, interface=endpoint.host)
    if endpoint.kind == "udp":
        return internet.UDPServer(endpoint.port, factory, interface=endpoint.host)
    if endpoint.kind == "unixgram":
        return internet.UNIXDatagramServer(endpoint.path, factory)
    return internet.UNIXServer(endpoint.path, factory)


def bind_endpoints(spec, endpoints):
    """Bind each endpoints.Endpoint, in order: a Held whose fds() pass them."""
    held = Held(spec, [], [])
    try:
        for endpoint in endpoints:
            server = server_for(endpoint)
            server.bind()
            lift(server)
            held.servers.append(server)
            held.names.append(endpoint.fd_name(spec.name))
    except BaseException:
        held.close()
        raise
    return held


def adopt_endpoints(spec, endpoints, fds):
    """bind_endpoints, with sockets bound by a previous image (corral upgrade)."""
    if len(fds) != len(endpoints):
        raise ValueError(f"{spec.name}: {len(fds)} socket(s) held, {len(endpoints)} in its config")
    held = Held(spec, [], [])
    for endpoint, fd in zip(endpoints, fds):
        server = server_for(endpoint)
        server.socket = socket.socket(fileno=fd)
        server.bind()  # holds it already: only learns its address
        held.servers.append(server)
        held.names.append(endpoint.fd_name(spec.name))
    return held


def adopt_tree(spec, fds):
    """bind_tree, with sockets bound by a previous image: its servers, in
    tree order, are given them first, so privilegedStartService binds none."""
    from corral.services.internet import ListeningService
    from corral.service import walk

    servers = [node for node in walk(spec.tree) if isinstance(node, ListeningService)]
    if len(fds) != len(servers):
        raise ValueError(f"{spec.name}: {len(fds)} socket(s) held, {len(servers)} in its tree")
    for server, fd in zip(servers, fds):
        server.socket = socket.socket(fileno=fd)
    return bind_tree(spec)


def bind_tree(spec):
    """Run the tree's privilegedStartService once, here (never in the worker):
    a Held of the servers that then hold a socket, which the worker inherits."""
    from corral.services.internet import listening_services

    try:
        spec.tree.privilegedStartService()
    except BaseException:
        for server in listening_services(spec.tree):
            server.closeSocket()
        raise
    servers = listening_services(spec.tree)
    for server in servers:
        lift(server)
    return Held(spec, servers)


def lift(server):
    """Keep a held socket off the fds a worker's bootstrap takes (0-3)."""
    sock = server.socket
    if sock.fileno() > FIRST_FD:
        return
    lifted = socket.socket(fileno=fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 10))
    sock.close()
    server.socket = lifted
