"""The asyncio runtime: run one corral service subtree inside a worker
process, after the bootstrap (workers/bootstrap.py), on a fresh event loop.

The invariant: start in order, report ready once, stop in reverse awaiting
each, and the exit code tells the master what happened.

    0                  started, reported ready (or was stopped while starting),
                       stopped cleanly on a stop signal
    EXIT_WORKER_BOOT   privilegedStartService/startService raised: the master
                       does not retry what cannot boot
    1                  stopService raised

Design notes:

- Fresh loop. The worker was forked from an asyncio master; the inherited
  loop shares the master's selector and self-pipe, so it is never touched.
  run_tree makes a new loop, sets it as current and closes it at the end.
- Signal handlers only enqueue: the stop signal sets an asyncio.Event and
  returns. Everything else (logging, stopping) happens on the loop. A second
  stop signal sets the same event again and so changes nothing.
- A stop signal while startService is still awaiting cancels the start and
  goes straight to stopping; no ready is reported for a start that did not
  finish.
- The ready notice is sent at most once, only after the whole start
  finished, and not at all if a stop was already asked for (the master is
  then stopping us and a late ready would be a stray event).
- Logging goes to stderr without time or worker name: the master reads the
  pipe and stamps both on every line.
- The master is watched through a pidfd on the loop: if it dies and the
  kernel's death signal did not end us first, the tree stops as on a stop
  signal (no worker outlives its master).
- With a `watchdog`, a timer on the same loop writes WATCHDOG=1 to the
  master every third of it (_Heartbeat): the heartbeat proves the loop turns.
- A task that ends in an exception nobody takes (no await, no gather) is
  logged with its traceback when it ends. asyncio would say so only when the
  task is garbage collected: never, for a service that keeps it (self.task).
  The worker goes on: one failed task is not a failed service.
"""

import asyncio
import logging
import os
import signal
import sys

from corral.errors import EXIT_TASK_CRASHED, EXIT_WORKER_BOOT
from corral.service import StopErrors, as_awaitable, pending_starts

log = logging.getLogger("corral.worker")

