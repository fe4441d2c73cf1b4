"""Listening sockets that the master holds, so that they outlive workers.

The invariant: a service's listening sockets are bound once, by the master,
before its first worker starts, and stay open (bound and listening) until
the service goes for good (a reload that removes or changes it) or the
master exits. A worker that crashes or restarts leaves them alone: clients
that connect meanwhile wait in the kernel's backlog and are served by the
next worker instead of being refused. All instances of a service (numprocs,
and those a scale adds: core/scale.py) share the same sockets.

Which sockets, and how the worker gets them, is the service's kind's
(supervisor/kinds.py, bound by binding.py); one keeper holds them all:

- A Python tree: the master calls tree.privilegedStartService() on its own
  copy once (so a privileged port works even when the worker runs as
  another user). The built-in servers (corral.services.internet) bind there
  and keep the socket in `server.socket`; the forked worker inherits them
  (its bootstrap keeps those fds open) and does not call
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
import dataclasses
import fcntl
import os

from corral.socketspec import Endpoint, parse  # noqa: F401 - the URL rules
from corral.supervisor import kinds
from corral.supervisor.binding import FIRST_FD


# -- the keeper: one per master -------------------------------------------------


class SocketKeeper:
    """The master's listening sockets, by service name."""

    def __init__(self):
        self.held = {}  # service name -> binding.Held

    def prepare(self, spec):
        """Make sure spec's service holds its sockets: [(fd, name)] to pass.

        Raises whatever binding raised (a port in use, a bad address, the
        tree's own privilegedStartService): the caller makes that FATAL.
        """
        held = self.held.get(spec.name)
        if held is not None and held.spec is not spec:
            if _scaled(held.spec, spec):  # the same sockets, more or fewer instances
                held.spec = spec
            else:  # replaced: reload closes it first
                held.close()
                held = None
        if held is None:
            held = kinds.of(spec).bind(spec)
            if held is None:
                return []
            self.held[spec.name] = held
        return held.fds()

    def close(self, names):
        """Close the sockets of these services (gone for good: workers stopped)."""
        for name in names:
            held = self.held.pop(name, None)
            if held is not None:
                held.close()

    def close_all(self):
        self.close(list(self.held))

    def hand_over(self):
        """{service: [fd]} of every held socket, for `corral upgrade`."""
        return {name: [server.socket.fileno() for server in held.servers]
                for name, held in self.held.items()}

    def adopt(self, spec, fds):
        """Hold fds (a previous image's sockets of spec's service) as if bound here."""
        self.held[spec.name] = kinds.of(spec).adopt(spec, fds)


def _scaled(old, new):
    """new is old with another numprocs (core/scale.py keeps the tree object)."""
    return old.tree is new.tree and dataclasses.replace(old, numprocs=new.numprocs) == new


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
