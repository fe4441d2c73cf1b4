"""Listening sockets that the master holds, so that they outlive workers.

The invariant: a service's listening sockets are bound once, by the master,
before its first worker starts, and stay open (bound and listening) until
the service goes for good (a reload that removes or changes it) or the
master exits. A worker that crashes or restarts leaves them alone: clients
that connect meanwhile wait in the kernel's backlog and are served by the
next worker instead of being refused. All instances of a service (numprocs)
share the same sockets.

Two kinds of service, one keeper:

- A Python tree: the master calls tree.privilegedStartService() on its own
  copy once (so a privileged port works even when the worker runs as
  another user). The built-in servers (corral.services.internet) bind there
  and keep the socket in `server.socket`; the forked worker inherits them
  (bootstrap keeps their fds open, inherited_fds) and does not call
  privilegedStartService again, only startService, which serves on them.
- An external command with `sockets = ["tcp://...", "unix://...", ...]`:
  the master binds each URL and passes them with systemd's socket-activation
  protocol (sd_listen_fds(3)): the fds from 3 on in list order, LISTEN_FDS=n,
  LISTEN_PID=the command's own pid, LISTEN_FDNAMES=name:name:... where each
  name is the URL's #fragment or else the service's name (as systemd names
  every fd of a unit after its socket unit unless FileDescriptorName= says).

The URLs and their rules are corral/socketspec.py's (the spec side: the
settings check needs them without the master).
"""

import contextlib
import fcntl
import os

from corral.socketspec import Endpoint, parse  # noqa: F401 - the URL rules

FIRST_FD = 3  # SD_LISTEN_FDS_START


def _server(endpoint):
    """A ListeningService that binds the endpoint: it does the binding, stale
    unix socket files and the clean-up on close (corral.services.internet)."""
    from corral.services import internet

    def factory():  # never served on: the command serves
        raise RuntimeError("not served by the master")

    if endpoint.kind == "tcp":
        return internet.TCPServer(endpoint.port, factory, interface=endpoint.host)
    if endpoint.kind == "udp":
        return internet.UDPServer(endpoint.port, factory, interface=endpoint.host)
    return internet.UNIXServer(endpoint.path, factory)


# -- the keeper: one per master -------------------------------------------------


class Held:
    """The sockets of one service: for a tree, its servers; for a command, ours."""

    def __init__(self, spec, servers, names=()):
        self.spec = spec
        self.servers = servers  # ListeningService nodes holding the sockets
        self.names = list(names)  # LISTEN_FDNAMES entries (commands)

    def fds(self):
        """(fd, name) pairs to pass to a command; none for a tree (inherited)."""
        return [(server.socket.fileno(), name) for server, name in zip(self.servers, self.names)]

    def close(self):
        for server in self.servers:
            server.closeSocket()


class SocketKeeper:
    """The master's listening sockets, by service name."""

    def __init__(self):
        self.held = {}  # service name -> Held

    def prepare(self, spec):
        """Make sure spec's service holds its sockets: [(fd, name)] for a command.

        Raises whatever binding raised (a port in use, a bad address, the
        tree's own privilegedStartService): the caller makes that FATAL.
        """
        held = self.held.get(spec.name)
        if held is not None and held.spec is not spec:  # replaced: reload closes it first
            held.close()
            held = None
        if held is None:
            held = self._bind(spec)
            if held is None:
                return []
            self.held[spec.name] = held
        return held.fds()

    def _bind(self, spec):
        if spec.is_command:
            if not spec.sockets:
                return None
            held = Held(spec, [], [])
            try:
                for url in spec.sockets:
                    endpoint = parse(url)
                    server = _server(endpoint)
                    server.bind()
                    held.servers.append(server)
                    held.names.append(endpoint.fd_name(spec.name))
            except BaseException:
                held.close()
                raise
            return held
        if spec.tree is None:
            return None
        try:
            spec.tree.privilegedStartService()  # once, here; never in the worker
        except BaseException:
            for server in servers_of(spec.tree):
                server.closeSocket()
            raise
        servers = servers_of(spec.tree)
        for server in servers:
            _lift(server)
        return Held(spec, servers)

    def close(self, names):
        """Close the sockets of these services (gone for good: workers stopped)."""
        for name in names:
            held = self.held.pop(name, None)
            if held is not None:
                held.close()

    def close_all(self):
        self.close(list(self.held))


def servers_of(tree):
    """The ListeningService nodes of a tree that hold a socket, in tree order."""
    from corral.service import MultiService
    from corral.services.internet import ListeningService

    found = []

    def walk(node):
        if isinstance(node, ListeningService) and node.socket is not None \
                and node.socket.fileno() != -1:
            found.append(node)
        if isinstance(node, MultiService):
            for child in node:
                walk(child)

    walk(tree)
    return found


def _lift(server):
    """Keep a held socket off the fds a worker's bootstrap takes (0-3)."""
    import socket

    sock = server.socket
    if sock.fileno() > FIRST_FD:
        return
    lifted = socket.socket(fileno=fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 10))
    sock.close()
    server.socket = lifted


def inherited_fds(tree):
    """In a forked worker: the fds of the sockets the master holds for its tree."""
    from corral.services.internet import listening_sockets

    return [sock.fileno() for sock in listening_sockets(tree)]


# -- socket activation of a command (spawn.py) --------------------------------


class Activation:
    """Pass [(fd, name)] to an exec'd command the way systemd does.

    LISTEN_PID must be the command's own pid, known only in the child: so the
    child's environment is set in the preexec function (in_child, which also
    puts the fds on 3, 4, ...), and Popen gets env=None so that exec uses it.
    Popen keeps pass_fds = the target numbers open; each must be open in the
    master when Popen starts (reserved() fills holes with /dev/null), which
    also keeps Popen's error pipe off them. With no fds, every step is a no-op
    and Popen gets env as usual.
    """

    def __init__(self, fds, env):
        self.fds = list(fds)
        self._env = env
        self.pass_fds = tuple(range(FIRST_FD, FIRST_FD + len(self.fds)))
        self.env = None if self.fds else env  # for Popen

    @contextlib.contextmanager
    def reserved(self):
        holes = []
        try:
            for fd in self.pass_fds:
                try:
                    fcntl.fcntl(fd, fcntl.F_GETFD)
                except OSError:
                    holes.append(fd)
            if holes:
                null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    for fd in holes:
                        if fd != null:  # (dup3 refuses fd onto itself)
                            os.dup2(null, fd, inheritable=False)
                finally:
                    if null not in holes:
                        os.close(null)
            yield
        finally:
            for fd in holes:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def in_child(self):
        """Between fork and exec: fds on 3.., the environment with LISTEN_*."""
        if not self.fds:
            return
        top = FIRST_FD + len(self.fds)
        # Above the target range first: a source may sit on a target number.
        temps = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, top) for fd, _ in self.fds]
        for target, temp in enumerate(temps, FIRST_FD):
            os.dup2(temp, target, inheritable=True)
        for temp in temps:
            os.close(temp)
        os.environ.clear()
        os.environ.update(self._env)
        os.environ["LISTEN_FDS"] = str(len(self.fds))
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.environ["LISTEN_FDNAMES"] = ":".join(name for _, name in self.fds)
