"""spawn.py's fast way to exec a command (setpriv arms the death signal, Popen
vforks) and reaper.py's shared scan: real processes, deadline-based waits."""

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from corral.spec import ServiceSpec
from corral.supervisor import reaper, spawn
from corral.supervisor.spawn import RESET_SIGNALS
from tests.helpers import pid_alive, proc_status, wait_until

pytestmark = pytest.mark.timeout(30)

needs_setpriv = pytest.mark.skipif(not spawn._pdeathsig_shim(),
                                   reason="no setpriv with --pdeathsig here")


# A master without an undertaker: only the death signal can end its worker.
MASTER = """
import signal, sys
from corral.spec import ServiceSpec
from corral.supervisor.spawn import Spawner
signal.signal(signal.SIGQUIT, signal.SIG_IGN) if sys.argv[1] == "ignored" else None
child = Spawner().spawn(ServiceSpec(name="s", command=("/bin/sleep", "1000")), "s", 0)
print(child.pid, flush=True)
sys.stdin.read()
"""


@needs_setpriv
@pytest.mark.parametrize("quit_signal", ["default", "ignored"])
def test_a_command_dies_with_its_master_and_starts_with_clean_signals(quit_signal):
    master = subprocess.Popen([sys.executable, "-c", MASTER, quit_signal], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, start_new_session=True)
    try:
        pid = int(master.stdout.readline())
        wait_until(lambda: open(f"/proc/{pid}/comm").read().strip() == "sleep",
                   message="the command exec'd")
        status = proc_status(pid)
        # Only the signals corral resets: what the environment ignored before
        # corral started (e.g. glibc's signal 32 under some make) stays so.
        reset = sum(1 << (sig - 1) for sig in RESET_SIGNALS)
        assert int(status["SigBlk"][0], 16) == 0 and int(status["SigIgn"][0], 16) & reset == 0
        assert os.getsid(pid) == pid  # its own session
        master.kill()
        master.wait()
        wait_until(lambda: not pid_alive(pid), message=f"worker {pid} gone with its master")
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()


@needs_setpriv
def test_fast_spawn_keeps_env_cwd_and_output_pipes(tmp_path):
    spec = ServiceSpec(name="s", command=("/bin/sh", "-c", "pwd; echo $CORRAL_INSTANCE $X >&2"),
                       cwd=str(tmp_path), env=(("X", "y"),))
    child = spawn.Spawner().spawn(spec, "s", 0)
    try:
        wait_until(lambda: child.poll() is not None, message="the command exits")
        assert child.exit.code == 0
        assert os.read(child.out_fd, 4096) == f"{tmp_path}\n".encode()
        assert os.read(child.err_fd, 4096) == b"s y\n"
    finally:
        child.close()
        os.close(child.out_fd)
        os.close(child.err_fd)


def test_a_stdin_pipe_is_the_commands_fd_0_and_never_blocks_the_master():
    spec = ServiceSpec(name="s", command=("/bin/sh", "-c", "read l; echo \"got $l\"; sleep 1000"),
                       stdin="pipe")
    child = spawn.Spawner().spawn(spec, "s", 0)
    try:
        fd = child.stdin_fd
        assert not os.get_blocking(fd) and not os.get_inheritable(fd)
        assert child.write_stdin(b"hi\n") == 3
        os.set_blocking(child.out_fd, True)
        assert os.read(child.out_fd, 4096) == b"got hi\n"
        # It reads no more: the pipe fills, and what does not fit is not written.
        size = 1 << 20
        assert 0 < child.write_stdin(b"x" * size) < size
        assert child.write_stdin(b"y") == 0
        child.signal_group(signal.SIGKILL)
        wait_until(lambda: child.poll() is not None, message="the command dies")

        def broken():  # its sleep also holds fd 0, and may die a moment after sh
            try:
                child.write_stdin(b"z")
            except BrokenPipeError:  # no reader: EPIPE, the pipe closed
                return True
            return False

        wait_until(broken, message="EPIPE once no process reads the pipe")
        assert child.stdin_fd is None
        with pytest.raises(ValueError):
            child.write_stdin(b"z")
    finally:
        _close(child)


