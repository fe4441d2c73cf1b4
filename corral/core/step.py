"""The decision step: step(supervision, input, now) -> effects.

The one place where supervision decides. It reads no clock (`now` is given),
does no I/O and knows no asyncio: it changes the plain-data records it is
given and returns what the shell must do (messages.py). The shell
(supervisor/master.py) executes the effects and feeds back what happens; a
replay test feeds scripted inputs with a fake clock instead
(tests/replay/). The rules of readiness, the watchdog, health and memory
are in watch.py; when to restart or give up is policy.py.

Invariants:
- A state changes only through Record.move() (the transition table), and
  every move is published (Moved) with its reason.
- A deadline is a value in record.deadlines; Arm tells the shell to arm
  (or drop) the timers of a record whose deadlines changed.
- An instance with a process and goal DOWN is stopped once no instance
  that runs `after` it (and is going down too) still has a process: stops
  go in the reverse of the start order, for a shutdown as for `stop`.
"""

import dataclasses
import random as _random
import signal

from corral.core import messages as m
from corral.core import policy, watch
from corral.core.record import (KILL, LEFTOVERS, MEMORY, NOTICE, RETRY, Goal, Group, Mode,
                                Record)
from corral.core.states import ACTIVE, AT_REST, BEING_STOPPED, HAS_PROCESS, Event, State

LEFTOVER_POLL = 0.02  # s between checks for a stopped worker's leftover processes
NOTICE_PERIOD = 2.0  # s between "still stopping ..." lines during a shutdown


def step(sup, item, now, random=_random.random):
    """Apply one input to sup (a record.Supervision); return the effects."""
    return Step(sup, now, random).run(item)


