"""The states of a supervised instance and every legal move between them.

This module imports nothing of corral's: it sits at the bottom of the import
graph. All knowledge of which move is legal is in TRANSITIONS; the decision
step (step.py) calls apply() through Record.move() and never assigns a
state by hand.

    STOPPED/EXITED/FATAL --wait--> WAITING    (wanted up; its `after` services
    BACKOFF --wait--> WAITING                  are not RUNNING yet, also when
                                               its backoff ends)
    WAITING --blocked--> STOPPED              (one of them is at rest, unwanted)
    (at rest)/WAITING/BACKOFF --start--> STARTING --ready--> RUNNING
    STARTING/RUNNING --crashed--> BACKOFF --retry--> STARTING
    STARTING/RUNNING --gave_up--> FATAL       (policy: too many restarts, boot error)
    STARTING/RUNNING --finished--> EXITED     (policy: no restart wanted)
    STARTING/RUNNING --stop--> STOPPING --gone--> STOPPED
    RUNNING --fail--> FAILING                 (health or max_memory: stopped
    FAILING --crashed/gave_up/finished-->      gracefully, then the policy
            BACKOFF/FATAL/EXITED               decides as for a crash)
    FAILING --gone--> STOPPED                 (an operator's stop came meanwhile)
    (at rest)/WAITING/BACKOFF --crashed/gave_up/finished--> BACKOFF/FATAL/EXITED
                                              (the spawn itself failed: no
                                               process was ever STARTING)
    WAITING/BACKOFF --stop--> STOPPED         (nothing runs: nothing to wait for)
"""

import enum


class State(enum.Enum):
    STOPPED = "STOPPED"
    WAITING = "WAITING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    FAILING = "FAILING"
    EXITED = "EXITED"
    FATAL = "FATAL"

    def __str__(self):
        return self.value


class Event(enum.Enum):
    WAIT = "wait"  # wanted up, but its `after` services are not RUNNING yet
    BLOCKED = "blocked"  # one of its `after` services is at rest and not wanted
    START = "start"  # spawned at an operator's or the start order's request
    READY = "ready"  # readiness says so (commands without `ready`: once spawned)
    CRASHED = "crashed"  # it exited (or never spawned); the policy restarts it later
    GAVE_UP = "gave_up"  # it exited (or never spawned); the policy gives up
    FINISHED = "finished"  # it exited unasked and the policy does not restart it
    RETRY = "retry"  # the backoff delay is over: spawned again
    STOP = "stop"  # an operator or the shutdown asks it to stop
    FAIL = "fail"  # its health check or max_memory failed: stopped as a failure
    GONE = "gone"  # its process (and what it left) is gone after a stop


S, E = State, Event
_AT_REST = (S.STOPPED, S.EXITED, S.FATAL)
_NO_PROCESS = (*_AT_REST, S.WAITING, S.BACKOFF)  # where a spawn can be tried

TRANSITIONS = {
    **{(s, E.WAIT): S.WAITING for s in (*_AT_REST, S.BACKOFF)},
    (S.WAITING, E.BLOCKED): S.STOPPED,
    **{(s, E.START): S.STARTING for s in _NO_PROCESS},
    **{(s, E.CRASHED): S.BACKOFF for s in _NO_PROCESS},  # a failed spawn
    **{(s, E.GAVE_UP): S.FATAL for s in _NO_PROCESS},
    **{(s, E.FINISHED): S.EXITED for s in _NO_PROCESS},  # restart = never
    (S.STARTING, E.READY): S.RUNNING,
    (S.STARTING, E.CRASHED): S.BACKOFF,
    (S.RUNNING, E.CRASHED): S.BACKOFF,
    (S.STARTING, E.GAVE_UP): S.FATAL,
    (S.RUNNING, E.GAVE_UP): S.FATAL,
    (S.STARTING, E.FINISHED): S.EXITED,
    (S.RUNNING, E.FINISHED): S.EXITED,
    (S.BACKOFF, E.RETRY): S.STARTING,
    (S.STARTING, E.STOP): S.STOPPING,
    (S.RUNNING, E.STOP): S.STOPPING,
    (S.WAITING, E.STOP): S.STOPPED,
    (S.BACKOFF, E.STOP): S.STOPPED,
    (S.STOPPING, E.GONE): S.STOPPED,
    (S.RUNNING, E.FAIL): S.FAILING,
    (S.FAILING, E.CRASHED): S.BACKOFF,
    (S.FAILING, E.GAVE_UP): S.FATAL,
    (S.FAILING, E.FINISHED): S.EXITED,
    (S.FAILING, E.GONE): S.STOPPED,
}

del S, E, _AT_REST, _NO_PROCESS

# Named groups, so that call sites read as policy.
HAS_PROCESS = frozenset({State.STARTING, State.RUNNING, State.STOPPING, State.FAILING})
SIGNALLABLE = frozenset({State.STARTING, State.RUNNING})  # an operator's signal
BEING_STOPPED = frozenset({State.STOPPING, State.FAILING})  # signalled, awaited
ACTIVE = frozenset({State.WAITING, State.STARTING, State.RUNNING, State.BACKOFF})  # wanted up
STARTABLE = frozenset(s for (s, e) in TRANSITIONS if e is Event.START)
STOPPABLE = frozenset(s for (s, e) in TRANSITIONS if e is Event.STOP)
AT_REST = frozenset({State.STOPPED, State.EXITED, State.FATAL})  # no process, no deadline
STARTING_UP = frozenset({State.WAITING, State.STARTING})  # on the way up, not there yet


class IllegalTransition(Exception):
    def __init__(self, state, event):
        self.state = state
        self.event = event
        super().__init__(f"illegal transition: {event.value!r} in state {state.value}")


def apply(state, event):
    """Return the state after `event` in `state`, or raise IllegalTransition."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(state, event) from None
