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

import random as _random

from corral.core import messages as m
from corral.core import handlers, policy, relations, watch
from corral.core.record import KILL, LEFTOVERS, RETRY, Goal
from corral.core.states import ACTIVE, AT_REST, HAS_PROCESS, STARTING_UP, Event, State


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
        handler = handlers.HANDLERS[type(item)]
        handler(self, item)
        self.effects.extend(m.Arm(name) for name in dict.fromkeys(self._armed))
        return self.effects

    # -- what the rules use ------------------------------------------------

    def move(self, record, event, reason=""):
        old = record.move(event)
        self.sup.moved(record, old)
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
        it requires, RUNNING but on its way down; and the `order_after` ones
        on their way up (asked to start and not RUNNING yet)."""
        found = [name for name in self.sup.after_of(record.spec) if not self.running(name)
                 or name in record.spec.requires
                 and any(dep.goal is Goal.DOWN for dep in self.sup.instances_of(name))]
        return found + [name for name in record.spec.order_after
                        if any(dep.goal is Goal.UP and (dep.state in STARTING_UP
                                                        or dep.pending is not None)
                               for dep in self.sup.instances_of(name))]

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
        for record in self.sup.those_in(ACTIVE):
            if record.goal is not Goal.UP and record.state in ACTIVE \
                    and not self.dependents_alive(record):
                self.stop_record(record)

    def dependents_alive(self, record):
        """A dependent going down with it, or one that requires it, still runs."""
        return any(other.state in HAS_PROCESS and (other.goal is not Goal.UP
                                                   or record.service in other.spec.requires)
                   for other in self.sup.dependents.get(record.service, ()))

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

    def give_up(self, record, reason):
        self.move(record, Event.GAVE_UP, reason)
        self.log(f"FATAL: {reason}", record)
        relations.on_fatal(self, record)

    def shutdown(self):
        handlers.begin_shutdown(self)

    def decide(self, record, exit, failed):
        """An unasked exit, a failed spawn or a failure stop: the policy decides."""
        decision, record.history = policy.decide(
            record.spec, record.history, exit, record.started_at, self.now,
            random=self.random, failed=failed, ready_at=record.ready_at)
        if isinstance(decision, policy.Restart):
            record.restarts += 1
            self.move(record, Event.CRASHED, decision.reason)  # the exit, then the delay
            self.log(decision.reason, record)
            self.arm(record, RETRY, decision.delay)
            relations.group_restart(self, record)
        elif isinstance(decision, policy.GiveUp):
            self.give_up(record, decision.reason)
        else:
            self.move(record, Event.FINISHED, decision.reason)
            self.log(f"exited: {decision.reason}", record)
