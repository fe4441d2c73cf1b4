"""The entry of a forked Python worker: make the process its own, then run.

The child starts as a copy of the master, inside one of the master's event
loop callbacks. Before any user code runs it becomes a clean process, one
step at a time, each step named in the error if it fails:

    reset_signals       default dispositions, no wakeup fd into the master's loop,
                        then unblock (the master forks with every signal blocked)
    new_session         its own session and process group (stops reach all it starts)
    die_with_master     PR_SET_PDEATHSIG, and exit now if the master is gone
                        (the runner also watches the master through a pidfd)
    redirect_fds        stdout/stderr to the master's pipes, notify pipe on fd 3
    close_other_fds     nothing of the master's (sockets, pipes, pidfds, epoll)
                        but the listening sockets it holds for this tree
                        (WorkerStart.keep: the master says which)
    set_user            the service's user and group (supplementary groups, gid,
                        then uid) and umask (corral/privileges.py); then
                        die_with_master again, as changing ids cleared it
    change_directory    the service's cwd, entered as the service's user
    set_environment     the one the master made for it (supervisor/spawn.child_env)
    reopen_streams      fresh sys.stdout/sys.stderr, line buffered

Then it hands the tree to its runtime (workers/runtimes/): the module named
by WorkerStart.runtime, which the master imported before the fork. A
runtime has two functions:

    setup_logging(name)     the worker's log records to stderr (the master
                            stamps time and name on each line)
    run(start, *, stop_signals, notify) -> exit code
                            start the tree, notify("READY=1") once started,
                            stop it on a stop signal or when the master dies

The child never returns into the master's code: worker_main raises
SystemExit with the exit code, and multiprocess's fork launcher turns that
into os._exit. Nothing here imports the master's side (corral.supervisor):
what both sides need is in corral/procsetup.py.
"""

import importlib
import os
import signal
import sys
import traceback
from dataclasses import dataclass

from corral import privileges, steps
from corral.errors import EXIT_WORKER_BOOT
from corral.procsetup import die_with_parent, join_cgroup, reset_signals

NOTIFY_FD = 3
UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})


@dataclass(frozen=True)
class WorkerStart:
    """What the master tells a worker it forks (carried by the fork as is)."""

    spec: object  # the ServiceSpec
    instance: str  # "web", "web:1"
    fds: tuple  # (stdout, stderr, notify) write ends of the master's pipes
    keep: tuple  # fds the master holds for this worker: left open
    sockets: tuple  # [(fd, name)] among keep that the runtime adopts by number
    env: dict  # its whole environment
    master_pid: int
    runtime: str  # the module that runs the tree (workers/runtimes/)
    cgroup: str = None  # its cgroup v2 folder, joined before anything else runs (cgroups.py)


class BootstrapError(Exception):
    pass


def _step(description, action, *args):
    steps.step(BootstrapError, description, action, *args)


def redirect_fds(out_w, err_w, notify_w):
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(notify_w, NOTIFY_FD)
    os.set_inheritable(NOTIFY_FD, False)  # for this worker, not its children
    null = os.open(os.devnull, os.O_RDONLY)
    if null != 0:
        os.dup2(null, 0)
        os.close(null)


def close_other_fds(keep=()):
    """Close every fd above NOTIFY_FD but those in keep (the listening sockets
    the master holds for this tree, supervisor/sockets.py)."""
    low = NOTIFY_FD + 1
    for fd in sorted(set(keep)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def set_environment(env):
    os.environ.clear()
    os.environ.update(env)


def reopen_streams():
    sys.stdin = open(0, "r", closefd=False)
    sys.stdout = open(1, "w", buffering=1, errors="backslashreplace", closefd=False)
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)
    sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr


def notify(message):
    """Tell the master something, sd_notify style (READY=1, STATUS=...)."""
    try:
        os.write(NOTIFY_FD, message.encode() + b"\n")
    except OSError:
        pass  # the master is gone: PDEATHSIG will end us


def worker_main(start):
    spec, master_pid = start.spec, start.master_pid
    # Imported by the master already; here before set_user all the same: the
    # service's user may not be able to read the files of corral or Python.
    runtime = importlib.import_module(start.runtime)

    try:
        _step("reset signals", reset_signals)
        _step("start a new session", os.setsid)
        _step("watch the master", die_with_parent, master_pid)
        _step("redirect output to the master", redirect_fds, *start.fds)
        if start.cgroup is not None:
            try:  # before the tree runs: nothing it forks is outside
                join_cgroup(start.cgroup)
            except OSError as exc:
                print(f"corral: {start.cgroup}: not contained: {exc.strerror}", file=sys.stderr)
        _step("close the master's files", close_other_fds, start.keep)
        reopen_streams()
        plan = privileges.steps(spec)
        for description, action, *args in plan:
            _step(description, action, *args)
        if plan:  # Linux cleared PR_SET_PDEATHSIG when the ids changed
            _step("watch the master", die_with_parent, master_pid)
        if spec.cwd:
            _step(f"change directory to {spec.cwd}", os.chdir, spec.cwd)
        _step("set the environment", set_environment, start.env)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        sys.exit(EXIT_WORKER_BOOT)

    runtime.setup_logging(start.instance)
    # SIGKILL and SIGSTOP cannot be caught: as a stop_signal they act by themselves.
    stop_signals = {spec.stop_signal, signal.SIGTERM, signal.SIGINT} - UNCATCHABLE
    try:
        code = runtime.run(start, stop_signals=tuple(stop_signals), notify=notify)
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    sys.exit(code)
