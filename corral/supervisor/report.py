"""What the master tells people: status rows, the service tree, usage.

Read-only views of the records. Usage (cpu, rss) covers a worker's whole
process tree, read through psutil: one cached `psutil.Process` per process
and one `oneshot()` read of it per pass. A pass over a few hundred
processes takes a few milliseconds, so it is done on the loop, and only
when someone asks: status, /metrics or the max_memory check, which share
one pass a second (UsageCache, the master's `usage`). CPU percent is
psutil's cpu_percent(None): the share of one CPU since the previous sample
of the same process (0.0 the first time).
"""

import time

from dataclasses import dataclass
from typing import NamedTuple

import psutil

from corral.core.record import RETRY
from corral.core.states import HAS_PROCESS, State
from corral.supervisor import reaper

USAGE_MAX_AGE = 1.0  # s: one pass serves status, /metrics and max_memory within it
_NOT_RUNNING = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)


def _trees(roots):
    """{root: its pid and its descendants' (zombies included)}."""
    if reaper.children_files():
        # The kernel's children files (reaper.near): a few reads per tree.
        # psutil has no call for them: Process.children(recursive=True) reads
        # every process's stat per call, and one process_iter(["ppid"]) a
        # pass cost 9.6 ms against 5.4 ms for 100 workers here (docs/benchmarks.md).
        return {root: reaper.near([root]) for root in roots}
    children = {}
    for proc in psutil.process_iter(["ppid"]):
        children.setdefault(proc.info["ppid"], []).append(proc.pid)
    found = {}
    for root in roots:
        seen, todo = set(), [root]
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.add(pid)
                todo.extend(children.get(pid, ()))
        found[root] = seen
    return found


@dataclass(frozen=True)
class TreeUsage:
    """A worker's whole process tree: CPU since each member began, RSS now."""

    cpu_seconds: float
    cpu_percent: float  # of one CPU since the previous sample (0.0 the first time)
    rss: int  # bytes


class UsageCache:
    """One pass over every worker's tree, reused for USAGE_MAX_AGE s:
    status, /metrics and the max_memory check (the master's one instance,
    `master.usage`) share it. It keeps one psutil.Process per process seen
    in the last pass, with the CPU time it had then: a pid that is gone is
    dropped, and a reused one (psutil's is_running() compares create
    times) gets a new object and so no old baseline."""

    def __init__(self, clock=time.monotonic, process=psutil.Process):
        self._clock = clock
        self._process = process  # psutil.Process; a test passes a stand-in
        self._when = None
        self._found = {}  # root pid -> TreeUsage
        self._procs = {}  # pid -> (Process, cpu seconds, when, (cpu, percent, rss), spawned)

    def refresh(self, records, wanted):
        """{pid: TreeUsage}; rescans all records' pids when stale or missing one."""
        now = self._clock()
        fresh = self._when is not None and now - self._when < USAGE_MAX_AGE
        if fresh and all(pid in self._found for pid in wanted):
            return self._found
        # A root is a worker, the master's own child: its pid cannot be
        # reused before the master reaps it, so its spawn time tells a new
        # process from the one of the last pass, and psutil's is_running()
        # (a second read of stat: a quarter of a pass) is left to the rest.
        spawns = {r.pid: r.started_at for r in records if r.pid is not None}
        roots = set(spawns) | set(wanted)
        before, self._procs, found = self._procs, {}, {}
        for root, members in _trees(roots).items():
            cpu_all, percent, rss, alive = 0.0, 0.0, 0, False
            for member in members:
                read = self._read(member, spawns.get(member), before, now)
                if read is not None:
                    alive = True
                    cpu_all, percent, rss = cpu_all + read[0], percent + read[1], rss + read[2]
            if alive:
                found[root] = TreeUsage(cpu_all, round(percent, 1), rss)
        self._when, self._found = now, found
        return found

    def _read(self, pid, spawned, before, now):
        """(cpu seconds, percent since the last pass, rss) of pid, or None.
        spawned: a root's spawn time, None for the other members."""
        done = self._procs.get(pid)
        if done is not None:  # in two trees (reparented between two reads)
            return done[3]
        entry = before.get(pid)
        try:
            if entry is None or entry[4] != spawned or (
                    spawned is None and not entry[0].is_running()):  # new, gone or reused
                entry = None
                proc = self._process(pid)
            else:
                proc = entry[0]
            with proc.oneshot():  # one read of stat (status, cpu) and one of statm
                if proc.status() in _NOT_RUNNING:
                    return None
                times = proc.cpu_times()
                rss = proc.memory_info().rss
        except psutil.Error:
            return None
        cpu = times.user + times.system
        percent = 0.0
        if entry is not None and now > entry[2]:
            percent = (cpu - entry[1]) / (now - entry[2]) * 100
        read = (cpu, percent, rss)
        self._procs[pid] = (proc, cpu, now, read, spawned)
        return read

    def sample(self, pids):
        """report.status's view: {pid: (cpu_percent, rss)} from the last refresh."""
        return {pid: (u.cpu_percent, u.rss) for pid, u in self._found.items()}


