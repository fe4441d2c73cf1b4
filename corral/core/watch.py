"""The rules for watched instances: readiness, the watchdog, health, memory.

Part of the decision step (step.py), pure like it: these functions read and
change records and add effects to the step's list; the probes themselves
(a TCP connect, an HTTP GET, an exec, a pass over /proc) are effects that
the shell runs and answers with Probed or MemorySampled.

    ready = (none)          command: once it stayed up start_seconds (1 s unless
                            set; 0: once spawned); Python worker: once
                            startService finished (READY=1 on its notify pipe)
    ready = "notify"        command: once it sends READY=1 to $NOTIFY_SOCKET;
                            Python worker: as with none
    ready = {tcp|http = ..} once a probe answers; retried every PROBE_INTERVAL
    start_seconds = N       ("seconds", N): once it has stayed up N seconds
                            (supervisord's startsecs); an exit before is a failed start

A Python worker with tcp/http/seconds is ready when both its startService
has finished and the check passed. Not ready `start_timeout` seconds after
the spawn, or silent for `watchdog` seconds while RUNNING: SIGKILL, and the
policy decides when the exit comes back (an instance that missed its
deadline is not trusted to stop by itself). `failures` failed health
probes in a row, or too much RSS, stop a RUNNING instance as FAILING.
"""

import dataclasses
import signal

from corral.core.record import (HEALTH, MEMORY, PROBE, READY_BY, UP_FOR, WATCHDOG,
                                Starting)
from corral.core.states import Event, State
from corral.healthspec import format_bytes
from corral.readyspec import describe as describe_ready

PROBE_INTERVAL = 0.05  # s between two probes of a starting instance
MEMORY_PERIOD = 1.0  # s between two RSS passes, while any instance needs one
WATCHED = (READY_BY, UP_FOR, PROBE, WATCHDOG, HEALTH)  # end with the process


def spawned(step, record):
    """record is STARTING: make it RUNNING now, or say what it waits for."""
    spec = record.spec
    kind = spec.ready[0] if spec.ready else None
    starting = Starting(notified=not spec.kind.awaits_ready_message(spec),
                        checked=kind in (None, "notify"))
    if starting.notified and starting.checked:
        _ready(step, record)  # a plain command: RUNNING once spawned, no line
        return
    record.starting = starting
    if spec.ready is not None:
        record.reason += f"; waiting for {describe_ready(spec.ready)}"
    if spec.start_timeout:
        step.arm(record, READY_BY, spec.start_timeout)
    if kind == "seconds":
        step.arm(record, UP_FOR, spec.ready[1])
    _advance(step, record)


def _advance(step, record):
    starting = record.starting
    if record.state is not State.STARTING or starting is None or not starting.notified:
        return
    spec = record.spec
    if not starting.checked:
        if spec.ready[0] in ("tcp", "http") and PROBE not in record.deadlines:
            step.arm(record, PROBE, 0.0)  # the first probe now, through the same path
        return
    if spec.ready is None:
        step.log("ready", record)  # a Python worker's startService finished
    else:
        step.log(f"ready ({starting.how or describe_ready(spec.ready)})", record)
    _ready(step, record)


def _ready(step, record):
    record.starting = None
    record.ready_at = step.now  # past its start window: a crash from now restarts at once
    for kind in (READY_BY, UP_FOR, PROBE):
        step.disarm(record, kind)
    step.move(record, Event.READY)
    spec = record.spec
    if spec.watchdog:
        record.beat_at = step.now
        step.arm(record, WATCHDOG, spec.watchdog)
    if spec.health is not None:
        step.arm(record, HEALTH, spec.health.interval)
    if spec.max_memory is not None and MEMORY not in step.sup.deadlines:
        step.arm(None, MEMORY, MEMORY_PERIOD)


def gone(step, record, exit):
    """record's process exited: its watches end. Returns the exit, in words
    when it was a failed start (it ended before it was ready), which the
    policy then counts as a failure whatever its code."""
    spec = record.spec
    if record.state is State.STARTING and spec.ready is not None \
            and exit.error is None and not record.killed:
        if spec.ready[0] == "seconds":
            why = (f"after {step.now - record.started_at:.2f} s, within start_seconds = "
                   f"{spec.ready[1]:g}")
        else:
            why = f"before it was ready (waiting for {describe_ready(spec.ready)})"
        exit = dataclasses.replace(exit, cause=f"{exit} {why}: a failed start")
    record.starting = None
    record.health_failures, record.health_note = 0, None
    for kind in WATCHED:
        step.disarm(record, kind)
    return exit


def left_running(step, record):
    """record left RUNNING with its process (a stop): health and watchdog end."""
    record.health_failures, record.health_note = 0, None
    for kind in (WATCHDOG, HEALTH):
        step.disarm(record, kind)


# -- what workers say ------------------------------------------------------------