def test_without_stdin_pipe_a_command_reads_dev_null():
    spec = ServiceSpec(name="s", command=("/bin/sh", "-c", "cat; echo eof"))
    child = spawn.Spawner().spawn(spec, "s", 0)
    try:
        assert child.stdin_fd is None
        wait_until(lambda: child.poll() is not None, message="the command exits")
        assert os.read(child.out_fd, 4096) == b"eof\n"
    finally:
        _close(child)


def test_shared_scan_finds_the_same_family_and_skips_the_dead():
    mark = reaper.marker()
    env = {**os.environ, reaper.MARKER_VAR: mark, reaper.INSTANCE_VAR: "fam"}
    kids = [subprocess.Popen(["/bin/sleep", "1000"], env=env) for _ in range(3)]
    loop = asyncio.new_event_loop()
    try:
        wait_until(lambda: len(reaper.family(mark, "fam")) == 3, message="the family")
        plain = sorted(reaper.family(mark, "fam"))

        async def shared():
            first = sorted(reaper.family(mark, "fam"))
            kids[0].kill()
            kids[0].wait()  # gone after the scan: still not reported
            second = sorted(reaper.family(mark, "fam"))
            await asyncio.sleep(0)  # the next iteration scans again
            return first, second, sorted(reaper.family(mark, "fam"))

        reaper.share_scans(loop)
        first, second, third = loop.run_until_complete(shared())
        assert first == plain
        assert second == third == [p for p in plain if p[0] != kids[0].pid]
    finally:
        reaper.share_scans(None)
        loop.close()
        for kid in kids:
            kid.kill()
            kid.wait()


def test_signals_blocked_restores_the_mask():
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    with spawn.signals_blocked():
        assert signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, ())
    assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == before


def _close(child):
    child.close()
    for fd in (child.out_fd, child.err_fd, child.notify_fd):
        if fd is not None:
            os.close(fd)


def test_every_worker_is_reaped_by_its_pidfd_python_ones_too():
    """A Python worker leaves multiprocess's bookkeeping at once: the master
    reaps it by waitid(P_PIDFD), as it does a command, so that nothing but
    its Child (or a re-exec'd master's, upgrade.py) takes its exit status."""
    import multiprocess.process

    from corral.service import Service

    spawner = spawn.Spawner()
    worker = spawner.spawn(ServiceSpec(name="p", tree=Service()), "p", 0)
    command = spawner.spawn(ServiceSpec(name="c", command=("/bin/sh", "-c", "exit 3")), "c", 0)
    try:
        assert not multiprocess.process._children  # disowned: no waitpid of its own
        assert worker.poll() is None  # alive: WNOHANG answers nothing yet
        os.kill(worker.pid, signal.SIGKILL)
        wait_until(lambda: worker.poll() is not None, message="the Python worker reaped")
        assert worker.exit.signal == signal.SIGKILL and worker.exit.code is None
        wait_until(lambda: command.poll() is not None, message="the command reaped")
        assert command.exit.code == 3 and command._popen.returncode == 3
        with pytest.raises(ChildProcessError):
            os.waitpid(worker.pid, os.WNOHANG)  # gone for good: it was ours to reap
    finally:
        for child in (worker, command):
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
                wait_until(lambda c=child: c.poll() is not None, message="killed")
            _close(child)


def test_without_waitid_by_pidfd_a_worker_is_reaped_by_its_pid(monkeypatch):
    """Linux 5.3 has pidfd_open but not waitid(P_PIDFD): waitpid on the pid."""
    from corral.supervisor import child as child_module

    monkeypatch.setattr(child_module, "_P_PIDFD", None)
    child = spawn.Spawner().spawn(ServiceSpec(name="c", command=("/bin/sh", "-c", "exit 4")), "c", 0)
    try:
        wait_until(lambda: child.poll() is not None, message="the command reaped")
        assert child.exit.code == 4
    finally:
        _close(child)
