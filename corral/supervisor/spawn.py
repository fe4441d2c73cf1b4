"""Start worker processes: fork a Python subtree or exec a command.

No threads and no asyncio subprocess API (on 3.11 it starts a watcher
thread per child): a worker is started here synchronously and watched
through a pidfd that the master puts on its event loop. Every worker leads
its own session and process group, so a stop or a kill reaches everything
it started, and asks the kernel to kill it if the master dies.

A Child hands three pipe read ends to the master: stdout and stderr for the
LogHub, and for Python workers a notify pipe (READY=1, sd_notify style).
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

from corral.supervisor.policy import Exit

PR_SET_PDEATHSIG = 1

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
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class SpawnError(Exception):
    """The process could not be started (fork failed, exec failed)."""


def die_with_parent(parent_pid):
    """In a child: be killed when the master dies; die now if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the master died before prctl took effect
        os._exit(1)


def reset_signals():
    signal.set_wakeup_fd(-1)
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


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

    def close(self):
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def group_has_live_member(pgid):
    """True if /proc shows a process of group pgid that is not a zombie."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _pipe():
    r, w = os.pipe()
    os.set_blocking(r, False)
    return r, w


def child_env(spec, instance, index):
    env = dict(os.environ)
    env.update(spec.env)
    env["CORRAL_SERVICE"] = spec.name
    env["CORRAL_INSTANCE"] = instance
    env["CORRAL_INDEX"] = str(index)
    return env


class Spawner:
    """Starts workers; the master takes one so that tests can replace it."""

    def __init__(self):
        self.master_pid = os.getpid()

    def spawn(self, spec, instance, index):
        if spec.is_command:
            return self._exec(spec, instance, index)
        return self._fork(spec, instance, index)

    def _exec(self, spec, instance, index):
        out_r, out_w = _pipe()
        err_r, err_w = _pipe()
        master_pid = self.master_pid

        def setup():  # runs in the child between fork and exec
            reset_signals()
            die_with_parent(master_pid)

        try:
            with signals_blocked():
                popen = subprocess.Popen(
                    spec.command,
                    stdin=subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=err_w,
                    cwd=spec.cwd,
                    env=child_env(spec, instance, index),
                    start_new_session=True,
                    close_fds=True,
                    preexec_fn=setup,
                )
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            raise SpawnError(f"cannot exec {spec.command[0]}: {exc}") from exc
        finally:
            os.close(out_w)
            os.close(err_w)
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
