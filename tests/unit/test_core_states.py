"""The state table, walked whole: every (state, event) pair and every group."""

import itertools
import pathlib

import pytest

from corral.core import states
from corral.core.states import (
    ACTIVE,
    AT_REST,
    BEING_STOPPED,
    HAS_PROCESS,
    SIGNALLABLE,
    STARTABLE,
    STOPPABLE,
    TRANSITIONS,
    Event,
    IllegalTransition,
    State,
    apply,
)

ALL_PAIRS = list(itertools.product(State, Event))


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS, ids=lambda v: v.name)
def test_every_pair_follows_the_table(state, event):
    if (state, event) in TRANSITIONS:
        assert apply(state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(IllegalTransition) as info:
            apply(state, event)
        assert info.value.state is state
        assert info.value.event is event
        message = str(info.value)
        assert state.value in message
        assert event.value in message


def test_table_uses_only_states_and_events():
    for (state, event), target in TRANSITIONS.items():
        assert isinstance(state, State)
        assert isinstance(event, Event)
        assert isinstance(target, State)


def test_every_state_is_reachable_and_can_move():
    targets = set(TRANSITIONS.values())
    sources = {state for state, _ in TRANSITIONS}
    assert targets | {State.STOPPED} == set(State)
    assert sources == set(State)


def test_every_event_is_used():
    assert {event for _, event in TRANSITIONS} == set(Event)


def test_documented_moves():
    assert apply(State.STOPPED, Event.START) is State.STARTING
    assert apply(State.STOPPED, Event.WAIT) is State.WAITING
    assert apply(State.WAITING, Event.START) is State.STARTING
    assert apply(State.WAITING, Event.BLOCKED) is State.STOPPED
    assert apply(State.STARTING, Event.READY) is State.RUNNING
    assert apply(State.RUNNING, Event.CRASHED) is State.BACKOFF
    assert apply(State.BACKOFF, Event.RETRY) is State.STARTING
    assert apply(State.RUNNING, Event.GAVE_UP) is State.FATAL
    assert apply(State.RUNNING, Event.FINISHED) is State.EXITED
    assert apply(State.RUNNING, Event.STOP) is State.STOPPING
    assert apply(State.STOPPING, Event.GONE) is State.STOPPED
    assert apply(State.BACKOFF, Event.STOP) is State.STOPPED
    # stopped for failing its health checks: the restart policy decides
    assert apply(State.RUNNING, Event.FAIL) is State.FAILING
    assert apply(State.FAILING, Event.CRASHED) is State.BACKOFF
    assert apply(State.FAILING, Event.GAVE_UP) is State.FATAL
    assert apply(State.FAILING, Event.FINISHED) is State.EXITED
    assert apply(State.FAILING, Event.GONE) is State.STOPPED  # an operator's stop came too
    # a failed spawn never shows a STARTING without a process
    assert apply(State.STOPPED, Event.CRASHED) is State.BACKOFF
    assert apply(State.BACKOFF, Event.GAVE_UP) is State.FATAL


def test_an_operators_stop_never_leads_to_the_policy():
    # STOPPING has one meaning: once gone, STOPPED. Only FAILING asks the policy.
    assert {e for (s, e) in TRANSITIONS if s is State.STOPPING} == {Event.GONE}


def test_a_stop_always_ends_at_rest():
    # From any stoppable state, stopping (and the exit that follows, if there
    # is a process) ends in STOPPED.
    for state in STOPPABLE:
        after = apply(state, Event.STOP)
        if after is State.STOPPING:
            after = apply(after, Event.GONE)
        assert after is State.STOPPED


def test_startable_and_stoppable_come_from_the_table():
    assert STARTABLE == {s for s in State if (s, Event.START) in TRANSITIONS}
    assert STOPPABLE == {s for s in State if (s, Event.STOP) in TRANSITIONS}
    for state in STARTABLE:
        assert apply(state, Event.START) is State.STARTING


def test_groups_are_consistent():
    # At rest: no process and no deadline, so nothing to stop and nothing pending.
    assert not AT_REST & HAS_PROCESS
    assert not AT_REST & ACTIVE
    assert not AT_REST & STOPPABLE
    assert AT_REST <= STARTABLE
    # Only a live process can be signalled; a stopping one is left alone.
    assert SIGNALLABLE <= HAS_PROCESS
    assert not SIGNALLABLE & BEING_STOPPED
    assert BEING_STOPPED == HAS_PROCESS - SIGNALLABLE
    # Wanted up: has a process being started or run, or waits for its turn.
    assert ACTIVE == STOPPABLE
    assert ACTIVE - HAS_PROCESS == {State.BACKOFF, State.WAITING}
    # Every state is exactly one of: at rest, with a process, waiting without one.
    assert AT_REST | HAS_PROCESS | {State.BACKOFF, State.WAITING} == set(State)
    # A spawn is tried only where there is no process.
    assert not STARTABLE & HAS_PROCESS


def test_process_events_only_where_there_is_a_process():
    # Ready and gone notices come from a process; crashes and give-ups also
    # come from a spawn that failed, where there is none.
    for event in (Event.READY, Event.GONE, Event.FAIL):
        for state in State:
            if (state, event) in TRANSITIONS:
                assert state in HAS_PROCESS, (state, event)
    for event in (Event.CRASHED, Event.GAVE_UP, Event.FINISHED):
        for state in State:
            if (state, event) in TRANSITIONS:
                assert state in HAS_PROCESS or state in STARTABLE, (state, event)


def test_moves_out_of_a_process_state_leave_no_process_unless_stopping():
    for (state, event), target in TRANSITIONS.items():
        if state in HAS_PROCESS and event is not Event.READY and target in HAS_PROCESS:
            assert target in BEING_STOPPED, (state, event)


def test_str_is_the_value():
    assert str(State.RUNNING) == "RUNNING"


def test_states_imports_nothing_of_corral():
    source = pathlib.Path(states.__file__).read_text(encoding="utf-8")
    assert "import corral" not in source and "from corral" not in source
