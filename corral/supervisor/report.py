"""What the master tells people: status rows, the service tree, usage.

Read-only views of the records. Usage (cpu, rss) covers a worker's whole
process tree, from one read of /proc/PID/stat per process (its parent, CPU
ticks, start time and RSS): reading /proc for a few hundred processes takes
a few milliseconds, so it is done on the loop, and only when someone asks.
CPU percent is psutil's cpu_percent(None): the share of one CPU since the
previous sample of the same process (0.0 the first time).
"""

import os
import time

from corral.supervisor import procfs
from corral.supervisor.states import State

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


class Usage:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._last = {}  # pid -> (start ticks, cpu ticks, when), for cpu deltas

    def sample(self, pids):
        """{pid: (cpu_percent, rss bytes)} for each pid with all its descendants.

        One pass over /proc finds every process's parent, CPU and RSS, so the
        cost is one scan per request, not one per worker.
        """
        procs = _scan()
        now = self._clock()
        children = {}
        for pid, (ppid, _, _, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        last, self._last = self._last, {}
        result = {}
        for pid in pids:
            cpu, rss, alive = 0.0, 0, False
            todo = [pid]
            while todo:
                member = todo.pop()
                info = procs.get(member)
                if info is None:
                    continue
                todo.extend(children.get(member, ()))
                _, ticks, start, pages = info
                before = last.get(member)
                if before is not None and before[0] == start and now > before[2]:
                    cpu += (ticks - before[1]) / _TICKS / (now - before[2]) * 100
                self._last[member] = (start, ticks, now)
                rss += pages * _PAGE
                alive = True
            result[pid] = (round(cpu, 1), rss) if alive else (None, None)
        return result


def status_row(record, sample, now, loop_now):
    cpu, rss = sample.get(record.pid, (None, None))
    uptime = None
    if record.pid is not None:
        if record.state in (State.STARTING, State.RUNNING, State.STOPPING):
            uptime = round(now - record.started_at, 3)
    description = record.description
    if record.state is State.BACKOFF and record.timer is not None:
        left = max(0.0, record.timer.when() - loop_now)
        description = f"restarting in {left:.1f} s"
        if record.last_exit:  # why it is waiting, at a glance
            description = f"{record.last_exit}; {description}"
    if record.status_text:
        description = f"{description}; {record.status_text}" if description else record.status_text
    note = getattr(record, "health_note", None)  # only while health checks fail
    if note:
        description = f"{description}; {note}" if description else note
    return {
        "name": record.name,
        "service": record.service,
        "state": record.state.value,
        "pid": record.pid,
        "uptime": uptime,
        "restarts": record.restarts,
        "last_exit": str(record.last_exit) if record.last_exit else None,
        "cpu_percent": cpu,
        "rss": rss,
        "description": description,
    }


def status(records, usage, now, loop_now, log_errors=None):
    """log_errors: {service: text} for services whose log file fails (LogHub)."""
    sample = usage.sample([r.pid for r in records if r.pid is not None])
    rows = [status_row(record, sample, now, loop_now) for record in records]
    for row in rows:
        trouble = (log_errors or {}).get(row["service"])
        if trouble:
            row["description"] = f"{row['description']}; {trouble}" if row["description"] \
                else trouble
    return rows


def _class_name(obj):
    """module.qualname, as docs/protocol.md shows; a class defined in the
    config file itself (module __corral_config__) by its own name."""
    cls = type(obj)
    if cls.__module__ in ("__corral_config__", "__main__", "builtins"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _app_name(default, specs):
    """The Application's name for a .py/.tac config, else the config's file name."""
    for spec in specs:
        parent = getattr(spec.tree, "parent", None)
        if parent is not None and getattr(parent, "name", None):
            return str(parent.name)
    return default


def _subtree(service):
    children = getattr(service, "services", None)
    return {
        "name": service.name,
        "class": _class_name(service),
        "children": [_subtree(child) for child in children] if children is not None else [],
    }


def tree(app_name, specs, instances_of):
    """The service tree: top-level services with their instances and subtree."""
    children = []
    for spec in specs:
        instances = instances_of(spec.name)
        states = {r.state for r in instances}
        node = {
            "name": spec.name,
            "kind": "command" if spec.is_command else "python",
            "state": states.pop().value if len(states) == 1 else "MIXED",
            "pid": instances[0].pid if len(instances) == 1 else None,
            "class": None if spec.is_command else _class_name(spec.tree),
            "children": _subtree(spec.tree)["children"] if spec.tree is not None else [],
            "instances": [{"name": r.name, "state": r.state.value, "pid": r.pid}
                          for r in instances],
        }
        children.append(node)
    return {"name": _app_name(app_name, specs), "children": children, "time": time.time()}
