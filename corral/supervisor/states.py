"""The states of a supervised instance and every legal move between them.

This module imports nothing of corral's: it sits at the bottom of the import
graph. All knowledge of which move is legal is in TRANSITIONS; the master
calls apply() and never assigns a state by hand.

    STOPPED --start--> STARTING --ready--> RUNNING
    STARTING/RUNNING --crashed--> BACKOFF --retry--> STARTING
    STARTING/RUNNING --gave_up--> FATAL       (policy: too many restarts, boot error)
    STARTING/RUNNING --finished--> EXITED     (policy: no restart wanted)
    STARTING/RUNNING --stop--> STOPPING --exited--> STOPPED
    STOPPING --crashed/gave_up/finished--> BACKOFF/FATAL/EXITED
                                              (stopped for failing its health
                                              checks: the policy decides)
    BACKOFF --stop--> STOPPED                 (the pending retry is cancelled)
"""

import enum


class State(enum.Enum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"

    def __str__(self):
        return self.value


class Event(enum.Enum):
    START = "start"  # an operator or the start order asks for the service
    READY = "ready"  # the worker reported ready (commands: once spawned)
    CRASHED = "crashed"  # it exited unasked and the policy restarts it later
    GAVE_UP = "gave_up"  # it exited unasked and the policy gives up
    FINISHED = "finished"  # it exited unasked and the policy does not restart it
    RETRY = "retry"  # the backoff delay is over
    STOP = "stop"  # an operator or the shutdown asks it to stop
    EXITED = "exited"  # the process is gone after a stop


S, E = State, Event

TRANSITIONS = {
    (S.STOPPED, E.START): S.STARTING,
    (S.EXITED, E.START): S.STARTING,
    (S.FATAL, E.START): S.STARTING,
    (S.BACKOFF, E.START): S.STARTING,
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
    (S.BACKOFF, E.STOP): S.STOPPED,
    (S.STOPPING, E.EXITED): S.STOPPED,
    (S.STOPPING, E.CRASHED): S.BACKOFF,
    (S.STOPPING, E.GAVE_UP): S.FATAL,
    (S.STOPPING, E.FINISHED): S.EXITED,
}

del S, E

# Named groups, so that call sites read as policy.
HAS_PROCESS = frozenset({State.STARTING, State.RUNNING, State.STOPPING})
SIGNALLABLE = frozenset({State.STARTING, State.RUNNING})
ACTIVE = frozenset({State.STARTING, State.RUNNING, State.BACKOFF})  # wanted up
STARTABLE = frozenset(s for (s, e) in TRANSITIONS if e is Event.START)
STOPPABLE = frozenset(s for (s, e) in TRANSITIONS if e is Event.STOP)
AT_REST = frozenset({State.STOPPED, State.EXITED, State.FATAL})  # no process, no timer


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
