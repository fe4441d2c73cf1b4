"""Restart decisions: a small pure function of history, exit and time.

decide() never sleeps and never reads a clock: the caller passes `now` (a
monotonic reading) and gets back what to do plus the new history. The
backoff is Twisted's backoffPolicy (initial * factor ** attempt, capped,
with jitter); the give-up rule is Erlang/OTP's intensity limit (more than
max_restarts restarts within restart_window seconds).
"""

import os
import random as _random
import signal
from dataclasses import dataclass

from corral.errors import EXIT_WORKER_BOOT


@dataclass(frozen=True)
class Exit:
    """How a process ended: an exit code, or the signal that killed it."""

    code: int = None
    signal: int = None
    error: str = None  # it never ran: the spawn itself failed
    # The exit in words where the code alone would mislead: corral killed it,
    # and why ("killed by the watchdog: ..."), or it ended before it was
    # ready ("exit 0 after 0.02 s, within start_seconds = 1: a failed start").
    cause: str = None

    @classmethod
    def from_status(cls, status):
        """From a waitpid status."""
        return cls.from_returncode(os.waitstatus_to_exitcode(status))

    @classmethod
    def from_returncode(cls, returncode):
        """From a multiprocessing-style exit code (negative = signal)."""
        if returncode < 0:
            return cls(signal=-returncode)
        return cls(code=returncode)

    @property
    def failed(self):
        return self.error is not None or self.signal is not None or self.code != 0

    def __str__(self):
        if self.error is not None:
            return f"spawn failed: {self.error}"
        if self.cause is not None:  # never blame a SIGKILL corral sent itself
            return self.cause
        if self.signal is not None:
            return signal_name(self.signal)
        return f"exit {self.code}"


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(frozen=True)
class History:
    """What the policy remembers of one instance between exits."""

    restarts: tuple = ()  # monotonic times of the restarts within the window
    attempt: int = 0  # restarts since the last stable run


@dataclass(frozen=True)
class Restart:
    delay: float
    reason: str


@dataclass(frozen=True)
class GiveUp:
    reason: str


@dataclass(frozen=True)
class Finish:
    reason: str


def decide(spec, history, exit, started_at, now, random=_random.random, *, failed=False,
           ready_at=None):
    """Return (Restart | GiveUp | Finish, new History) for an unasked exit.

    spec: the ServiceSpec (restart, exit_codes, backoff_*, max_restarts,
    restart_window); an exit code in exit_codes is a success (a signal never is).
    started_at: monotonic time the instance was spawned; now: the exit time;
    ready_at: when it became RUNNING (None: it never did).
    failed: a failure whatever its exit code: it exited before it was ready
    (readiness.py), or the master stopped it for failing its health checks
    or max_memory (health.py).

    An exit after a run past the start window (it became RUNNING, and ran
    at least backoff_reset seconds) restarts at once and starts the count
    over: the service has shown it can start, so a crash then is not a
    crash loop (supervisord's rule once past startsecs). Any other exit is
    a failed start: backed off, and counted against max_restarts in
    restart_window (systemd's StartLimitBurst, OTP's intensity).
    docs/config.md says why these defaults.
    """
    if spec.kind.cannot_boot(exit):
        return GiveUp(f"could not load or start its service tree ({exit})"), history
    if spec.restart == "never":
        return Finish(f"{exit}; restart = never"), history
    if spec.restart == "on-failure" and exit.code in spec.exit_codes and not failed:
        return Finish(f"{exit}; restart = on-failure"), history

    ran = now - started_at
    if ready_at is not None and ran >= spec.backoff_reset:
        return Restart(0.0, f"{exit} after {ran:.1f} s up; restarting at once"), History()
    attempt = history.attempt
    recent = tuple(t for t in history.restarts if now - t < spec.restart_window)
    if len(recent) >= spec.max_restarts:
        starts = len(recent) + 1
        return (
            GiveUp(f"exited {starts} times in {spec.restart_window:g} s ({exit}): giving up"),
            History(recent, attempt),
        )
    delay = min(spec.backoff_max, spec.backoff_initial * spec.backoff_factor**attempt)
    delay *= 1 + spec.backoff_jitter * (2 * random() - 1)
    delay = max(0.0, delay)
    new = History(recent + (now + delay,), attempt + 1)
    return Restart(delay, f"{exit}; restarting in {delay:.2f} s"), new
