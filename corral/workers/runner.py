"""Run one service subtree inside a worker process, after the bootstrap.

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
"""

import asyncio
import inspect
import logging
import signal
import sys

from corral.errors import EXIT_WORKER_BOOT
from corral.service import StopErrors

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


def run_tree(service, *, stop_signals=(signal.SIGTERM, signal.SIGINT), notify=None):
    """Start `service`, report ready, stop it on a stop signal; return an exit code.

    notify, if given, is called with "READY=1" once the start has finished.
    """
    if not logging.getLogger().handlers:
        setup_logging()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_run(service, stop_signals, notify))
    finally:
        _close(loop)


async def _run(service, stop_signals, notify):
    loop = asyncio.get_running_loop()
    stop_asked = asyncio.Event()
    for signum in stop_signals:
        loop.add_signal_handler(signum, stop_asked.set)

    starting = asyncio.create_task(_start(service), name="corral-start")
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
        return EXIT_OK if await _stop(service, only_if_running=True) else EXIT_STOP_FAILED

    try:
        starting.result()
    except (Exception, asyncio.CancelledError):  # cancelled by itself, not by us
        log.exception("startService of %r failed", service)
        waiting.cancel()
        await _stop(service, only_if_running=True)
        return EXIT_WORKER_BOOT

    if not stop_asked.is_set() and notify is not None:
        try:
            notify("READY=1")
        except Exception:
            log.exception("could not report ready to the master; stopping")
            waiting.cancel()
            await _stop(service)
            return EXIT_STOP_FAILED

    await waiting
    log.info("stop signal: stopping %r", service)
    return EXIT_OK if await _stop(service) else EXIT_STOP_FAILED


async def _start(service):
    service.privilegedStartService()
    result = service.startService()
    if inspect.isawaitable(result):
        await result


async def _stop(service, only_if_running=False):
    """Stop the tree; log any error. Returns True if the stop went cleanly."""
    if only_if_running and not service.running:
        return True
    try:
        result = service.stopService()
        if inspect.isawaitable(result):
            await result
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