class Step:
    """One application of one input: the world, the time and the effects so far."""

    def __init__(self, sup, now, random=_random.random):
        self.sup = sup
        self.now = now
        self.random = random
        self.effects = []
        self._armed = []  # names (None: the master) whose deadlines changed

    def run(self, item):
        handler = _HANDLERS[type(item)]
        handler(self, item)
        self.effects.extend(m.Arm(name) for name in dict.fromkeys(self._armed))
        return self.effects

    # -- what the rules use ------------------------------------------------

    def move(self, record, event, reason=""):
        old = record.move(event)
        record.reason = reason
        record.since = self.now
        if old is State.RUNNING and record.state is not State.RUNNING:
            watch.left_running(self, record)
        self.effects.append(m.Moved(record.name, record.service, old, record.state, event,
                                    reason, record.pid, record.last_exit))

    def log(self, text, record=None):
        self.effects.append(m.Log(text, record.name if record is not None else None))

    def arm(self, record, kind, delay):
        where = self.sup.deadlines if record is None else record.deadlines
        where[kind] = self.now + delay
        self._armed.append(None if record is None else record.name)

    def disarm(self, record, kind):
        where = self.sup.deadlines if record is None else record.deadlines
        if where.pop(kind, None) is not None:
            self._armed.append(None if record is None else record.name)

    def signal(self, record, sig, whom="family"):
        self.effects.append(m.Signal(record.name, record.pid, sig, whom))

    def effect_probe(self, record, what):
        self.effects.append(m.Probe(record.name, record.pid, what))

    def sample_memory(self, names):
        self.effects.append(m.SampleMemory(names))

    # -- starting ------------------------------------------------------------

    def request_start(self, record, fresh=False, pull=True, cause=None):
        """Ask for record to run, its `after` services first (pull: ask for
        them too; without, it waits for them). cause: why it stopped, kept
        in the reason while it waits ("stopped: db is FATAL")."""
        if fresh:  # an operator's start forgets the restart history
            record.history = policy.History()
        record.goal = Goal.UP
        for dep in self.dependencies(record) if pull else ():
            if dep.state not in ACTIVE:
                self.request_start(dep, fresh)
        if record.pending is not None:
            return
        if record.state in AT_REST:
            waiting = self.waiting_for(record)
            if waiting:
                reason = "waiting for " + ", ".join(waiting)
                self.move(record, Event.WAIT, f"{cause}; {reason}" if cause else reason)
            else:
                self.spawn(record, Event.START)
        elif record.state is State.BACKOFF:  # an operator wants it now, not later
            self.spawn(record, Event.START)
        # STOPPING: started again once it is gone (finish_stop); the others are up.

    def spawn(self, record, event):
        if record.pending is not None:
            return  # asked already in this step: the shell answers each Spawn at once
        self.disarm(record, RETRY)
        record.pending = event
        self.effects.append(m.Spawn(record.name))

    def dependencies(self, record):
        return [dep for name in self.sup.after_of(record.spec)
                for dep in self.sup.instances_of(name)]

    def running(self, service):
        return all(dep.state is State.RUNNING for dep in self.sup.instances_of(service))

    def waiting_for(self, record):
        """The `after` services record must wait for: not RUNNING, or, for one
        it requires, RUNNING but on its way down."""
        return [name for name in self.sup.after_of(record.spec) if not self.running(name)
                or name in record.spec.requires
                and any(dep.goal is Goal.DOWN for dep in self.sup.instances_of(name))]

    # -- stopping ------------------------------------------------------------

    def stop_record(self, record):
        """Stop one instance now (its goal is DOWN already)."""
        if record.state is State.BACKOFF:
            self.disarm(record, RETRY)
            self.move(record, Event.STOP, "stopped while waiting to restart")
        elif record.state is State.WAITING:
            self.move(record, Event.STOP, "stopped before it started")
        elif record.state in (State.STARTING, State.RUNNING):
            self.stop_process(record, Event.STOP)

    def stop_process(self, record, event, reason=None):
        """STOP or FAIL: the stop signal to its family, SIGKILL after stop_timeout."""
        spec = record.spec
        name = policy.signal_name(spec.stop_signal)
        for kind in watch.WATCHED:
            self.disarm(record, kind)
        record.starting = None
        self.move(record, event, reason or f"stopping ({name})")
        self.log(f"stopping pid {record.pid} with {name}", record)
        self.signal(record, spec.stop_signal)
        self.arm(record, KILL, spec.stop_timeout)

    def stop_pass(self):
        """Stop every instance whose goal is DOWN (or RESTART) and whose
        dependents are down."""
        for record in self.sup.records.values():
            if record.goal is not Goal.UP and record.state in ACTIVE \
                    and not self.dependents_alive(record):
                self.stop_record(record)

    def dependents_alive(self, record):
        """A dependent going down with it, or one that requires it, still runs."""
        return any(other.state in HAS_PROCESS and (other.goal is not Goal.UP
                                                   or record.service in other.spec.requires)
                   for other in self.sup.dependents.get(record.service, ()))

    def requires_pass(self):
        """Stop what requires a service that is going down or down for good;
        it waits (WAITING, goal still UP) and runs again once that is back."""
        for record in self.sup.records.values():
            if not record.spec.requires or record.goal is not Goal.UP \
                    or record.state not in (State.STARTING, State.RUNNING):
                continue
            gone = next((dep for name in record.spec.requires
                         for dep in self.sup.instances_of(name)
                         if dep.goal is Goal.DOWN or dep.state in AT_REST), None)
            if gone is not None:
                why = f"{gone.name} is {gone.state}" if gone.state in AT_REST \
                    else f"{gone.name} is stopping"
                self.log(f"stopping: it requires {gone.name}, and {why}", record)
                self.stop_process(record, Event.STOP, f"stopped: {why}")

    def finish_stop(self, record):
        self.disarm(record, KILL)
        self.disarm(record, LEFTOVERS)
        record.pid = None
        exit = record.last_exit
        cause = record.reason if record.reason.startswith("stopped: ") else None
        if record.goal is Goal.RESTART:  # down with its group: up again, in order
            record.goal = Goal.UP
        if record.state is State.FAILING and record.goal is Goal.UP \
                and not self.sup.shutting_down:
            self.decide(record, exit, failed=True)
            return
        self.move(record, Event.GONE, f"stopped ({exit})")
        self.log(f"stopped ({exit})", record)
        if record.goal is Goal.UP and not self.sup.shutting_down:
            # asked to start while it was stopping, or stopped for a dependency
            # it requires: it runs again once its `after` services do
            self.request_start(record, pull=False, cause=cause)

    def group_restart(self, record):
        """record crashed and its policy restarts it: its group's strategy
        restarts the others too (one_for_all), or those after it (rest_for_one),
        stopped in reverse order and started in order; past the group's
        intensity, the group gives up."""
        group = self.sup.group_of.get(record.service)
        if group is None or group.strategy == "one_for_one" or group.fatal:
            return
        recent = tuple(t for t in group.restarts if self.now - t < group.restart_window)
        if len(recent) >= group.max_restarts:
            group.restarts = recent
            self.group_gives_up(group, f"group {group.name}: {len(recent) + 1} restarts in "
                                       f"{group.restart_window:g} s ({record.name} "
                                       f"{record.last_exit}): giving up")
            return
        group.restarts = recent + (self.now,)
        members = group.services
        if group.strategy == "rest_for_one":
            members = members[members.index(record.service) + 1:]
        self.log(f"group {group.name} ({group.strategy}): {record.name} exited: "
                 f"restarting {', '.join(members) or 'only it'}")
        for name in members:
            for other in self.sup.instances_of(name):
                if other is not record and other.state in (State.STARTING, State.RUNNING) \
                        and other.goal is Goal.UP:
                    other.goal = Goal.RESTART
        self.stop_pass()

    def group_gives_up(self, group, reason):
        group.fatal = reason
        self.log(f"FATAL: {reason}")
        failed = None
        for name in group.services:
            for record in self.sup.instances_of(name):
                if record.state is State.BACKOFF:
                    self.disarm(record, RETRY)
                    self.move(record, Event.GAVE_UP, reason)
                    failed = failed or record
                elif record.state in ACTIVE:
                    record.goal = Goal.DOWN
        self.stop_pass()
        if failed is not None:
            self.on_fatal(failed)

    def give_up(self, record, reason):
        self.move(record, Event.GAVE_UP, reason)
        self.log(f"FATAL: {reason}", record)
        self.on_fatal(record)

    def on_fatal(self, record):
        if self.sup.on_fatal == "shutdown" and not self.sup.shutting_down:
            self.log(f"on_fatal = \"shutdown\": {record.name} is FATAL: stopping everything")
            self.sup.exit_code = 1
            _shutdown(self, None)

    # -- exits -----------------------------------------------------------------

    def decide(self, record, exit, failed):
        """An unasked exit, a failed spawn or a failure stop: the policy decides."""
        decision, record.history = policy.decide(
            record.spec, record.history, exit, record.started_at, self.now,
            random=self.random, failed=failed)
        if isinstance(decision, policy.Restart):
            record.restarts += 1
            self.move(record, Event.CRASHED, f"restarting in {decision.delay:.2f} s")
            self.log(decision.reason, record)
            self.arm(record, RETRY, decision.delay)
            self.group_restart(record)
        elif isinstance(decision, policy.GiveUp):
            self.give_up(record, decision.reason)
        else:
            self.move(record, Event.FINISHED, decision.reason)
            self.log(f"exited: {decision.reason}", record)


