"""What goes into the decision step and what comes out of it.

Inputs are what happened: a process spawned or exited, a worker said a line,
a probe answered, a deadline passed, an operator asked. Effects are what the
shell must do about it: spawn, signal, probe, log, publish. Both are frozen
plain values: a replay test builds the inputs by hand and reads the effects
as a list, with no process, socket or loop.
"""

from dataclasses import dataclass

# -- inputs --------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """An operator (or autostart) wants these instances up, `after` ones first."""

    names: tuple
    fresh: bool = False  # forget the restart history (an operator's start)


@dataclass(frozen=True)
class Stop:
    """An operator wants these down: dependents among them stop first."""

    names: tuple


@dataclass(frozen=True)
class Shutdown:
    """Everything down, in reverse dependency order; then Done."""


@dataclass(frozen=True)
class Settle:
    """Take every step that the current states allow (the start order, the
    stop order). The shell sends one per loop iteration after a change."""


@dataclass(frozen=True)
class Spawned:
    name: str
    pid: int


@dataclass(frozen=True)
class SpawnFailed:
    name: str
    error: str
    fatal: bool = False  # its sockets cannot be bound: no retry


@dataclass(frozen=True)
class Exited:
    name: str
    pid: int
    exit: object  # policy.Exit
    leftovers: bool = False  # a process of its group or family is still alive


@dataclass(frozen=True)
class Leftovers:
    """The answer to CheckLeftovers."""

    name: str
    pid: int
    alive: bool


@dataclass(frozen=True)
class Notified:
    """One sd_notify line (READY=1, STATUS=..., WATCHDOG=1, ...) from pid."""

    name: str
    pid: int
    line: str


@dataclass(frozen=True)
class Probed:
    """The answer to Probe: a readiness or health check."""

    name: str
    pid: int
    what: str  # "ready" or "health"
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class MemorySampled:
    rss: tuple  # ((name, bytes), ...) of the instances SampleMemory named


@dataclass(frozen=True)
class Due:
    """A deadline of a record (name) or of the master (name None) may have passed."""

    name: str
    kind: str


@dataclass(frozen=True)
class Replace:
    """A reload: the new specs. Services not in `keep` must be at rest."""

    specs: tuple
    keep: tuple  # names of services whose records (and history) stay
    groups: tuple = ()  # spec.GroupSpec: a group that stays keeps its restart count


@dataclass(frozen=True)
class Scale:
    """This many instances of a service from now on (corral scale, a reload's
    numprocs): new ones start, surplus ones stop, highest index first."""

    service: str
    count: int


# -- effects -------------------------------------------------------------------


@dataclass(frozen=True)
class Spawn:
    """Bind its sockets, spawn it, answer Spawned or SpawnFailed at once."""

    name: str


@dataclass(frozen=True)
class Signal:
    """whom: "family" (its group and what left it), "group" or "main"."""

    name: str
    pid: int
    signal: int
    whom: str = "family"


@dataclass(frozen=True)
class CheckLeftovers:
    name: str
    pid: int


@dataclass(frozen=True)
class Probe:
    name: str
    pid: int
    what: str  # "ready": the spec's ready target; "health": its health check


@dataclass(frozen=True)
class SampleMemory:
    names: tuple


@dataclass(frozen=True)
class Arm:
    """This record's deadlines (or the master's, name None) changed."""

    name: str


@dataclass(frozen=True)
class Moved:
    """A transition, for the event stream and the waiters."""

    name: str
    service: str
    old: object  # State
    new: object  # State
    event: object  # Event
    reason: str
    pid: int
    exit: object  # policy.Exit or None


@dataclass(frozen=True)
class Log:
    text: str
    name: str = None  # about this instance: "NAME: text", filed under its service


@dataclass(frozen=True)
class CloseSockets:
    services: tuple


@dataclass(frozen=True)
class Done:
    code: int = 0
