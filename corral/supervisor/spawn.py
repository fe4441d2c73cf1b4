"""Start worker processes: fork a Python subtree or exec a command.

No threads and no asyncio subprocess API (on 3.11 it starts a watcher
thread per child): a worker is started here synchronously and watched
through a pidfd that the master puts on its event loop. Every worker leads
its own session and process group, so a stop or a kill reaches everything
it started, and asks the kernel to kill it if the master dies. What leaves
the group, and what outlives a killed master, is found by the marker in its
environment (reaper.py: signal_family, family_alive, the undertaker).

Two ways to start one, and the service's kind chooses (supervisor/kinds.py):
exec_command (Popen, socket activation) and fork_worker (multiprocess's
fork, into workers/bootstrap.py and then a runtime). A Child hands three
pipe read ends to the master: stdout and stderr for the LogHub, and for
forked workers a notify pipe (READY=1, sd_notify style); a command with
stdin = "pipe" also a write end, its fd 0's (Operations.send_stdin), held
until it is reaped. Every Child (child.py) is
reaped the same way, by waitid on its pidfd: multiprocess only forks.
"""

import _signal
import contextlib
import errno
import importlib
import os
import signal
import subprocess
import sys

from corral import kinds as kind_facts
from corral import privileges
from corral.procsetup import RESET_SIGNALS, die_with_parent, join_cgroup, reset_signals
from corral.supervisor import cgroups, kinds, reaper
from corral.supervisor.child import Child
from corral.supervisor.sockets import Activation

__all__ = ["RESET_SIGNALS", "Child", "SpawnError", "Spawner", "child_env",
           "die_with_parent", "reset_signals", "signals_blocked"]


@contextlib.contextmanager
def signals_blocked():
    """Block every signal in the master around a fork.

    Until the child has run reset_signals() it still has the master's signal
    handlers, whose wakeup fd is the master's own: a stop signal sent to a
    worker that early would reach the master as if sent to it, and the
    worker would never see it. A child that starts with every signal blocked
    gets them only once reset_signals() has put the defaults back.
    """
    # _signal's functions: signal's wrappers turn each of the 64 signals into
    # an enum (an exception apiece for the real-time ones), ~0.2 ms a fork.
    old = _signal.pthread_sigmask(signal.SIG_BLOCK, _signal.valid_signals())
    try:
        yield
    finally:
        _signal.pthread_sigmask(signal.SIG_SETMASK, old)


class SpawnError(Exception):
    """The process could not be started (fork failed, exec failed)."""


def _exec_resets_signals():
    """True when a plain exec gives a command what reset_signals() would:
    none of RESET_SIGNALS ignored by the master (SIGPIPE aside: Popen's
    restore_signals resets it) and nothing blocked. Popen's vfork child puts
    caught signals back to SIG_DFL before it unblocks anything."""
    if _signal.pthread_sigmask(signal.SIG_BLOCK, ()):
        return False
    return all(signal.getsignal(sig) is not signal.SIG_IGN
               for sig in RESET_SIGNALS if sig != signal.SIGPIPE)


_setpriv = None  # util-linux's setpriv, if it has --pdeathsig ("" if not)


def _pdeathsig_shim():
    """[setpriv, --pdeathsig, KILL, --], which arms PR_SET_PDEATHSIG and execs
    the command; [] where setpriv is missing or too old (before 2.33). Its
    parent is the master, as ours would be; what it cannot do (check that the
    master is still there) the undertaker covers (reaper.py)."""
    global _setpriv
    if _setpriv is None:
        import shutil

        path = shutil.which("setpriv") or ""
        try:  # its option names are in the binary: no child process to ask it
            with open(path, "rb") as f:
                path = path if b"pdeathsig" in f.read(8 << 20) else ""
        except OSError:
            path = ""
        _setpriv = path
    return [_setpriv, "--pdeathsig", "KILL", "--"] if _setpriv else []