# -- the handlers, one per input ------------------------------------------------

def _start(step, item):
    if step.sup.shutting_down:
        return
    for name in item.names:
        step.request_start(step.sup.records[name], item.fresh)


def _stop(step, item):
    for name in item.names:
        step.sup.records[name].goal = Goal.DOWN
    step.requires_pass()
    step.stop_pass()


def _shutdown(step, item):
    if step.sup.shutting_down:
        return
    step.sup.mode = Mode.SHUTTING_DOWN
    step.log("shutting down (a second Ctrl-C kills every worker now)")
    for record in step.sup.records.values():
        record.goal = Goal.DOWN
    step.arm(None, NOTICE, NOTICE_PERIOD)
    _settle(step, item)


def _still_stopping(step):
    """A shutdown that takes a while says who it waits for, and until when."""
    waiting = []
    for record in step.sup.records.values():
        if record.state in BEING_STOPPED:
            kill_at = record.deadlines.get(KILL)
            waiting.append(f"{record.name} (SIGKILL in {kill_at - step.now:.1f} s)"
                           if kill_at is not None else f"{record.name} (its leftovers)")
        elif record.state in HAS_PROCESS:
            waiting.append(f"{record.name} (after its dependents)")
    if waiting:
        step.log("still stopping: " + ", ".join(waiting))
        step.arm(None, NOTICE, NOTICE_PERIOD)


def _settle(step, item):
    sup = step.sup
    if sup.mode is Mode.RUNNING:
        for record in sup.records.values():
            if record.state is State.WAITING:
                blocker = next((f"{dep.name} is {dep.state}" for dep in step.dependencies(record)
                                if dep.state in AT_REST
                                and dep.service not in record.spec.requires), None)
                if blocker is not None:
                    step.move(record, Event.BLOCKED, f"not started: {blocker}")
                    step.log(f"not started: {blocker}", record)
                elif not step.waiting_for(record):
                    step.spawn(record, Event.START)
        step.requires_pass()
    step.stop_pass()
    if sup.mode is Mode.SHUTTING_DOWN and all(r.state in AT_REST for r in sup.records.values()):
        sup.mode = Mode.DONE
        step.disarm(None, MEMORY)
        step.disarm(None, NOTICE)
        step.log("all services stopped")
        step.effects.append(m.CloseSockets(tuple(sup.by_service)))
        step.effects.append(m.Done(sup.exit_code))


def _spawned(step, item):
    record = step.sup.records[item.name]
    event, record.pending = record.pending, None
    record.pid = item.pid
    record.started_at = step.now
    record.status_text = record.killed = None
    record.said_stopping = False
    if event is Event.START:
        record.last_exit = None
    step.move(record, event, f"spawned, pid {item.pid}")
    step.log(f"spawned, pid {item.pid}", record)
    watch.spawned(step, record)


def _spawn_failed(step, item):
    record = step.sup.records[item.name]
    record.pending = None
    record.started_at = step.now
    if item.fatal:  # a port in use or a bad address does not get better by itself
        step.give_up(record, f"cannot bind its sockets: {item.error}")
        return
    step.log(item.error, record)
    record.last_exit = policy.Exit(error=item.error)
    step.decide(record, record.last_exit, failed=False)


