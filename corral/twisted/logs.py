"""Twisted's log events (twisted.logger, legacy log.msg/log.err, unhandled
errors in Deferreds) into corral's log stream.

A worker writes its log lines to stderr as "LEVEL name: message", and the
master stamps time and the worker's name on each (workers/runtimes/aio.py
does the same for the logging module). Twisted's global log beginner is
pointed at an observer that writes that format, from INFO up, with a
failure's traceback under its line. Without it Twisted buffers its events
and drops them. An application's own ILogObserver component (a .tac that
sets one, as twistd's docs show) gets every event too.
"""

import sys

LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR",
          "critical": "CRITICAL"}


def observer(stream=None):
    """An ILogObserver writing "LEVEL namespace: text" lines to stream (stderr)."""
    from twisted.logger import LogLevel, formatEvent

    def observe(event):
        out = stream or sys.stderr
        level = event.get("log_level", LogLevel.info)
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            try:
                text = f"{text}\n{failure.getTraceback()}".rstrip()
            except Exception:  # noqa: BLE001 - a log line must never raise
                text = f"{text} ({failure!r})"
        name = event.get("log_namespace") or "twisted"
        if name == "log_legacy":  # log.msg: its "system", as twistd shows it
            name = event.get("system") or "-"
        try:
            out.write(f"{LEVELS.get(level.name, level.name.upper())} {name}: {text}\n")
            out.flush()
        except (OSError, ValueError):
            pass  # the master is gone

    return observe


def begin(application=None):
    """Send Twisted's events to corral's stream (and the application's own
    ILogObserver, if it sets one), from INFO up."""
    from twisted.logger import (
        FilteringLogObserver, ILogObserver, LogLevel, LogLevelFilterPredicate,
        globalLogBeginner,
    )

    observers = [FilteringLogObserver(observer(),
                                      [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)])]
    own = None
    if application is not None:
        try:
            own = application.getComponent(ILogObserver, None)
        except Exception:  # noqa: BLE001 - not a Componentized
            own = None
    if own is not None:
        observers.append(own)
    globalLogBeginner.beginLoggingTo(observers, discardBuffer=False, redirectStandardIO=False)
