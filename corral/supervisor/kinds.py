"""The master's half of each kind of service: how to spawn one, and which
listening sockets to bind for it before its first worker starts.

corral/kinds.py holds the facts of a kind (readiness, restarts, views);
this half does the OS work, through the Spawner's two ways of starting a
process (exec a command, fork a worker into a runtime) and binding.py. The
kind object on the spec names its half here: `of(spec)`.
"""

from corral import socketspec
from corral.supervisor import binding


class CommandKind:
    """An exec'd program: the sockets its `sockets` key lists, passed by
    systemd's socket activation."""

    def bind(self, spec):
        if not spec.sockets:
            return None
        return binding.bind_endpoints(spec, [socketspec.parse(url) for url in spec.sockets])

    def adopt(self, spec, fds):
        return binding.adopt_endpoints(spec, [socketspec.parse(url) for url in spec.sockets], fds)

    def spawn(self, spawner, spec, instance, index, fds):
        return spawner.exec_command(spec, instance, index, fds)


class FastCGIKind(CommandKind):
    """A FastCGI program: its one socket on fd 0, no LISTEN_* variables."""

    def spawn(self, spawner, spec, instance, index, fds):
        ((fd, _name),) = fds
        return spawner.exec_command(spec, instance, index, stdin=fd)


class PythonTreeKind:
    """corral's own tree: the master runs privilegedStartService on its copy
    once; the forked worker inherits the sockets and runs the tree on asyncio."""

    runtime = "corral.workers.runtimes.aio"

    def bind(self, spec):
        if spec.tree is None:
            return None
        return binding.bind_tree(spec)

    def adopt(self, spec, fds):
        return binding.adopt_tree(spec, fds)

    def spawn(self, spawner, spec, instance, index, fds):
        from corral.services.internet import listening_sockets

        keep = [sock.fileno() for sock in listening_sockets(spec.tree)] if spec.tree else []
        return spawner.fork_worker(spec, instance, index, self.runtime, keep)


class TwistedTreeKind:
    """A service of a Twisted application: the master binds the addresses
    the probe found (corral/twisted/servers.py) and passes them by number;
    the worker loads the file and adopts them (workers/runtimes/tx.py)."""

    runtime = "corral.workers.runtimes.tx"

    def bind(self, spec):
        if not spec.tree.addresses:
            return None
        return binding.bind_endpoints(spec, spec.tree.addresses)

    def adopt(self, spec, fds):
        return binding.adopt_endpoints(spec, spec.tree.addresses, fds)

    def spawn(self, spawner, spec, instance, index, fds):
        return spawner.fork_worker(spec, instance, index, self.runtime, sockets=fds)


BY_NAME = {"command": CommandKind(), "fcgi": FastCGIKind(), "python": PythonTreeKind(),
           "twisted": TwistedTreeKind()}


def of(spec):
    """The master's half of spec's kind."""
    return BY_NAME[spec.kind.name]
