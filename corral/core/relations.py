"""The rules that reach across records: `requires`, restart groups, `on_fatal`.

Part of the decision step (step.py), pure like it. None of them needs a
flag of its own: a service stopped for a dependency keeps its goal UP, so
once gone it waits for its `after` services (WAITING) and starts when they
are back; a group's restart gives its members the goal RESTART (down in the
stop order, then up); members of an ordered group count the members before
them as `after` (record.Supervision.after_of).
"""

from corral.core.record import RETRY, Goal
from corral.core.states import ACTIVE, AT_REST, Event, State


def requires_pass(step):
    """Stop what requires a service that is going down or down for good;
    it waits (WAITING, goal still UP) and runs again once that is back."""
    for record in step.sup.requiring:
        if not record.spec.requires or record.goal is not Goal.UP \
                or record.state not in (State.STARTING, State.RUNNING):
            continue
        gone = next((dep for name in record.spec.requires
                     for dep in step.sup.instances_of(name)
                     if dep.goal is Goal.DOWN or dep.state in AT_REST), None)
        if gone is not None:
            why = f"{gone.name} is {gone.state}" if gone.state in AT_REST \
                else f"{gone.name} is stopping"
            step.log(f"stopping: it requires {gone.name}, and {why}", record)
            step.stop_process(record, Event.STOP, f"stopped: {why}")


def group_restart(step, record):
    """record crashed and its policy restarts it: its group's strategy
    restarts the others too (one_for_all), or those after it (rest_for_one),
    stopped in reverse order and started in order; past the group's
    intensity, the group gives up."""
    group = step.sup.group_of.get(record.service)
    if group is None or group.strategy == "one_for_one" or group.fatal:
        return
    recent = tuple(t for t in group.restarts if step.now - t < group.restart_window)
    if len(recent) >= group.max_restarts:
        group.restarts = recent
        group_gives_up(step, group, f"group {group.name}: {len(recent) + 1} restarts in "
                                   f"{group.restart_window:g} s ({record.name} "
                                   f"{record.last_exit}): giving up")
        return
    group.restarts = recent + (step.now,)
    members = group.services
    if group.strategy == "rest_for_one":
        members = members[members.index(record.service) + 1:]
    step.log(f"group {group.name} ({group.strategy}): {record.name} exited: "
             f"restarting {', '.join(members) or 'only it'}")
    for name in members:
        for other in step.sup.instances_of(name):
            if other is not record and other.state in (State.STARTING, State.RUNNING) \
                    and other.goal is Goal.UP:
                other.goal = Goal.RESTART
    step.stop_pass()

def group_gives_up(step, group, reason):
    group.fatal = reason
    step.log(f"FATAL: {reason}")
    failed = None
    for name in group.services:
        for record in step.sup.instances_of(name):
            if record.state is State.BACKOFF:
                step.disarm(record, RETRY)
                step.move(record, Event.GAVE_UP, reason)
                failed = failed or record
            elif record.state in ACTIVE:
                record.goal = Goal.DOWN
    step.stop_pass()
    if failed is not None:
        on_fatal(step, failed)


def on_fatal(step, record):
    if step.sup.on_fatal == "shutdown" and not step.sup.shutting_down:
        step.log(f"on_fatal = \"shutdown\": {record.name} is FATAL: stopping everything")
        step.sup.exit_code = 1
        step.shutdown()

# -- exits -----------------------------------------------------------------
