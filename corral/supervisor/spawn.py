"""Start worker processes: fork a Python subtree or exec a command.

No threads and no asyncio subprocess API (on 3.11 it starts a watcher
thread per child): a worker is started here synchronously and watched
through a pidfd that the master puts on its event loop. Every worker leads
its own session and process group, so a stop or a kill reaches everything
it started, and asks the kernel to kill it if the master dies. What leaves
the group, and what outlives a killed master, is found by the marker in its
environment (reaper.py: signal_family, family_alive, the undertaker).

A Child hands three pipe read ends to the master: stdout and stderr for the
LogHub, and for Python workers a notify pipe (READY=1, sd_notify style).
"""

import _signal
import contextlib
import os
import signal
import subprocess
import sys

from corral import privileges
from corral.supervisor import libc, procfs, reaper, readiness
from corral.core.policy import Exit
from corral.supervisor.sockets import Activation


# Signals a child must find at their default disposition, whatever the
# master had (it may itself have been started with SIGINT ignored).
RESET_SIGNALS = (
    signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
    signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGPIPE,
)


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


def die_with_parent(parent_pid):
    """In a child: be killed when the master dies; die now if it already has.

    Armed first, checked second: a master that dies after the prctl sends the
    signal; one that died before it has left us reparented, so getppid() is
    no longer its pid. The signal follows the parent *thread* that forked us;
    the master forks only from its one thread. It survives exec (but not of
    a set-user-ID program) and a change of ids clears it: arm it again after.
    """
    libc.prctl(libc.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the master died before prctl took effect
        os._exit(1)


def reset_signals():
    signal.set_wakeup_fd(-1)
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    _signal.pthread_sigmask(signal.SIG_SETMASK, ())  # (see signals_blocked)


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


class Child:
    """A running worker process, reaped only through poll()."""

    def __init__(self, kind, pid, handle, out_fd, err_fd, notify_fd=None):
        self.kind = kind
        self.pid = pid
        self._handle = handle  # subprocess.Popen or multiprocess.Process
        self.out_fd = out_fd
        self.err_fd = err_fd
        self.notify_fd = notify_fd
        self.pidfd = os.pidfd_open(pid)
        self.exit = None
        # Its family (reaper.py): set by Spawner.spawn.
        self.instance = self.marker = None
        self.since = 0  # when it started, in clock ticks since boot

    def poll(self):
        """Reap this pid if it has exited: return its Exit, else None."""
        if self.exit is not None:
            return self.exit
        if self.kind == "python":
            code = self._handle.exitcode  # reaps through multiprocess
            if code is None:
                return None
            self.exit = Exit.from_returncode(code)
        else:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid == 0:
                return None
            self.exit = Exit.from_status(status)
            self._handle.returncode = os.waitstatus_to_exitcode(status)
        return self.exit

    def signal_group(self, sig):
        """Send sig to the worker's process group (or to it, if not yet a leader)."""
        try:
            os.killpg(self.pid, sig)
            return True
        except ProcessLookupError:
            pass
        except PermissionError:
            return False
        try:  # between fork and setsid the group does not exist yet
            os.kill(self.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def group_alive(self):
        """True while a live (not zombie) process is left in the worker's group."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        # killpg also finds zombies that wait for init to reap them: look closer.
        return group_has_live_member(self.pid)

    def signal_family(self, sig):
        """signal_group, and the same to its family outside the group (reaper.py).

        Once reaped, its pid may be another process's: only the group (alive
        while one member is) and the family are signalled then.
        """
        if self.exit is None:
            ok = self.signal_group(sig)
        else:
            try:
                os.killpg(self.pid, sig)
                ok = True
            except (ProcessLookupError, PermissionError):
                ok = False
        for pid, pgrp in self._family():
            if pgrp != self.pid:  # the group has it already
                ok = reaper.kill(pid, sig) or ok
        return ok

    def family_alive(self):
        """True while a live process is left in its group or its family."""
        return self.group_alive() or bool(self._family())

    def _family(self):
        if self.marker is None:
            return []
        return reaper.family(self.marker, self.instance, self.since)

    def close(self):
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def group_has_live_member(pgid):
    """True if /proc shows a process of group pgid that is not a zombie."""
    for pid in procfs.pids():
        fields = procfs.stat_fields(pid)
        if fields and len(fields) > 2 and int(fields[2]) == pgid \
                and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    return r, w


def child_env(spec, instance, index, notify_socket=None):
    """notify_socket: the master's (readiness.py), for the commands that need it."""
    env = readiness.adjust_env(dict(os.environ), spec, notify_socket)
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
        self.children = {}  # pid -> Child, until it is reaped
        self.helpers = set()  # pids of the master's short-lived helpers (health.py)
        self.notify_socket = None  # the master's NOTIFY_SOCKET path, once readiness.py made it

    def spawn(self, spec, instance, index, fds=()):
        """fds: [(fd, name)] a command gets by socket activation (sockets.py)."""
        since = reaper.ticks_now()  # at or before its start time
        if spec.is_command:
            child = self._exec(spec, instance, index, fds)
        else:
            child = self._fork(spec, instance, index)
        child.instance, child.marker = instance, self.marker
        child.since = since
        self.children = {p: c for p, c in self.children.items() if c.exit is None}
        self.children[child.pid] = child
        return child

    def owns(self, pid):
        """True while pid is a worker not reaped yet: only Child.poll may reap it
        (or a helper such as a health probe: only its own watcher may)."""
        if pid in self.helpers:
            return True
        child = self.children.get(pid)
        return child is not None and child.exit is None

    def _exec(self, spec, instance, index, fds=()):
        out_r, out_w = _pipe()
        err_r, err_w = _pipe()
        master_pid = self.master_pid
        drop = privileges.CommandDrop(spec)  # its lookups happen here, in the master
        env = child_env(spec, instance, index, self.notify_socket)
        activation = Activation(fds, env)  # no fds: no-op

        def setup():  # runs in the child between fork and exec
            reset_signals()
            drop()  # groups, gid, uid, umask (and then cwd, as the user)
            die_with_parent(master_pid)  # after the drop: a change of ids clears it
            activation.in_child()  # fds on 3.., LISTEN_PID = this pid (sockets.py)

        # The fast way, when nothing of ours has to run between fork and exec:
        # setpriv arms the death signal and exec resets caught signals, so
        # Popen vforks (~0.6 ms) instead of forking the master's image and
        # running setup() in the child, which blocks the loop ~5 ms.
        shim = [] if fds or drop.plan or not _exec_resets_signals() else _pdeathsig_shim()
        try:
            with contextlib.nullcontext() if shim else signals_blocked(), activation.reserved():
                popen = subprocess.Popen(
                    shim + list(spec.command) if shim else spec.command,
                    stdin=subprocess.DEVNULL,
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
            for fd in (out_r, err_r):
                os.close(fd)
            raise SpawnError(drop.why() or f"cannot exec {spec.command[0]}: {exc}") from exc
        finally:
            os.close(out_w)
            os.close(err_w)
            drop.close()
        return Child("command", popen.pid, popen, out_r, err_r)

    def _fork(self, spec, instance, index):
        import multiprocess

        from corral.workers import bootstrap

        out_r, out_w = _pipe()
        err_r, err_w = _pipe()
        notify_r, notify_w = _pipe()
        fds = (out_w, err_w, notify_w)
        process = multiprocess.get_context("fork").Process(
            target=bootstrap.worker_main,
            args=(spec, instance, index, fds, self.master_pid),
            name=f"corral:{instance}",
        )
        # Anything buffered here would be written a second time by the child.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        try:
            with signals_blocked():
                process.start()
        except OSError as exc:
            for fd in (out_r, err_r, notify_r):
                os.close(fd)
            raise SpawnError(f"cannot fork: {exc}") from exc
        finally:
            for fd in fds:
                os.close(fd)
        return Child("python", process.pid, process, out_r, err_r, notify_r)