@dataclass(frozen=True)
class Status:
    """One instance, as facts: what every frontend renders in its own way."""

    name: str
    service: str
    state: str
    pid: int
    uptime: float  # s since its spawn, while it has a process
    since: float  # wall time of its last move
    restarts: int
    last_exit: str  # "exit 3", "SIGKILL", "spawn failed: ..."
    exit_code: int
    exit_signal: int
    spawn_error: str
    cpu_percent: float
    rss: int
    reason: str  # why it is in its state, in words
    retry_in: float  # BACKOFF: s until the next spawn
    status_text: str  # the worker's own STATUS= line
    health: str  # "health: 2 failures (503)" while probes fail
    log_error: str  # its log file cannot be written

    @property
    def description(self):
        """The reason with what else an operator should see, on one line."""
        parts = [self.reason]
        if self.retry_in is not None:
            parts = [f"restarting in {self.retry_in:.1f} s"]
            if self.last_exit:  # why it is waiting, at a glance
                parts.insert(0, self.last_exit)
        parts += [self.status_text, self.health, self.log_error]
        return "; ".join(p for p in parts if p)


def status_row(record, sample, now, wall_now, log_error=None):
    cpu, rss = sample.get(record.pid, (None, None))
    uptime = None
    if record.pid is not None and record.state in HAS_PROCESS:
        uptime = round(now - record.started_at, 3)
    retry = record.deadlines.get(RETRY) if record.state is State.BACKOFF else None
    exit = record.last_exit
    return Status(
        name=record.name, service=record.service, state=record.state.value, pid=record.pid,
        uptime=uptime,
        since=None if record.since is None else round(wall_now - (now - record.since), 3),
        restarts=record.restarts, last_exit=str(exit) if exit else None,
        exit_code=exit.code if exit else None, exit_signal=exit.signal if exit else None,
        spawn_error=exit.error if exit else None, cpu_percent=cpu, rss=rss,
        reason=record.reason, retry_in=None if retry is None else max(0.0, retry - now),
        status_text=record.status_text, health=record.health_note, log_error=log_error)


def status(records, usage, now, log_errors=None):
    """log_errors: {service: text} for services whose log file fails (LogHub)."""
    sample = usage.sample([r.pid for r in records if r.pid is not None])
    wall_now = time.time()
    log_errors = log_errors or {}
    return [status_row(record, sample, now, wall_now, log_errors.get(record.service))
            for record in records]


class Brief(NamedTuple):
    """What of an instance changes only when it moves or respawns: /metrics
    keeps its text while these stay equal. A tuple, so that a whole table of
    them is compared and hashed in one go, and made without a Status row."""

    name: str
    service: str
    state: str
    started: float  # wall time of its process's spawn, while it has one
    exit_code: int  # of its last process, absent after a signal


def briefs(records, epoch):
    """[Brief] of records. epoch: wall time minus monotonic time, fixed for
    the caller, so that a start time reads the same at every scrape."""
    out = []
    for r in records:
        started = None
        if r.pid is not None and r.state in HAS_PROCESS:
            started = round(r.started_at + epoch, 3)
        exit = r.last_exit
        out.append(Brief(r.name, r.spec.name, r.state.value, started,
                         exit.code if exit else None))
    return out


DETAIL_LINES = 10  # transitions and log lines in `corral status NAME`


@dataclass(frozen=True)
class Detail:
    """One instance as `corral status NAME` shows it, in the manner of
    `systemctl status`: its status, where it comes from and what it runs,
    its recent moves with their reasons and its last log lines."""

    status: Status
    config: str  # the file that defines it
    kind: str  # "command", "python", "twisted", "fcgi"
    command: tuple  # the argv of a command, else None
    cls: str  # the class of a Python service, else None
    after: tuple
    order_after: tuple  # supervisord's priority layer below it: an order only
    requires: tuple
    group: str  # its restart group, or None
    sockets: tuple  # "tcp://127.0.0.1:8000", held by the master
    transitions: list  # event items (the `events` shape), oldest first
    log: list  # log line items (the `logs` shape), oldest first


def detail(record, status_row, config_path, events, log, groups=None):
    """events: the master's recent moves (all instances); log: this one's last lines."""
    spec = record.spec
    described = spec.kind.describe(spec)
    group = next((g.name for g in (groups or {}).values() if spec.name in g.services), None)
    moves = [e for e in events if e.get("name") == record.name][-DETAIL_LINES:]
    return Detail(status=status_row, config=spec.source or config_path, kind=described["kind"],
                  command=tuple(spec.command) if spec.command else None, cls=described["class"],
                  after=tuple(spec.after), order_after=tuple(spec.order_after), requires=tuple(spec.requires), group=group,
                  sockets=tuple(spec.sockets), transitions=moves, log=log)


def _app_name(default, specs):
    """The Application's name for a .py/.tac config, else the config's file name."""
    for spec in specs:
        parent = getattr(spec.tree, "parent", None)
        if parent is not None and getattr(parent, "name", None):
            return str(parent.name)
    return default


def tree(app_name, specs, instances_of, groups=None):
    """The service tree: top-level services with their instances, subtree,
    and links (`after`, `requires`, the restart group)."""
    children = []
    group_of = {s: g.name for g in (groups or {}).values() for s in g.services}
    for spec in specs:
        instances = instances_of(spec.name)
        states = {r.state for r in instances}
        node = {
            "name": spec.name,
            **spec.kind.describe(spec),  # kind, class, children
            "state": states.pop().value if len(states) == 1 else "MIXED",
            "pid": instances[0].pid if len(instances) == 1 else None,
            "instances": [{"name": r.name, "state": r.state.value, "pid": r.pid}
                          for r in instances],
            "after": list(spec.after), "order_after": list(spec.order_after),
            "requires": list(spec.requires),
            "group": group_of.get(spec.name),
        }
        children.append(node)
    return {"name": _app_name(app_name, specs), "children": children, "time": time.time()}
