"""What the master tells people: status rows, the service tree, usage.

Read-only views of the records. Usage (cpu, rss) covers a worker's whole
process tree, from one read of /proc/PID/stat per process (its parent, CPU
ticks, start time and RSS): reading /proc for a few hundred processes takes
a few milliseconds, so it is done on the loop, and only when someone asks:
status, /metrics or the max_memory check, which share one pass a second
(UsageCache, the master's `usage`). CPU percent is psutil's cpu_percent(None): the share of one CPU since the
previous sample of the same process (0.0 the first time).
"""

import os
import time

from dataclasses import dataclass

from corral.core.record import RETRY
from corral.core.states import HAS_PROCESS, State
from corral.supervisor import procfs

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _scan():
    """{pid: (ppid, cpu ticks, start ticks, rss pages)} of the live processes."""
    found = {}
    for pid in procfs.pids():
        fields = procfs.stat_fields(pid)
        try:
            if fields[0] in (b"Z", b"X"):
                continue
            found[pid] = (int(fields[1]), int(fields[11]) + int(fields[12]),
                          int(fields[19]), int(fields[21]))
        except (TypeError, IndexError, ValueError):
            continue
    return found


USAGE_MAX_AGE = 1.0  # s: one /proc pass serves status, /metrics and max_memory within it


@dataclass(frozen=True)
class TreeUsage:
    """A worker's whole process tree: CPU since each member began, RSS now."""

    cpu_seconds: float
    cpu_percent: float  # of one CPU since the previous sample (0.0 the first time)
    rss: int  # bytes


class UsageCache:
    """One pass over /proc for every worker's tree, reused for USAGE_MAX_AGE
    s: status, /metrics and the max_memory check (the master's one instance,
    `master.usage`) share it. CPU percent counts, per process, the ticks
    since the previous pass."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._when = None
        self._found = {}  # root pid -> TreeUsage
        self._last = {}  # pid -> (start ticks, cpu ticks, when)

    def refresh(self, records, wanted):
        """{pid: TreeUsage}; rescans all records' pids when stale or missing one."""
        now = self._clock()
        fresh = self._when is not None and now - self._when < USAGE_MAX_AGE
        if fresh and all(pid in self._found for pid in wanted):
            return self._found
        pids = {r.pid for r in records if r.pid is not None} | set(wanted)
        procs = _scan()  # {pid: (ppid, cpu ticks, start ticks, rss pages)}
        children = {}
        for pid, info in procs.items():
            children.setdefault(info[0], []).append(pid)
        last, self._last, found = self._last, {}, {}
        for root in pids:
            ticks_all, percent, rss = 0, 0.0, 0
            todo, alive = [root], False
            while todo:
                member = todo.pop()
                info = procs.get(member)
                if info is None:
                    continue
                alive = True
                todo.extend(children.get(member, ()))
                _, ticks, start, pages = info
                before = last.get(member)
                if before is not None and before[0] == start and now > before[2]:
                    percent += (ticks - before[1]) / _TICKS / (now - before[2]) * 100
                self._last[member] = (start, ticks, now)
                ticks_all += ticks
                rss += pages * _PAGE
            if alive:
                found[root] = TreeUsage(ticks_all / _TICKS, round(percent, 1), rss)
        self._when, self._found = now, found
        return found

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
