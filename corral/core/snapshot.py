"""Supervision as JSON-able data, for `corral upgrade` (supervisor/upgrade.py).

A re-exec'd master loads its config again and so has fresh Records from the
specs; capture() is what those specs do not hold (state, goal, pid, history,
restart count, last exit, deadlines, readiness progress, a group's restarts)
and restore() lays it back onto them. Deadlines are monotonic times, and the
monotonic clock is the system's: across an exec they fall due when they
would have. Only plain values cross: the specs are the new config's.

restore() changes nothing unless everything fits: it first lists the
problems (an instance the new config lacks, a state or an exit it cannot
read), and the caller refuses the upgrade (or falls back) on any.
"""

from dataclasses import fields, replace

from corral.core.policy import Exit, History
from corral.core.record import Goal, Mode, Record, Starting
from corral.core.states import Event, State

VERSION = 1

# Record fields that the specs give (spec, index, name) or that are None at
# rest between two steps (pending: a Spawn is answered before the next input).
_FROM_SPEC = {"spec", "index", "name", "pending"}
_PLAIN = [f.name for f in fields(Record) if f.name not in _FROM_SPEC and f.name not in
          ("state", "goal", "history", "last_exit", "starting", "deadlines")]


class SnapshotError(Exception):
    """The snapshot does not fit this config or this code."""


def capture(sup):
    """The supervision's state as plain data (dicts, lists, str, numbers)."""
    if sup.mode is not Mode.RUNNING:
        raise SnapshotError(f"the master is {sup.mode.value}")
    return {
        "version": VERSION,
        "exit_code": sup.exit_code,
        "deadlines": dict(sup.deadlines),
        "groups": {name: {"restarts": list(g.restarts), "fatal": g.fatal}
                   for name, g in sup.groups.items()},
        "records": {name: _record(r) for name, r in sup.records.items()},
    }


def _record(record):
    data = {name: getattr(record, name) for name in _PLAIN}
    data.update(
        state=record.state.value, goal=record.goal.value,
        history={"restarts": list(record.history.restarts), "attempt": record.history.attempt},
        last_exit=None if record.last_exit is None else vars(record.last_exit).copy(),
        starting=None if record.starting is None else vars(record.starting).copy(),
        deadlines=dict(record.deadlines),
        pending=None if record.pending is None else record.pending.value,
    )
    return data


def fit_scaled(sup, data):
    """Give a service that `corral scale` (core/scale.py) left with another
    count than its config's the snapshot's instances, so that restore lays
    each record onto its own: fresh records come from the config's numprocs.
    A retired instance (being scaled away) keeps its place after the others.
    Changes sup only where the snapshot's names are all such instances."""
    if not isinstance(data, dict) or not isinstance(data.get("records"), dict):
        return
    names_of = {}
    for name, item in data["records"].items():
        names_of.setdefault(name.partition(":")[0], []).append((name, item))
    changed = False
    for service, taken in names_of.items():
        current = sup.by_service.get(service)
        if not current or sorted(n for n, _ in taken) == sorted(r.name for r in current):
            continue
        spec = current[0].spec
        every = replace(spec, numprocs=len(taken))
        if sorted(n for n, _ in taken) != sorted(every.instance_names()):
            continue  # not a scale of this service: problems() names the difference
        live = replace(spec, numprocs=sum(not isinstance(i, dict) or not i.get("retired")
                                          for _, i in taken))
        fresh = [Record.of(every, index) for index in range(len(taken))]
        for record in fresh:
            record.spec = live
        records, placed = {}, False
        for name, record in sup.records.items():
            if record.service != service:
                records[name] = record
            elif not placed:
                placed = True
                records.update((r.name, r) for r in fresh)
        sup.records = records
        changed = True
    if changed:
        sup.index()


def problems(sup, data):
    """What keeps data from being laid onto sup (fresh from the same config): [text]."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return [f"snapshot version {data.get('version') if isinstance(data, dict) else None!r}, "
                f"this corral reads {VERSION}"]
    found = []
    records = data.get("records", {})
    for name in records:
        if name not in sup.records:
            found.append(f"{name}: in the running master, not in the config")
    for name in sup.records:
        if name not in records:
            found.append(f"{name}: in the config, not in the running master")
    for name in data.get("groups", {}):
        if name not in sup.groups:
            found.append(f"group {name}: in the running master, not in the config")
    for name, item in records.items():
        try:
            _check(item)
        except (KeyError, TypeError, ValueError) as exc:
            found.append(f"{name}: cannot read its record ({exc!r})")
    return found


def _check(item):
    State(item["state"])
    Goal(item["goal"])
    if item.get("pending") is not None:
        Event(item["pending"])
    for name in _PLAIN:
        item[name]  # noqa: B018 - present
    if item["last_exit"] is not None:
        Exit(**item["last_exit"])
    if item["starting"] is not None:
        Starting(**item["starting"])
    History(tuple(item["history"]["restarts"]), int(item["history"]["attempt"]))


def restore(sup, data):
    """Lay data (capture()'s) onto sup's fresh records; SnapshotError if it does not fit."""
    fit_scaled(sup, data)
    found = problems(sup, data)
    if found:
        raise SnapshotError("; ".join(found))
    sup.exit_code = data["exit_code"]
    sup.deadlines = dict(data["deadlines"])
    for name, group in data["groups"].items():
        sup.groups[name].restarts = tuple(group["restarts"])
        sup.groups[name].fatal = group["fatal"]
    for name, item in data["records"].items():
        record = sup.records[name]
        for key in _PLAIN:
            setattr(record, key, item[key])
        record.state = State(item["state"])
        record.goal = Goal(item["goal"])
        record.pending = None if item.get("pending") is None else Event(item["pending"])
        record.history = History(tuple(item["history"]["restarts"]), item["history"]["attempt"])
        record.last_exit = None if item["last_exit"] is None else Exit(**item["last_exit"])
        record.starting = None if item["starting"] is None else Starting(**item["starting"])
        record.deadlines = dict(item["deadlines"])
    sup.index()  # the states are the snapshot's now: in_state must say so
