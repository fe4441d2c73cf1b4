"""One supervised instance as plain data, and the snapshot of them all.

Everything the master knows about an instance lives in its Record: the
state, the goal, the pid, the restart history, the last exit and why, and
every deadline as a value (a monotonic time), never as a timer handle. The
master's shell (supervisor/master.py) arms one timer per deadline it finds
here; a replay test advances a fake clock past them instead. Only the
decision step (step.py) changes a Record, and its state only through
move(), which goes through the transition table.
"""

import enum
from dataclasses import dataclass, field

from corral.core import states
from corral.core.policy import History
from corral.core.states import State


class Goal(enum.Enum):
    """What was asked of an instance: to be up or down. The state is what is."""

    DOWN = "down"
    UP = "up"
    RESTART = "restart"  # down, in the stop order, then up again (a group's restart)

    def __str__(self):
        return self.value


class Mode(enum.Enum):
    """The master's own phase."""

    RUNNING = "running"
    SHUTTING_DOWN = "shutting down"
    DONE = "done"


# The deadlines a record can hold, by what passes when they fall due.
RETRY = "retry"  # BACKOFF: spawn again
KILL = "kill"  # STOPPING/FAILING: the stop timeout, SIGKILL its family
READY_BY = "ready_by"  # STARTING: start_timeout, SIGKILL
UP_FOR = "up_for"  # STARTING with ready = {seconds = N}: ready then
PROBE = "probe"  # STARTING with a tcp/http ready check: probe (again)
WATCHDOG = "watchdog"  # RUNNING with watchdog: the heartbeat is due
HEALTH = "health"  # RUNNING with health: probe
LEFTOVERS = "leftovers"  # being stopped, main process gone: look for what it left
DEADLINES = (RETRY, KILL, READY_BY, UP_FOR, PROBE, WATCHDOG, HEALTH, LEFTOVERS)
MEMORY = "memory"  # the master-wide RSS pass (Supervision.deadlines)
NOTICE = "notice"  # shutting down: say who is still stopping (Supervision.deadlines)


@dataclass
class Starting:
    """What a STARTING instance still waits for (readiness)."""

    notified: bool  # READY=1 came, or is not awaited
    checked: bool  # the tcp/http/seconds check passed, or there is none
    how: str = ""  # what made it ready, for the log
    problem: str = ""  # the last probe failure, for the start timeout's message


@dataclass
class Record:
    spec: object  # spec.ServiceSpec
    index: int
    name: str
    state: State = State.STOPPED
    goal: Goal = Goal.DOWN
    pid: int = None
    started_at: float = None  # monotonic time of the last spawn
    ready_at: float = None  # monotonic time it became RUNNING since that spawn
    history: History = field(default_factory=History)
    restarts: int = 0  # restarts since the master started it, for status
    last_exit: object = None  # policy.Exit
    reason: str = ""  # why it is in its state, in words
    since: float = None  # monotonic time of the last move
    status_text: str = None  # the worker's own STATUS= line
    starting: Starting = None  # while STARTING
    pending: object = None  # Event of a spawn asked for, until Spawned/SpawnFailed
    killed: str = None  # why corral itself SIGKILLed the process (a missed deadline)
    said_stopping: bool = False  # it sent STOPPING=1: no heartbeat expected any more
    beat_at: float = None  # the last WATCHDOG=1
    health_failures: int = 0  # failed probes in a row
    health_note: str = None  # "health: 2 failures (503)" while probes fail
    probe_started: float = None  # when the running health probe began
    retired: bool = False  # scaled away (core/scale.py): stopped, then dropped at rest
    deadlines: dict = field(default_factory=dict)  # kind -> monotonic time

    @classmethod
    def of(cls, spec, index):
        return cls(spec=spec, index=index, name=spec.instance_names()[index])

    @property
    def service(self):
        return self.spec.name

    def move(self, event):
        """Apply `event`; return the previous state. Raises if illegal."""
        old = self.state
        self.state = states.apply(old, event)
        return old

    def __repr__(self):
        return f"<Record {self.name} {self.state} goal={self.goal} pid={self.pid}>"


STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")  # Erlang/OTP's


@dataclass
class Group:
    """Services restarted together (OTP's strategies), with their own intensity."""

    name: str
    services: tuple  # in the group's order: started in it, stopped in reverse
    strategy: str = "one_for_one"
    max_restarts: int = 5
    restart_window: float = 10.0
    restarts: tuple = ()  # monotonic times of the group's restarts within the window
    fatal: str = None  # why the group gave up

    @classmethod
    def of(cls, spec):
        """From a spec.GroupSpec."""
        return cls(spec.name, tuple(spec.services), spec.strategy, spec.max_restarts,
                   spec.restart_window)

    @property
    def ordered(self):
        """Members start in the group's order (and stop in reverse)."""
        return self.strategy != "one_for_one"


@dataclass
class Supervision:
    """All records (in config order) and the master's phase: the step's world."""

    records: dict = field(default_factory=dict)  # instance name -> Record
    mode: Mode = Mode.RUNNING
    on_fatal: str = "stay"  # "shutdown": a FATAL instance shuts the master down
    exit_code: int = 0  # what the master exits with once DONE
    deadlines: dict = field(default_factory=dict)  # MEMORY -> monotonic time
    by_service: dict = field(default_factory=dict)  # service name -> [Record]
    dependents: dict = field(default_factory=dict)  # service name -> [Record after it]
    groups: dict = field(default_factory=dict)  # group name -> Group
    group_of: dict = field(default_factory=dict)  # service name -> Group
    # Lookups that index() rebuilds and moved() keeps true:
    in_state: dict = field(default_factory=dict)  # State -> {name: Record}
    position: dict = field(default_factory=dict)  # instance name -> its place in records
    requiring: list = field(default_factory=list)  # the records whose spec has requires

    def add(self, *specs):
        for spec in specs:
            for index in range(spec.numprocs):
                record = Record.of(spec, index)
                self.records[record.name] = record
        self.index()

    def index(self):
        """Rebuild the lookups from the records (after add or a reload's Replace)."""
        self.by_service, self.dependents, self.in_state = {}, {}, {}
        self.group_of = {s: g for g in self.groups.values() for s in g.services}
        self.position = {name: i for i, name in enumerate(self.records)}
        self.requiring = [r for r in self.records.values() if r.spec.requires]
        for record in self.records.values():
            if not record.retired:  # a retired instance counts for nobody's order
                self.by_service.setdefault(record.service, []).append(record)
            self.in_state.setdefault(record.state, {})[record.name] = record
            spec = record.spec
            for name in dict.fromkeys((*self.after_of(spec), *spec.requires, *spec.order_after)):
                self.dependents.setdefault(name, []).append(record)

    def moved(self, record, old):
        """Keep in_state true after record moved from old (Step.move calls it)."""
        self.in_state.get(old, {}).pop(record.name, None)
        self.in_state.setdefault(record.state, {})[record.name] = record

    def those_in(self, states):
        """The records in any of states, in config order: a step passes over
        those that can change, not over every record (with 2,000 instances,
        a pass over all of them per exit made a shutdown quadratic)."""
        found = [r for state in states for r in self.in_state.get(state, {}).values()]
        position = self.position
        found.sort(key=lambda r: position[r.name])
        return found

    def count_in(self, states):
        return sum(len(self.in_state.get(state, ())) for state in states)

    def after_of(self, spec):
        """spec.after, and in an ordered group the members before it."""
        group = self.group_of.get(spec.name)
        if group is None or not group.ordered:
            return spec.after
        earlier = group.services[:group.services.index(spec.name)]
        return tuple(dict.fromkeys((*spec.after, *earlier)))

    def instances_of(self, service):
        """The service's instances, not those a scale retired."""
        return self.by_service.get(service, [])

    @property
    def shutting_down(self):
        return self.mode is not Mode.RUNNING
