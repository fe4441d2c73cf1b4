"""Runtime scale: a service's count of instances changed live.

`corral scale NAME N` and a reload whose only change to a service is its
`numprocs` (spec.rescaled) both come here, as the input Scale. The diff is
by instance name:
- a name in both keeps its record (pid, restart history, deadlines) and
  takes the new count;
- a new name gets a new record, which starts if the service is wanted up
  (some instance's goal is not DOWN), else waits STOPPED for a `start`;
- a name no longer there is retired: goal DOWN, stopped by the usual stop
  (stop signal, stop_timeout, SIGKILL), highest index first, and dropped
  once at rest. A retired record counts for no start or stop order
  (Supervision.instances_of leaves it out) and refuses `start`.
One instance is named after its service ("web"), more are "web:0".."web:N-1"
(spec.instance_names): from one to more, or back, that one instance is
replaced, the new ones starting while it stops.

The sockets of the service stay as they are: new instances share what the
master holds, as numprocs instances do (supervisor/sockets.py).
"""

import dataclasses

from corral.core import messages as m
from corral.core.record import Goal, Record
from corral.core.states import AT_REST
from corral.spec import MAX_NUMPROCS

# Why a service cannot be scaled, by what its spec shows.
_PROCESS_OF_PROGRAM = ("it is one process of a supervisord.conf [program:x] (its name is "
                       "in its environment, SUPERVISOR_PROCESS_NAME): change numprocs there "
                       "and reload")


def refusal(sup, service, count):
    """Why Scale(service, count) cannot be done, in words; None when it can.
    (The unknown service is the caller's to name: no_such_service.)"""
    if isinstance(count, bool) or not isinstance(count, int):
        return f"the count must be an integer, not {count!r}"
    if count < 1:
        return (f"the count must be 1 or more, not {count} "
                f"(to stop every instance: corral stop {service})")
    if count > MAX_NUMPROCS:
        return f"the count must be {MAX_NUMPROCS} or less, not {count}"
    records = sup.instances_of(service)
    if not records:
        return f"no service named {service!r}"
    if "SUPERVISOR_PROCESS_NAME" in dict(records[0].spec.env):
        return f"{service} cannot be scaled: {_PROCESS_OF_PROGRAM}"
    if sup.shutting_down:
        return "the master is shutting down"
    return None


def scale(step, service, count):
    """Make service's instances count; return the names retired."""
    sup = step.sup
    current = sup.instances_of(service)
    spec = dataclasses.replace(current[0].spec, numprocs=count)
    names = spec.instance_names()
    if [r.name for r in current] == names:
        return []
    mine = {r.name: r for r in sup.records.values() if r.service == service}
    wanted_up = any(r.goal is not Goal.DOWN for r in current)
    step.log(f"scale {service}: {len(current)} -> {count} instance(s)")
    kept, added = [], []
    for index, name in enumerate(names):
        record = mine.pop(name, None)
        if record is None:
            record = Record.of(spec, index)
            added.append(record)
        else:
            if record.retired:  # retired a moment ago and wanted again
                record.retired = False
                added.append(record)
            record.spec = spec
        kept.append(record)
    retiring = sorted(mine.values(), key=lambda r: r.index, reverse=True)
    records, placed = {}, False
    for name, record in sup.records.items():
        if record.service != service:
            records[name] = record
        elif not placed:  # the service's records where they were, new ones after
            placed = True
            records.update((r.name, r) for r in (*kept, *retiring))
    sup.records = records
    retired = []
    for record in retiring:
        if not record.retired:
            record.retired = True
            retired.append(record.name)
            step.log(f"{record.name}: retired: {service} scaled to {count}")  # (may go now)
        record.goal = Goal.DOWN
    sup.index()
    for record in added:
        if wanted_up and not sup.shutting_down:
            step.request_start(record, fresh=True)
    step.stop_pass()
    drop_retired(step)
    return retired


def drop_retired(step):
    """Forget the retired records that are at rest (their timers go: Arm)."""
    sup = step.sup
    gone = [r for r in sup.records.values()
            if r.retired and r.state in AT_REST and r.pending is None]
    for record in gone:
        del sup.records[record.name]
        step.log(f"{record.name}: removed")
        step.effects.append(m.Arm(record.name))  # the shell drops its timers
    if gone:
        sup.index()
