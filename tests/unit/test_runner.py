"""run_tree in real forked children, signalled for real, and a few in-process runs.

Each forked child writes what its services do, one line per step, to a
journal pipe; the test reads it with deadlines, signals the child, and
reaps it through a pidfd. When a wait fails, the child's stderr is shown.
"""

import asyncio
import logging
import os
import select
import signal
import sys
import time
import traceback

import pytest

from corral.errors import EXIT_WORKER_BOOT
from corral.service import MultiService, Service
from corral.workers.runtimes import aio as runner
from corral.workers.runtimes.aio import run_tree, setup_logging
from tests.helpers import Boom, Recorder

DEADLINE = 10.0


def multi(journal, *specs):
    parent = MultiService()
    for name, start, stop in specs:
        Recorder(name, journal, start, stop).setServiceParent(parent)
    return parent


class PipeJournal:
    """The child's end of the journal: one line per write, atomic."""

    def __init__(self, fd):
        self.fd = fd

    def append(self, line):
        os.write(self.fd, (line + "\n").encode())

    def notify(self, message):
        self.append(f"notify {message}")


class Worker:
    """The test's view of a forked child running run_tree."""

    def __init__(self, pid, journal_fd, gate_fd, stderr_path):
        self.pid = pid
        self.journal_fd = journal_fd
        self.gate_fd = gate_fd
        self.stderr_path = stderr_path
        self.lines = []
        self.returncode = None
        self._buffer = b""
        self._eof = False

    def stderr(self):
        try:
            return self.stderr_path.read_text()
        except FileNotFoundError:
            return ""

    def _fail(self, why):
        pytest.fail(f"{why}\njournal: {self.lines}\n--- child stderr ---\n{self.stderr()}")

    def _read_some(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        readable, _, _ = select.select([self.journal_fd], [], [], remaining)
        if not readable:
            return False
        data = os.read(self.journal_fd, 65536)
        if not data:
            self._eof = True
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        self.lines.extend(line.decode() for line in complete)
        return True

    def expect(self, line, timeout=DEADLINE):
        """Wait until the child journals `line`."""
        deadline = time.monotonic() + timeout
        while line not in self.lines:
            if self._eof or not self._read_some(deadline):
                self._fail(f"child did not journal {line!r}")

    def signal(self, signum):
        os.kill(self.pid, signum)

    def open_gate(self):
        os.write(self.gate_fd, b"x")

    def wait(self, timeout=DEADLINE):
        """Reap the child (deadline), read the rest of its journal; return its code."""
        pidfd = os.pidfd_open(self.pid)
        try:
            readable, _, _ = select.select([pidfd], [], [], timeout)
        finally:
            os.close(pidfd)
        if not readable:
            self.kill()
            self._fail(f"child {self.pid} did not exit within {timeout}s")
        _, status = os.waitpid(self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        deadline = time.monotonic() + timeout
        while not self._eof:
            if not self._read_some(deadline):
                self._fail("journal pipe did not close")
        return self.returncode

    def kill(self):
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except (ProcessLookupError, ChildProcessError):
                pass

    def close(self):
        self.kill()
        for fd in (self.journal_fd, self.gate_fd):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def fork_worker(tmp_path):
    """fork_worker(make_service, **run_tree_kwargs) -> Worker; all reaped at teardown."""
    workers = []

    def fork(make_service, **kwargs):
        journal_r, journal_w = os.pipe()
        gate_r, gate_w = os.pipe()
        stderr_path = tmp_path / f"worker{len(workers)}.stderr"
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 70
            try:
                os.close(journal_r)
                os.close(gate_w)
                err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(err, 2)
                os.close(err)
                sys.stderr = open(2, "w", buffering=1, closefd=False)
                logging.getLogger().handlers.clear()  # pytest's capture handlers
                Recorder.gate_fd = gate_r
                journal = PipeJournal(journal_w)
                code = run_tree(make_service(journal), notify=journal.notify, **kwargs)
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        os.close(journal_w)
        os.close(gate_r)
        worker = Worker(pid, journal_r, gate_w, stderr_path)
        workers.append(worker)
        return worker

    yield fork
    for worker in workers:
        worker.close()


# -- forked workers ---------------------------------------------------------


@pytest.mark.timeout(30)
def test_ready_after_start_then_sigterm_stops_in_reverse(fork_worker):
    worker = fork_worker(
        lambda j: multi(j, ("a", "coro", "future"), ("b", "future", "sync"), ("c", "sync", "coro"))
    )
    worker.expect("notify READY=1")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.stderr()
    assert worker.lines == [
        "start-begin a", "start-end a",
        "start-begin b", "start-end b",
        "start c",
        "notify READY=1",
        "stop-begin c", "stop-end c",
        "stop b",
        "stop-begin a", "stop-end a",
    ]
    err = worker.stderr()
    assert "INFO corral.worker: stop signal" in err
    assert "Traceback" not in err


@pytest.mark.timeout(30)
def test_sigint_also_stops(fork_worker):
    worker = fork_worker(lambda j: multi(j, ("a", "sync", "sync")))
    worker.expect("notify READY=1")
    worker.signal(signal.SIGINT)
    assert worker.wait() == 0, worker.stderr()
    assert worker.lines == ["start a", "notify READY=1", "stop a"]


@pytest.mark.timeout(30)
def test_custom_stop_signals(fork_worker):
    worker = fork_worker(lambda j: multi(j, ("a", "sync", "sync")), stop_signals=(signal.SIGUSR1,))
    worker.expect("notify READY=1")
    worker.signal(signal.SIGUSR1)
    assert worker.wait() == 0, worker.stderr()
    assert worker.lines[-1] == "stop a"


@pytest.mark.timeout(30)
def test_a_second_stop_signal_during_the_stop_changes_nothing(fork_worker):
    worker = fork_worker(lambda j: multi(j, ("a", "sync", "sync"), ("b", "sync", "gate")))
    worker.expect("notify READY=1")
    worker.signal(signal.SIGTERM)
    worker.expect("stop-begin b")
    worker.signal(signal.SIGTERM)
    worker.signal(signal.SIGINT)
    worker.open_gate()
    assert worker.wait() == 0, worker.stderr()
    assert worker.lines == [
        "start a", "start b", "notify READY=1", "stop-begin b", "stop-end b", "stop a",
    ]


@pytest.mark.timeout(30)
def test_start_raising_exits_worker_boot_and_stops_what_started(fork_worker):
    worker = fork_worker(
        lambda j: multi(j, ("a", "sync", "sync"), ("b", "raise", "sync"), ("c", "sync", "sync"))
    )
    assert worker.wait() == EXIT_WORKER_BOOT, worker.stderr()
    assert worker.lines == ["start a", "start b", "stop b", "stop a"]
    err = worker.stderr()
    assert "ERROR corral.worker: startService of" in err
    assert "Traceback" in err
    assert "Boom: start b failed" in err


@pytest.mark.timeout(30)
def test_async_start_raising_exits_worker_boot(fork_worker):
    worker = fork_worker(
        lambda j: multi(j, ("a", "coro", "coro"), ("b", "coro-raise", "sync"), ("c", "sync", "sync"))
    )
    assert worker.wait() == EXIT_WORKER_BOOT, worker.stderr()
    assert worker.lines == [
        "start-begin a", "start-end a", "start-begin b", "start-fail b", "stop b",
        "stop-begin a", "stop-end a",
    ]
    err = worker.stderr()
    assert "Traceback" in err
    assert "Boom: start b failed" in err
    assert "notify" not in " ".join(worker.lines)


@pytest.mark.timeout(30)
def test_stop_raising_exits_1_with_traceback(fork_worker):
    worker = fork_worker(lambda j: Recorder("solo", j, "sync", "raise"))
    worker.expect("notify READY=1")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 1, worker.stderr()
    assert worker.lines == ["start solo", "notify READY=1", "stop solo"]
    err = worker.stderr()
    assert "ERROR corral.worker: stopService of" in err
    assert "Boom: stop solo failed" in err


@pytest.mark.timeout(30)
def test_a_child_stop_error_others_still_stop_exit_1_one_line(fork_worker):
    worker = fork_worker(
        lambda j: multi(j, ("a", "sync", "coro"), ("b", "sync", "coro-raise"), ("c", "sync", "sync"))
    )
    worker.expect("notify READY=1")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 1, worker.stderr()
    assert worker.lines[-5:] == [
        "stop c", "stop-begin b", "stop-fail b", "stop-begin a", "stop-end a",
    ]
    err = worker.stderr()
    # The child's traceback once (from the tree), then one line from the runner.
    assert err.count("Traceback") == 1
    assert "Boom: stop b failed" in err
    assert "ERROR corral.worker: stopService failed for: b\n" in err


@pytest.mark.timeout(30)
def test_stop_signal_during_a_slow_start_cancels_it_and_stops(fork_worker):
    worker = fork_worker(
        lambda j: multi(j, ("a", "sync", "sync"), ("b", "hang", "sync"), ("c", "sync", "sync"))
    )
    worker.expect("start-begin b")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.stderr()
    assert worker.lines == ["start a", "start-begin b", "start-cancelled b", "stop b", "stop a"]
    assert "start cancelled" in worker.stderr()


@pytest.mark.timeout(30)
def test_fresh_loop_when_forked_from_a_running_loop(fork_worker):
    class LoopChecker(Service):
        def __init__(self, journal, inherited):
            super().__init__()
            self.journal = journal
            self.inherited = inherited

        async def startService(self):
            super().startService()
            fresh = asyncio.get_running_loop() is not self.inherited
            self.journal.append(f"fresh {fresh}")

    async def master():
        inherited = asyncio.get_running_loop()
        return fork_worker(lambda j: LoopChecker(j, inherited))

    worker = asyncio.run(master())
    worker.expect("notify READY=1")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.stderr()
    assert worker.lines == ["fresh True", "notify READY=1"]


# -- in process -------------------------------------------------------------


class SelfSignalling(Service):
    """Starts, then sends its own process SIGTERM through the loop."""

    def __init__(self, journal, start="sync"):
        super().__init__()
        self.journal = journal
        self.start_mode = start

    def startService(self):
        super().startService()
        loop = asyncio.get_running_loop()
        self.journal.append(loop)
        loop.call_later(0, os.kill, os.getpid(), signal.SIGTERM)
        if self.start_mode == "hang":
            return self._hang()
        return None

    async def _hang(self):
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            self.journal.append("start cancelled")
            raise

    def stopService(self):
        super().stopService()
        self.journal.append("stop")


@pytest.mark.timeout(30)
def test_in_process_ready_then_stop_on_own_sigterm():
    journal = []
    previous = asyncio.new_event_loop()  # a loop the process already had
    asyncio.set_event_loop(previous)
    try:
        code = run_tree(SelfSignalling(journal), notify=lambda m: journal.append(f"notify {m}"))
    finally:
        previous.close()
    assert code == 0
    loop, *rest = journal
    assert loop is not previous
    assert loop.is_closed()
    assert rest == ["notify READY=1", "stop"]


@pytest.mark.timeout(30)
def test_in_process_stop_during_start_reports_no_ready():
    journal = []
    code = run_tree(SelfSignalling(journal, start="hang"), notify=lambda m: journal.append(m))
    assert code == 0
    assert journal[1:] == ["start cancelled", "stop"]


@pytest.mark.timeout(30)
def test_in_process_start_error_is_logged_with_traceback(caplog):
    journal = []
    service = multi(journal, ("a", "sync", "sync"), ("b", "coro-raise", "sync"))
    with caplog.at_level(logging.INFO):
        code = run_tree(service, notify=journal.append)
    assert code == EXIT_WORKER_BOOT
    [record] = [
        r for r in caplog.records if r.name == "corral.worker" and r.levelno >= logging.ERROR
    ]
    assert isinstance(record.exc_info[1], Boom)
    assert journal[-2:] == ["stop b", "stop a"]
    assert "READY=1" not in journal


def test_in_process_leftover_tasks_are_cancelled():
    journal = []

    class Spawner(Service):
        def startService(self):
            super().startService()
            loop = asyncio.get_running_loop()
            self.task = loop.create_task(self.forever())
            loop.call_later(0, os.kill, os.getpid(), signal.SIGTERM)

        async def forever(self):
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                journal.append("leftover cancelled")
                raise

    assert run_tree(Spawner()) == 0
    assert journal == ["leftover cancelled"]


@pytest.mark.timeout(30)
def test_in_process_a_task_that_raises_unawaited_is_logged_when_it_ends(caplog):
    class Ticker(Service):
        def startService(self):
            super().startService()
            loop = asyncio.get_running_loop()
            self.task = loop.create_task(self.tick(), name="ticker")  # kept: never collected
            self.handled = loop.create_task(self.handled_by_awaiter())
            loop.call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)

        async def tick(self):
            raise Boom("ticker blew up")

        async def handled_by_awaiter(self):
            inner = asyncio.get_running_loop().create_task(self.tick(), name="awaited")
            try:
                await inner
            except Boom:
                pass  # taken: not to be reported

    with caplog.at_level(logging.INFO):
        assert run_tree(Ticker()) == 0                  # one failed task: the service goes on
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(" (")[0] for r in errors] == ["task ticker"]
    assert errors[0].getMessage().endswith(".Ticker.tick) raised")
    assert isinstance(errors[0].exc_info[1], Boom)


def test_setup_logging_once_to_stderr(monkeypatch, capsys):
    root = logging.getLogger()
    old_level = root.level
    monkeypatch.setattr(root, "handlers", [])
    try:
        logger = setup_logging("corral.worker")
        setup_logging("corral.worker")
        assert logger is logging.getLogger("corral.worker")
        assert len(root.handlers) == 1
        assert root.level == logging.INFO
        logging.getLogger("corral.test").info("hello %s", "there")
        logging.getLogger("corral.test").debug("not shown")
        assert capsys.readouterr().err == "INFO corral.test: hello there\n"
    finally:
        root.setLevel(old_level)


def test_run_tree_sets_up_logging_only_without_handlers(monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "setup_logging", lambda *a: calls.append(a))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])
    run_tree(SelfSignalling([]))
    assert calls == []
    monkeypatch.setattr(root, "handlers", [])
    run_tree(SelfSignalling([]))
    assert len(calls) == 1
