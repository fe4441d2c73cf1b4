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
    set_user            the service's user and group (supplementary groups, gid,
                        then uid) and umask (corral/privileges.py); then
                        die_with_master again, as changing ids cleared it
    change_directory    the service's cwd, entered as the service's user
    set_environment     the service's env and CORRAL_*
    reopen_streams      fresh sys.stdout/sys.stderr, line buffered

The child never returns into the master's code: worker_main raises
SystemExit with the exit code, and multiprocess's fork launcher turns that
into os._exit.
"""

import os
import signal
import sys
import traceback

from corral import privileges
from corral.errors import EXIT_WORKER_BOOT
from corral.supervisor import spawn
from corral.supervisor.sockets import inherited_fds
from corral.workers import runner  # noqa: F401 -- in the master, once, not in every worker

NOTIFY_FD = 3
UNCATCHABLE = frozenset({signal.SIGKILL, signal.SIGSTOP})


class BootstrapError(Exception):
    pass


def _step(description, action, *args):
    try:
        action(*args)
    except OSError as exc:
        raise BootstrapError(f"Unable to {description}: {exc}") from exc


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


def set_environment(spec, instance, index):
    env = spawn.child_env(spec, instance, index)
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


def worker_main(spec, instance, index, fds, master_pid):
    out_w, err_w, notify_w = fds
    # Imported before set_user: the service's user may not be able to read
    # the files of corral or of the Python it runs on.
    from corral.workers import runner

    try:
        _step("reset signals", spawn.reset_signals)
        _step("start a new session", os.setsid)
        _step("watch the master", spawn.die_with_parent, master_pid)
        _step("redirect output to the master", redirect_fds, out_w, err_w, notify_w)
        _step("close the master's files", close_other_fds, inherited_fds(spec.tree))
        reopen_streams()
        plan = privileges.steps(spec)
        for description, action, *args in plan:
            _step(description, action, *args)
        if plan:  # Linux cleared PR_SET_PDEATHSIG when the ids changed
            _step("watch the master", spawn.die_with_parent, master_pid)
        if spec.cwd:
            _step(f"change directory to {spec.cwd}", os.chdir, spec.cwd)
        _step("set the environment", set_environment, spec, instance, index)
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        sys.exit(EXIT_WORKER_BOOT)

    runner.setup_logging(instance)
    # SIGKILL and SIGSTOP cannot be caught: as a stop_signal they act by themselves.
    stop_signals = {spec.stop_signal, signal.SIGTERM, signal.SIGINT} - UNCATCHABLE
    try:
        code = runner.run_tree(spec.tree, stop_signals=tuple(stop_signals), notify=notify,
                               master_pid=master_pid,  # a pidfd backs up PDEATHSIG
                               privileged=False)  # the master ran it (sockets.py)
    except BaseException:
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    sys.exit(code)