def notified(step, record, line):
    starting = record.starting
    if line == "READY=1":
        if starting is not None and not starting.notified:
            starting.notified = True
            _advance(step, record)
    elif line.startswith("STATUS="):
        record.status_text = line[len("STATUS="):] or None
    elif line == "WATCHDOG=1":
        record.beat_at = step.now
    elif line == "WATCHDOG=trigger":
        if record.state is State.RUNNING:
            kill(step, record, "asked for its watchdog to fire (WATCHDOG=trigger): killing",
                 "killed by the watchdog: it asked (WATCHDOG=trigger)")
    elif line == "STOPPING=1" and not record.said_stopping:
        record.said_stopping = True
        step.log("says it is stopping (STOPPING=1)", record)


def probed(step, record, what, ok, detail):
    if what == "ready":
        _ready_probed(step, record, ok, detail)
    else:
        _health_probed(step, record, ok, detail)


def _ready_probed(step, record, ok, detail):
    starting = record.starting
    if record.state is not State.STARTING or starting is None or starting.checked:
        return
    if not ok:
        starting.problem = detail
        step.arm(record, PROBE, PROBE_INTERVAL)
        return
    target = record.spec.ready[1]  # "tcp 127.0.0.1:5432 answers", "http://.../ answered 200"
    starting.checked = True
    starting.how = target.describe() + (" answers" if target.kind == "tcp"
                                        else f" answered {detail}")
    _advance(step, record)


def _health_probed(step, record, ok, detail):
    if record.state is not State.RUNNING:
        return
    check = record.spec.health
    if ok:
        if record.health_failures:
            step.log("health check passed again", record)
        record.health_failures, record.health_note = 0, None
    else:
        record.health_failures += 1
        failures = record.health_failures
        record.health_note = f"health: {failures} failure{'s' if failures > 1 else ''} ({detail})"
        if failures >= check.failures:
            times = "once" if failures == 1 else f"{failures} times in a row"
            fail(step, record, f"health check failed {times} ({check.describe()}: {detail})")
            return
        step.log(f"health check failed ({failures}/{check.failures}): "
                 f"{check.describe()}: {detail}", record)
    started = record.probe_started if record.probe_started is not None else step.now
    step.arm(record, HEALTH, max(0.0, started + check.interval - step.now))  # start to start


def memory_sampled(step, rss):
    for name, size in rss:
        record = step.sup.records.get(name)
        if record is None or record.state is not State.RUNNING or size is None:
            continue
        limit = record.spec.max_memory
        if limit is not None and size > limit:
            fail(step, record, f"rss {format_bytes(size)} over max_memory {format_bytes(limit)}")


# -- deadlines ---------------------------------------------------------------------

def due(step, record, kind):
    """A watch deadline of record passed (already taken off the record)."""
    spec = record.spec
    if kind == READY_BY and record.state is State.STARTING:
        starting = record.starting
        if starting.notified:
            waited = describe_ready(spec.ready)
        else:
            waited = spec.kind.waiting_for
        problem = f": {starting.problem}" if starting.problem and starting.notified else ""
        kill(step, record, f"not ready {spec.start_timeout:g} s after its spawn "
                           f"(start_timeout; waiting for {waited}{problem}): killing",
             f"not ready within {spec.start_timeout:g} s (start_timeout): "
             f"waiting for {waited}{problem}")
    elif kind == UP_FOR and record.state is State.STARTING:
        record.starting.checked = True
        record.starting.how = f"up {spec.ready[1]:g} s"
        _advance(step, record)
    elif kind == PROBE and record.state is State.STARTING:
        step.effect_probe(record, "ready")
    elif kind == WATCHDOG and record.state is State.RUNNING \
            and not record.said_stopping and not record.killed:
        silent = step.now - record.beat_at
        if silent < spec.watchdog:
            step.arm(record, WATCHDOG, record.beat_at + spec.watchdog - step.now)
        else:
            kill(step, record, f"no watchdog heartbeat for {silent:.1f} s: "
                               f"killing (watchdog = {spec.watchdog:g})",
                 f"killed by the watchdog: no heartbeat for {silent:.1f} s")
    elif kind == HEALTH and record.state is State.RUNNING:
        record.probe_started = step.now
        step.effect_probe(record, "health")


def memory_due(step):
    names = tuple(r.name for r in step.sup.records.values()
                  if r.state is State.RUNNING and r.spec.max_memory is not None)
    if names:
        step.sample_memory(names)
        step.arm(None, MEMORY, MEMORY_PERIOD)


def kill(step, record, why, cause):
    """SIGKILL for a missed deadline: the exit comes back like any other, and
    reads as `cause` (policy.Exit.cause), not as a bare SIGKILL."""
    if record.killed:
        return
    record.killed = cause
    for kind in WATCHED:
        step.disarm(record, kind)
    step.log(why, record)
    step.signal(record, signal.SIGKILL)


def fail(step, record, why):
    """Stop a RUNNING instance gracefully as a failure: when it is gone, the
    restart policy takes its exit as one (backoff, FATAL, restart = never)."""
    if step.sup.shutting_down or record.state is not State.RUNNING:
        return
    step.log(f"{why}: stopping it as failed", record)
    step.stop_process(record, Event.FAIL, why)
