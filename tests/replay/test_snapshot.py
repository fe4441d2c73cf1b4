"""core/snapshot.py: a supervision captured as JSON and laid onto fresh
records from the same specs goes on exactly as the original would have
(corral upgrade's promise: restart counts, uptimes, goals, deadlines)."""

import json

import pytest

from corral.clock import FakeClock
from corral.core import messages as m
from corral.core import snapshot
from corral.core.record import KILL, RETRY, Goal
from tests.replay.harness import World, command, python_tree

SPECS = (
    command("db"),
    python_tree("web", after=("db",), numprocs=2, start_timeout=5.0),
    command("flaky", backoff_initial=2.0, backoff_reset=10.0),  # each exit a failed start
    command("slow", stop_timeout=4.0),
    command("idle", autostart=False),
)


def busy_world():
    """Every kind of moment at once: running with restarts, in backoff, being
    stopped with its kill pending, starting with its start_timeout armed,
    stopped by an operator."""
    w = World(*SPECS)
    w.feed(m.Start(("db", "web:0", "web:1", "flaky", "slow"), fresh=True))
    w.notify("web:0", "READY=1")
    w.advance(1.0)
    w.exit("flaky", code=1)  # -> BACKOFF, retry armed
    w.advance(2.5)
    w.exit("flaky", code=1)
    w.feed(m.Stop(("slow",)))  # -> STOPPING, kill armed
    w.advance(1.0)
    return w


def transplant(w):
    """A new World (a re-exec'd master) from the same specs, with the clock
    where it was, given the first one's snapshot through JSON."""
    data = json.loads(json.dumps(snapshot.capture(w.sup)))
    fresh = World(*SPECS, clock=FakeClock(w.clock.now()))  # its own: the same time
    fresh.next_pid, fresh.pids, fresh.alive = w.next_pid, dict(w.pids), set(w.alive)
    snapshot.restore(fresh.sup, data)
    return fresh


def rows(w):
    return {name: (r.state, r.goal, r.pid, r.restarts, r.started_at, r.since, r.reason,
                   r.history, r.last_exit, r.starting, r.deadlines)
            for name, r in w.sup.records.items()}


def test_a_restored_supervision_equals_the_captured_one():
    w = busy_world()
    assert w.state("flaky") == "BACKOFF" and RETRY in w.record("flaky").deadlines
    assert w.state("slow") == "STOPPING" and KILL in w.record("slow").deadlines
    assert w.state("web:1") == "STARTING" and w.record("flaky").restarts == 2
    fresh = transplant(w)
    assert rows(fresh) == rows(w)
    assert fresh.record("idle").goal is Goal.DOWN and fresh.deadlines() == w.deadlines()
    indexed = {name: state for state, names in fresh.sup.in_state.items() for name in names}
    assert indexed == {name: r.state for name, r in fresh.sup.records.items()}  # the step's index


def test_the_restored_one_goes_on_as_the_original_would():
    original = busy_world()
    fresh = transplant(original)
    for world in (original, fresh):
        world.moves.clear()
        world.signals.clear()
        world.advance(3.5)  # flaky's retry, slow's stop timeout, web:1's start_timeout
        world.exit("slow", sig=9)
        world.notify("web:0", "WATCHDOG=1")
    assert fresh.moves == original.moves and fresh.signals == original.signals
    assert original.signals  # the stop timeout's kill, the start timeout's
    assert rows(fresh) == rows(original)
    assert fresh.record("flaky").restarts == 2 and fresh.state("slow") == "STOPPED"


def test_a_snapshot_that_does_not_fit_is_refused_whole():
    w = busy_world()
    data = json.loads(json.dumps(snapshot.capture(w.sup)))
    other = World(*SPECS[:-1], command("new"))
    before = rows(other)
    with pytest.raises(snapshot.SnapshotError) as caught:
        snapshot.restore(other.sup, data)
    assert "idle: in the running master, not in the config" in str(caught.value)
    assert "new: in the config, not in the running master" in str(caught.value)
    assert rows(other) == before  # nothing laid on
    data["records"]["db"]["state"] = "DANCING"
    assert any("db: cannot read" in p for p in snapshot.problems(World(*SPECS).sup, data))
    assert snapshot.problems(World(*SPECS).sup, {"version": 99}) == [
        "snapshot version 99, this corral reads 1"]


def test_a_master_shutting_down_is_not_captured():
    w = World(*SPECS)
    w.feed(m.Shutdown())
    with pytest.raises(snapshot.SnapshotError, match="the master is (shutting down|done)"):
        snapshot.capture(w.sup)


def test_a_scaled_service_is_restored_with_its_count():
    w = World(*SPECS)
    w.feed(m.Start(("db", "web:0", "web:1"), fresh=True))
    w.feed(m.Scale("web", 3))
    assert [r.name for r in w.sup.instances_of("web")] == ["web:0", "web:1", "web:2"]
    fresh = transplant(w)                                      # its config still says 2
    assert [r.name for r in fresh.sup.instances_of("web")] == ["web:0", "web:1", "web:2"]
    assert rows(fresh) == rows(w)
    assert all(r.spec.numprocs == 3 for r in fresh.sup.instances_of("web"))
    w.feed(m.Scale("web", 2))                                   # web:2 retiring
    fresh = transplant(w)
    assert rows(fresh) == rows(w)
    assert [r.retired for r in fresh.sup.records.values() if r.service == "web"] == \
        [r.retired for r in w.sup.records.values() if r.service == "web"]
