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

URLs: tcp://HOST:PORT, tcp://[::1]:PORT, tcp://:PORT or tcp://*:PORT (all
IPv4 interfaces), udp://... alike, unix:///absolute/path, unix://relative
(to the config's folder), unix://@abstract. Ports are 1-65535.
"""

import contextlib
import fcntl
import os
import re
from dataclasses import dataclass


FIRST_FD = 3  # SD_LISTEN_FDS_START
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,255}")


# -- URLs (settings.py checks the `sockets` key with parse) ---------------------


@dataclass(frozen=True)
class Endpoint:
    kind: str  # tcp, udp, unix
    host: str = ""  # "" is all IPv4 interfaces, as in TCPServer
    port: int = 0
    path: str = ""  # unix; a leading "\0" is the abstract namespace
    name: str = ""  # the #fragment, or ""
    url: str = ""  # normalised: what the spec keeps

    def fd_name(self, service):
        return self.name or service


def parse(url, folder=None):
    """An Endpoint from a URL; ValueError with a message that teaches."""
    if not isinstance(url, str):
        raise ValueError(f"{url!r} is not a string")  # noqa: TRY004 - a config error, as the rest
    example = '(e.g. "tcp://127.0.0.1:8000", "udp://:5300", "unix:///run/app.sock")'
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("tcp", "udp", "unix"):
        raise ValueError(f"{url!r}: the scheme must be tcp://, udp:// or unix:// {example}")
    rest, hashmark, name = rest.partition("#")
    if hashmark and not _NAME.fullmatch(name):
        raise ValueError(f"{url!r}: the name after '#' must be 1-255 of A-Z a-z 0-9 _ . @ -")
    suffix = f"#{name}" if hashmark else ""
    if scheme == "unix":
        if not rest or "\0" in rest:
            raise ValueError(f"{url!r}: give a path, e.g. unix:///run/app.sock")
        if rest.startswith("@"):
            path, shown = "\0" + rest[1:], rest
        else:
            path = os.path.normpath(os.path.join(folder or os.getcwd(), rest))
            shown = path
        if len(os.fsencode(path)) > 107:
            raise ValueError(f"{url!r}: a unix socket path is at most 107 bytes")
        return Endpoint("unix", path=path, name=name, url=f"unix://{shown}{suffix}")
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{url!r}: give HOST:PORT with a port from 1 to 65535 {example}")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError(f"{url!r}: an IPv6 host is written [::1]")
        host = host[1:-1]
    elif host == "*":
        host = ""
    if any(ch in host for ch in "/?@[] ") or (":" in host and not rest.startswith("[")):
        raise ValueError(f"{url!r}: bad host {host!r}")
    shown = f"[{host}]" if ":" in host else host
    return Endpoint(scheme, host=host, port=int(port), name=name,
                    url=f"{scheme}://{shown}:{int(port)}{suffix}")


def check_list(value, folder):
    """The `sockets` key: a list of URLs, each once; returns normalised URLs."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'must be a list of socket URLs, e.g. ["tcp://127.0.0.1:8000"], '
                         f"not {value!r}")
    urls = [parse(v, folder).url for v in value]
    seen = set()
    for url in urls:
        where = url.partition("#")[0]
        if where in seen:
            raise ValueError(f"{url!r} is listed twice")
        seen.add(where)
    return tuple(urls)


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
