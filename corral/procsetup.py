"""The first steps of a new child of the master, on either side of exec.

A command's preexec function (supervisor/spawn.py) and a Python worker's
bootstrap (workers/bootstrap.py) both start as a copy of the master inside
one of its loop callbacks, with every signal blocked (spawn.signals_blocked).
Both must put the signals back and arm the death signal before anything
else. The steps live here, beside neither, so that the worker side never
imports the master side.
"""

import _signal
import os
import signal

from corral import libc

# Signals a child must find at their default disposition, whatever the
# master had (it may itself have been started with SIGINT ignored).
RESET_SIGNALS = (
    signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
    signal.SIGUSR1, signal.SIGUSR2, signal.SIGCHLD, signal.SIGPIPE,
)


def reset_signals():
    """Default dispositions, no wakeup fd into the master's loop, then unblock."""
    signal.set_wakeup_fd(-1)
    for sig in RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    _signal.pthread_sigmask(signal.SIG_SETMASK, ())  # (see spawn.signals_blocked)


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


def join_cgroup(path):
    """Move the calling process into the cgroup v2 folder at path, before it
    runs anything of the user's (supervisor/cgroups.py)."""
    fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY)
    try:
        os.write(fd, b"0")
    finally:
        os.close(fd)