def _exited(step, item):
    record = step.sup.records.get(item.name)
    if record is None or record.pid != item.pid or record.state not in HAS_PROCESS:
        return  # a process of a record replaced by a reload, or reported twice
    exit = item.exit
    if record.killed is not None and exit.signal == signal.SIGKILL:
        exit = dataclasses.replace(exit, cause=record.killed)
    record.last_exit = exit
    starting = record.state is State.STARTING
    watch.gone(step, record, exit)
    if record.state in BEING_STOPPED:
        if item.leftovers:
            step.log(f"{exit}; waiting for the rest of its process group", record)
            step.arm(record, LEFTOVERS, LEFTOVER_POLL)
            return
        step.finish_stop(record)
        return
    step.signal(record, signal.SIGKILL)  # no orphans left behind a crash
    record.pid = None
    if step.sup.shutting_down or record.goal is Goal.DOWN:
        why = "during shutdown" if step.sup.shutting_down else "while being stopped"
        step.move(record, Event.FINISHED, f"{exit} {why}")
        step.log(f"{exit} {why}", record)
        return
    step.decide(record, exit, failed=starting and record.spec.ready is not None)


def _leftovers(step, item):
    record = step.sup.records.get(item.name)
    if record is None or record.pid != item.pid or record.state not in BEING_STOPPED:
        return
    if item.alive:
        step.arm(record, LEFTOVERS, LEFTOVER_POLL)
    else:
        step.finish_stop(record)


def _live(step, item):
    """The record item names, if item is about its current process."""
    record = step.sup.records.get(item.name)
    if record is None or record.pid != item.pid or record.state not in HAS_PROCESS:
        return None
    return record


def _notified(step, item):
    record = _live(step, item)
    if record is not None:
        watch.notified(step, record, item.line)


def _probed(step, item):
    record = _live(step, item)
    if record is not None:
        watch.probed(step, record, item.what, item.ok, item.detail)


def _memory_sampled(step, item):
    watch.memory_sampled(step, item.rss)


def _due(step, item):
    if item.name is None:
        at = step.sup.deadlines.get(item.kind)
        if at is not None and at <= step.now:
            del step.sup.deadlines[item.kind]
            if item.kind == NOTICE:
                _still_stopping(step)
            else:
                watch.memory_due(step)
        return
    record = step.sup.records.get(item.name)
    at = record.deadlines.get(item.kind) if record is not None else None
    if at is None or at > step.now:
        return  # cancelled, moved later, or its record is gone
    del record.deadlines[item.kind]
    if item.kind == RETRY:
        if record.state is State.BACKOFF:
            waiting = step.waiting_for(record)
            if waiting:  # a dependency (or an earlier group member) is not back yet
                step.move(record, Event.WAIT, "waiting for " + ", ".join(waiting))
            else:
                step.spawn(record, Event.RETRY)
    elif item.kind == KILL:
        if record.state in BEING_STOPPED and record.pid is not None:
            step.log(f"still running {record.spec.stop_timeout:g} s after "
                     f"the stop signal: killing its process group", record)
            record.killed = f"killed after its stop_timeout of {record.spec.stop_timeout:g} s"
            step.signal(record, signal.SIGKILL)
    elif item.kind == LEFTOVERS:
        if record.state in BEING_STOPPED:
            step.effects.append(m.CheckLeftovers(record.name, record.pid))
    else:
        watch.due(step, record, item.kind)


def _replace(step, item):
    """A reload: records of kept services stay as they are, the rest are new."""
    sup = step.sup
    old, old_groups = sup.records, sup.groups
    sup.groups = {}
    for spec in item.groups:
        group = Group.of(spec)
        before = old_groups.get(spec.name)
        if before is not None and (before.services, before.strategy) == (group.services,
                                                                         group.strategy):
            group.restarts, group.fatal = before.restarts, before.fatal
        sup.groups[spec.name] = group
    sup.records = {}
    for spec in item.specs:
        if spec.name in item.keep:
            sup.records.update((n, r) for n, r in old.items() if r.service == spec.name)
        else:
            for index in range(spec.numprocs):
                record = Record.of(spec, index)
                sup.records[record.name] = record
    sup.index()


_HANDLERS = {
    m.Start: _start, m.Stop: _stop, m.Shutdown: _shutdown, m.Settle: _settle,
    m.Spawned: _spawned, m.SpawnFailed: _spawn_failed, m.Exited: _exited,
    m.Leftovers: _leftovers, m.Notified: _notified, m.Probed: _probed,
    m.MemorySampled: _memory_sampled, m.Due: _due, m.Replace: _replace,
}
