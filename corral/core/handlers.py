"""The decision step's handlers: one per input (messages.py), on a Step.

Part of step.py, split out to keep each under 400 lines: the Step holds
what the rules share (moves, deadlines, starting and stopping); each handler
here reads one input and calls them.
"""

import dataclasses
import signal

from corral.core import messages as m
from corral.core import policy, relations, scale, watch
from corral.core.record import (KILL, LEFTOVERS, MEMORY, NOTICE, RETRY, Goal, Group, Mode,
                                Record)
from corral.core.states import AT_REST, BEING_STOPPED, HAS_PROCESS, Event, State

LEFTOVER_POLL = 0.02  # s between checks for a stopped worker's leftover processes
NOTICE_PERIOD = 2.0  # s between "still stopping ..." lines during a shutdown


def _start(step, item):
    if step.sup.shutting_down:
        return
    # In the config's order, so that of those started together each sees the
    # ones it is `order_after` on their way up already (supervisord's priority).
    position = step.sup.position
    for name in sorted(item.names, key=position.__getitem__):
        record = step.sup.records[name]
        if not record.retired:  # scaled away: it stops and goes
            step.request_start(record, item.fresh)


def _stop(step, item):
    for name in item.names:
        step.sup.records[name].goal = Goal.DOWN
    relations.requires_pass(step)
    step.stop_pass()


def _shutdown(step, item):
    begin_shutdown(step)


def begin_shutdown(step):
    if step.sup.shutting_down:
        return
    step.sup.mode = Mode.SHUTTING_DOWN
    step.log("shutting down (a second Ctrl-C kills every worker now)")
    for record in step.sup.records.values():
        record.goal = Goal.DOWN
    step.arm(None, NOTICE, NOTICE_PERIOD)
    _settle(step, None)


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
        for record in sup.those_in((State.WAITING,)):
            if record.state is State.WAITING:
                blocker = next((f"{dep.name} is {dep.state}" for dep in step.dependencies(record)
                                if dep.state in AT_REST
                                and dep.service not in record.spec.requires), None)
                if blocker is not None:
                    step.move(record, Event.BLOCKED, f"not started: {blocker}")
                    step.log(f"not started: {blocker}", record)
                elif not step.waiting_for(record):
                    step.spawn(record, Event.START)
        relations.requires_pass(step)
    step.stop_pass()
    scale.drop_retired(step)
    if sup.mode is Mode.SHUTTING_DOWN and sup.count_in(AT_REST) == len(sup.records):
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
    record.started_at, record.ready_at = step.now, None
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
    record.started_at, record.ready_at = step.now, None
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
    starting = record.state is State.STARTING
    exit = record.last_exit = watch.gone(step, record, exit)
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
    old_groups, keep = sup.groups, set(item.keep)
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
        if spec.name in keep:
            sup.records.update((r.name, r) for r in sup.by_service.get(spec.name, ()))
        else:
            for index in range(spec.numprocs):
                record = Record.of(spec, index)
                sup.records[record.name] = record
    sup.index()


def _scale(step, item):
    problem = scale.refusal(step.sup, item.service, item.count)
    if problem is not None:  # the API checks first; a reload's Scale is checked by load
        step.log(f"scale {item.service} refused: {problem}")
        return
    scale.scale(step, item.service, item.count)


HANDLERS = {
    m.Start: _start, m.Stop: _stop, m.Shutdown: _shutdown, m.Settle: _settle,
    m.Spawned: _spawned, m.SpawnFailed: _spawn_failed, m.Exited: _exited,
    m.Leftovers: _leftovers, m.Notified: _notified, m.Probed: _probed,
    m.MemorySampled: _memory_sampled, m.Due: _due, m.Replace: _replace, m.Scale: _scale,
}