def flush_std_streams():
    """Write out what Python buffered for stdout and stderr (before a fork or an exec)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    return r, w


def child_env(spec, instance, index, notify_socket=None):
    """The environment of one process of spec: the master's, without its
    readiness variables (systemd's, not the worker's to use), plus those of
    spec's kind (notify_socket: the master's, for the commands that need
    it), the user's HOME/USER/LOGNAME, the service's env and CORRAL_*."""
    env = dict(os.environ)
    for name in kind_facts.READINESS_VARS:
        env.pop(name, None)
    env.update(spec.kind.environment(spec, notify_socket))
    env.update(privileges.user_env(spec))  # HOME, USER, LOGNAME; env wins
    env.update(spec.env)
    env["CORRAL_SERVICE"] = spec.name
    env["CORRAL_INSTANCE"] = instance
    env["CORRAL_INDEX"] = str(index)
    env[reaper.MARKER_VAR] = reaper.marker()  # this master's: see reaper.py
    return env


class Spawner:
    """Starts workers; the master takes one so that tests can replace it."""

    def __init__(self):
        self.master_pid = os.getpid()
        self.marker = reaper.marker()
        self.children = {}  # pid -> Child, until it is reaped (pruned now and then)
        self._prune_at = 64
        self.helpers = set()  # pids of the master's short-lived helpers (health.py)
        self.notify_socket = None  # the master's NOTIFY_SOCKET path, once readiness.py made it
        self.cgroups = None  # a cgroups.Subtree where the master may make cgroups
        self._cgroup_asked = None  # the cgroup the spawn under way put its child in

    def cgroup_for(self, instance):
        """The cgroup folder the instance's next process joins, or None."""
        path = self.cgroups.prepare(instance) if self.cgroups is not None else None
        self._cgroup_asked = path
        return path

    def spawn(self, spec, instance, index, fds=()):
        """fds: [(fd, name)] of the sockets the master holds for it (sockets.py)."""
        since = reaper.ticks_now()  # at or before its start time
        self._cgroup_asked = None
        child = kinds.of(spec).spawn(self, spec, instance, index, fds)
        child.instance, child.marker = instance, self.marker
        if self.cgroups is not None and self.cgroups.path(instance) == self._cgroup_asked:
            child.cgroup = (self.cgroups, instance)
        child.since, child.owns = since, self.owns
        if len(self.children) >= self._prune_at:  # reaped ones out, amortized O(1)
            self.children = {p: c for p, c in self.children.items() if c.exit is None}
            self._prune_at = max(64, 2 * len(self.children))
        self.children[child.pid] = child
        return child

    def owns(self, pid):
        """True while pid is a worker not reaped yet: only Child.poll may reap it
        (or a helper such as a health probe: only its own watcher may)."""
        if pid in self.helpers:
            return True
        child = self.children.get(pid)
        return child is not None and child.exit is None

    def exec_command(self, spec, instance, index, fds=(), stdin=None):
        """Exec spec.command; fds are passed by socket activation (sockets.py);
        stdin: an fd to give it as fd 0 (a FastCGI socket), else a pipe when
        spec.stdin is "pipe", else /dev/null."""
        out_r, out_w = _pipe()
        err_r, err_w = _pipe()
        master_pid = self.master_pid
        drop = privileges.CommandDrop(spec)  # its lookups happen here, in the master
        env = child_env(spec, instance, index, self.notify_socket)
        activation = Activation(fds, env)  # no fds: no-op
        cgroup = self.cgroup_for(instance)

        def setup():  # runs in the child between fork and exec
            if cgroup is not None:
                with contextlib.suppress(OSError):  # not contained, but running
                    join_cgroup(cgroup)
            reset_signals()
            drop()  # groups, gid, uid, umask (and then cwd, as the user)
            die_with_parent(master_pid)  # after the drop: a change of ids clears it
            activation.in_child()  # fds on 3.., LISTEN_PID = this pid (sockets.py)

        # The fast way, when nothing of ours has to run between fork and exec:
        # setpriv arms the death signal and exec resets caught signals, so
        # Popen vforks (~0.6 ms) instead of forking the master's image and
        # running setup() in the child, which blocks the loop ~5 ms.
        shim = [] if fds or drop.plan or not _exec_resets_signals() else _pdeathsig_shim()
        in_w = None
        if stdin is None and spec.stdin == "pipe":  # made last: nothing raises before the try
            # Both ends close-on-exec (os.pipe): only fd 0 of this child has
            # the read end, and no other child gets the write end.
            stdin, in_w = os.pipe()
            os.set_blocking(in_w, False)  # a full pipe never blocks the master
        try:
            if shim and cgroup is not None:
                _check_exec(spec.command[0])  # the shell's exec would say it only in the log
                shim = cgroups.shim(cgroup) + shim
            with contextlib.nullcontext() if shim else signals_blocked(), activation.reserved():
                popen = subprocess.Popen(
                    shim + list(spec.command) if shim else spec.command,
                    stdin=subprocess.DEVNULL if stdin is None else stdin,
                    stdout=out_w,
                    stderr=err_w,
                    cwd=None if drop.cwd else spec.cwd,
                    env=activation.env,  # None with fds: in_child sets os.environ
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=activation.pass_fds,
                    preexec_fn=None if shim else setup,
                )
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in (out_r, err_r) if in_w is None else (out_r, err_r, in_w):
                os.close(fd)
            raise SpawnError(drop.why() or f"cannot exec {spec.command[0]}: {exc}") from exc
        finally:
            os.close(out_w)
            os.close(err_w)
            if in_w is not None:
                os.close(stdin)  # the read end is the child's fd 0 now
            drop.close()
        return Child(spec.kind.name, popen.pid, out_r, err_r, popen=popen, stdin_fd=in_w)

    def fork_worker(self, spec, instance, index, runtime, keep=(), sockets=()):
        """Fork a worker that runs spec's tree in `runtime` (a module under
        workers/runtimes/). keep: fds of the sockets the master holds that
        the tree's servers name (they stay open in the child); sockets:
        [(fd, name)] the runtime adopts by number."""
        import multiprocess

        from corral.workers import bootstrap

        importlib.import_module(runtime)  # here, once, not in every worker
        out_r, out_w = _pipe()
        err_r, err_w = _pipe()
        notify_r, notify_w = _pipe()
        start = bootstrap.WorkerStart(
            spec=spec, instance=instance, fds=(out_w, err_w, notify_w),
            keep=tuple(keep) + tuple(fd for fd, _ in sockets), sockets=tuple(sockets),
            env=child_env(spec, instance, index), master_pid=self.master_pid,
            runtime=runtime, cgroup=self.cgroup_for(instance))
        process = multiprocess.get_context("fork").Process(
            target=bootstrap.worker_main, args=(start,), name=f"corral:{instance}")
        flush_std_streams()  # anything buffered here would be written again by the child
        try:
            with signals_blocked():
                process.start()
        except OSError as exc:
            for fd in (out_r, err_r, notify_r):
                os.close(fd)
            raise SpawnError(f"cannot fork: {exc}") from exc
        finally:
            for fd in start.fds:
                os.close(fd)
        _disown(process)
        return Child(spec.kind.name, process.pid, out_r, err_r, notify_r)


def _check_exec(path):
    """Raise the OSError Popen's exec would for a program that cannot be run."""
    if not os.access(path, os.X_OK) or os.path.isdir(path):
        code = errno.ENOENT if not os.path.exists(path) else errno.EACCES
        raise OSError(code, os.strerror(code), path)


def _disown(process):
    """Take a started multiprocess.Process out of multiprocess's bookkeeping:
    the master reaps it by pidfd (Child.poll). Left in, its next start() would
    waitpid() every Process it knows, and could take the exit status of a
    new worker that was given a reaped one's pid. Its sentinel pipes close
    too (the worker watches the master by pidfd, not by them)."""
    import multiprocess.process

    multiprocess.process._children.discard(process)
    popen = process._popen
    if popen is not None and popen.finalizer is not None:
        popen.finalizer()  # closes the sentinel pipe ends kept in the master