EXIT_OK = 0
EXIT_STOP_FAILED = 1

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def setup_logging(name="corral.worker"):
    """Send the root logger to stderr at INFO, once; return logger `name`."""
    root = logging.getLogger()
    if not any(getattr(h, "_corral_worker", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler._corral_worker = True
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    return logging.getLogger(name)


def run(start, *, stop_signals, notify):
    """The runtime's entry (bootstrap.worker_main): spec.tree, as the master
    made it; the master ran its privilegedStartService (supervisor/binding.py)
    and holds the sockets, and a pidfd of the master backs up PDEATHSIG."""
    return run_tree(start.spec.tree, stop_signals=stop_signals, notify=notify,
                    task_crash=start.spec.task_crash,
                    master_pid=start.master_pid, privileged=False)


class Host:
    """What another runtime may change of this lifecycle (runtimes/tx.py):
    the loop it runs on, what a start or stop result is waited on as, and a
    last step on the loop before it closes. This one: plain asyncio."""

    def new_loop(self):
        return asyncio.new_event_loop()

    def awaitable(self, result):
        """What to await for startService's or stopService's result, or None."""
        return as_awaitable(result)  # a Deferred too, with Twisted installed

    def before_close(self, loop):
        pass


ASYNCIO = Host()


def run_tree(service, *, stop_signals=(signal.SIGTERM, signal.SIGINT), notify=None,
             master_pid=None, privileged=True, host=ASYNCIO, task_crash="log"):
    """Start `service`, report ready, stop it on a stop signal; return an exit code.

    notify, if given, is called with "READY=1" once the start has finished.
    master_pid, if given, is watched: when that process ends, the tree stops
    as on a stop signal. privileged=False skips privilegedStartService: the
    master ran it on its copy of the tree already (supervisor/sockets.py).
    """
    if not logging.getLogger().handlers:
        setup_logging()
    loop = host.new_loop()
    asyncio.set_event_loop(loop)
    loop.set_task_factory(_reporting_task)
    try:
        return loop.run_until_complete(
            _run(service, stop_signals, notify, master_pid, privileged, host, task_crash))
    finally:
        try:
            host.before_close(loop)
        finally:
            _close(loop)


def _reporting_task(loop, coro, **kwargs):
    task = asyncio.Task(coro, loop=loop, **kwargs)
    task.add_done_callback(_when_done)
    return task


def _when_done(task):
    if not task.cancelled():
        task.get_loop().call_soon(_report_if_untaken, task, 3)


def _report_if_untaken(task, turns):
    # Those awaiting it take the exception within a few turns of the loop (a
    # task awaiting asyncio.wait() of it wakes two turns after it ended).
    if turns > 1:
        task.get_loop().call_soon(_report_if_untaken, task, turns - 1)
    # _log_traceback: asyncio's own "nobody took the exception" flag (taking
    # it clears it, and then asyncio does not report it again at collection).
    elif getattr(task, "_log_traceback", False):
        exc = task.exception()
        log.error("task %s (%s) raised", task.get_name(),
                  getattr(task.get_coro(), "__qualname__", "?"), exc_info=exc)
        crashed = getattr(task.get_loop(), "corral_task_crashed", None)
        if crashed is not None:  # task_crash = "restart"
            crashed()


async def _run(service, stop_signals, notify, master_pid=None, privileged=True, host=ASYNCIO,
               task_crash="log"):
    loop = asyncio.get_running_loop()
    stop_asked = asyncio.Event()
    crashed = []
    if task_crash == "restart":
        def on_crash():
            if not crashed:
                log.error('task_crash = "restart": stopping the worker, exit %d',
                          EXIT_TASK_CRASHED)
            crashed.append(1)
            stop_asked.set()

        loop.corral_task_crashed = on_crash
    for signum in stop_signals:
        loop.add_signal_handler(signum, stop_asked.set)
    pidfd = _watch_master(loop, master_pid, stop_asked.set)
    heartbeat = _Heartbeat.start(loop, notify)  # watchdog: WATCHDOG=1 from this loop
    try:
        code = await _supervise(service, stop_asked, notify, privileged, host)
        return EXIT_TASK_CRASHED if crashed and code == EXIT_OK else code
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
        if pidfd is not None:
            loop.remove_reader(pidfd)
            os.close(pidfd)


class _Heartbeat:
    """WATCHDOG=1 every third of $CORRAL_WATCHDOG_USEC (the service's
    `watchdog`), sent by a timer on the worker's own loop: a loop blocked by
    a stuck callback sends nothing, and the master's watchdog kills it."""

    def __init__(self, loop, notify, interval):
        self.loop, self.notify, self.interval = loop, notify, interval
        self.handle = None

    @classmethod
    def start(cls, loop, notify):
        try:
            usec = int(os.environ.get("CORRAL_WATCHDOG_USEC", "0"))
        except ValueError:
            usec = 0
        if notify is None or usec <= 0:
            return None
        heartbeat = cls(loop, notify, usec / 3e6)
        heartbeat.beat()
        return heartbeat

    def beat(self):
        try:
            self.notify("WATCHDOG=1")
        except Exception:
            pass  # the master is gone: it cannot miss us
        self.handle = self.loop.call_later(self.interval, self.beat)

    def cancel(self):
        if self.handle is not None:
            self.handle.cancel()


def _watch_master(loop, master_pid, stop):
    """A pidfd of the master on the loop: if it dies, stop (backing up the
    PR_SET_PDEATHSIG the bootstrap set, which a change of ids clears).
    Returns the pidfd, or None."""
    if master_pid is None:
        return None

    def gone():
        loop.remove_reader(pidfd)
        log.warning("the master (pid %d) is gone: stopping", master_pid)
        stop()

    try:
        pidfd = os.pidfd_open(master_pid)
    except ProcessLookupError:
        log.warning("the master (pid %d) is gone: stopping", master_pid)
        stop()
        return None
    loop.add_reader(pidfd, gone)
    return pidfd


async def _supervise(service, stop_asked, notify, privileged=True, host=ASYNCIO):
    starting = asyncio.create_task(_start(service, privileged, host), name="corral-start")
    waiting = asyncio.create_task(stop_asked.wait(), name="corral-stop-wait")
    await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)

    if not starting.done():
        log.info("stop signal while starting %r: start cancelled, stopping", service)
        starting.cancel()
        try:
            await starting
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("startService of %r raised while being cancelled", service)
        return EXIT_OK if await _stop(service, host, only_if_running=True) else EXIT_STOP_FAILED

    try:
        starting.result()
    except (Exception, asyncio.CancelledError):  # cancelled by itself, not by us
        log.exception("startService of %r failed", service)
        waiting.cancel()
        await _stop(service, host, only_if_running=True)
        return EXIT_WORKER_BOOT

    if not stop_asked.is_set() and notify is not None:
        try:
            notify("READY=1")
        except Exception:
            log.exception("could not report ready to the master; stopping")
            waiting.cancel()
            await _stop(service, host)
            return EXIT_STOP_FAILED

    await waiting
    log.info("stop signal: stopping %r", service)
    return EXIT_OK if await _stop(service, host) else EXIT_STOP_FAILED


async def _start(service, privileged=True, host=ASYNCIO):
    if privileged:
        service.privilegedStartService()
    pending = host.awaitable(service.startService())
    if pending is not None:
        await pending
    # A start the tree's own code dropped (a MultiService subclass that
    # ignores the base's result) still has to finish before READY=1.
    while pending := pending_starts(service):
        await asyncio.gather(*pending)


async def _stop(service, host=ASYNCIO, only_if_running=False):
    """Stop the tree; log any error. Returns True if the stop went cleanly."""
    if only_if_running and not service.running:
        return True
    try:
        pending = host.awaitable(service.stopService())
        if pending is not None:
            await pending
    except StopErrors as exc:
        # Each child's traceback was logged when it failed.
        log.error("%s", exc)
        return False
    except (Exception, asyncio.CancelledError):
        log.exception("stopService of %r failed", service)
        return False
    return True


def _close(loop):
    """Cancel leftover tasks, finish async generators, close the loop."""
    try:
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
        for task in leftover:
            if not task.cancelled() and task.exception() is not None:
                log.error("task %r failed during shutdown", task, exc_info=task.exception())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
