"""Restart groups (Erlang/OTP's strategies) through the decision step."""

from corral.core import messages as m
from corral.core.record import Group
from tests.replay.harness import World, command


def grouped(strategy, **limits):
    w = World(command("a", backoff_initial=0.1), command("b", backoff_initial=0.1),
              command("c", backoff_initial=0.1), command("solo"))
    w.sup.groups = {"g": Group("g", ("a", "b", "c"), strategy, **limits)}
    w.sup.index()
    w.feed(m.Start(tuple(w.sup.records), fresh=True))
    return w


def test_one_for_one_restarts_only_the_crashed_member():
    w = grouped("one_for_one")
    w.exit("b", code=1)
    assert w.states() == {"a": "RUNNING", "b": "BACKOFF", "c": "RUNNING", "solo": "RUNNING"}


def test_one_for_all_stops_the_others_in_reverse_order_and_starts_all_in_order():
    w = grouped("one_for_all")
    assert [n for n in w.spawned_order() if n != "solo"] == ["a", "b", "c"]  # in order
    w.exit("b", code=1)
    assert w.states() == {"a": "RUNNING", "b": "BACKOFF", "c": "STOPPING", "solo": "RUNNING"}
    assert "group g (one_for_all): b exited: restarting a, b, c" in w.lines
    w.exit("c")
    assert w.state("a") == "STOPPING"  # c first, then a
    w.advance(0.1)  # b's backoff ends while a is still stopping: b waits for it
    assert w.state("b") == "WAITING"
    w.exit("a")
    assert w.states() == {"a": "RUNNING", "b": "RUNNING", "c": "RUNNING", "solo": "RUNNING"}
    assert w.spawned_order()[4:] == ["a", "b", "c"]


def test_rest_for_one_restarts_those_after_it():
    w = grouped("rest_for_one")
    w.exit("b", code=1)
    assert w.states() == {"a": "RUNNING", "b": "BACKOFF", "c": "STOPPING", "solo": "RUNNING"}
    w.exit("c")
    w.advance(0.1)
    assert w.states() == {"a": "RUNNING", "b": "RUNNING", "c": "RUNNING", "solo": "RUNNING"}


def test_the_group_counts_its_own_restarts_and_gives_up_as_a_whole():
    w = grouped("one_for_all", max_restarts=2, restart_window=60.0)
    for _ in range(2):
        w.exit("a", code=1)
        for name in ("c", "b"):
            w.exit(name)
        w.advance(1)
        assert set(w.states().values()) == {"RUNNING"}
    w.exit("a", code=1)
    reason = "group g: 3 restarts in 60 s (a exit 1): giving up"
    assert w.state("a") == "FATAL" and w.record("a").reason == reason
    assert "FATAL: " + reason in w.lines
    assert w.state("c") == "STOPPING"
    w.exit("c")
    w.exit("b")
    assert w.states() == {"a": "FATAL", "b": "STOPPED", "c": "STOPPED", "solo": "RUNNING"}


def test_a_fatal_group_with_on_fatal_shutdown_stops_the_master():
    w = grouped("one_for_all", max_restarts=0)
    w.sup.on_fatal = "shutdown"
    w.exit("a", code=1)
    for name in ("c", "b", "solo"):
        w.exit(name)
    assert w.done == 1
