"""Runtime scale (core/scale.py), through the step: the diff by instance name.

Kept instances keep their pid and history; new ones start when the service
is wanted up; surplus ones stop with the usual escalation, highest index
first, and are dropped once at rest; a retired instance holds up nobody's
order and refuses start. Refusals change nothing.
"""

import signal

from corral.core import messages as m
from corral.core import scale
from corral.spec import MAX_NUMPROCS
from tests.replay.harness import World, command


def up(*specs):
    w = World(*specs)
    w.feed(m.Start(tuple(w.sup.records), fresh=True))
    return w


def test_scale_up_starts_the_new_instances_and_leaves_the_others_alone():
    w = up(command("web", numprocs=2))
    pids = {n: w.pid(n) for n in ("web:0", "web:1")}
    w.record("web:0").restarts = 3
    w.feed(m.Scale("web", 4))
    assert list(w.sup.records) == ["web:0", "web:1", "web:2", "web:3"]
    assert set(w.states().values()) == {"RUNNING"}
    assert {n: w.pid(n) for n in pids} == pids and w.record("web:0").restarts == 3
    assert [r.spec.numprocs for r in w.sup.records.values()] == [4] * 4
    assert w.spawned_order()[-2:] == ["web:2", "web:3"]
    assert w.signals == []
    assert "scale web: 2 -> 4 instance(s)" in w.lines


def test_scale_down_stops_the_highest_index_first_with_the_stop_escalation():
    w = up(command("web", numprocs=4, stop_timeout=5))
    kept = {n: w.pid(n) for n in ("web:0", "web:1")}
    w.feed(m.Scale("web", 2))
    assert [(n, s) for n, _pid, s, _w in w.signals] == [("web:3", signal.SIGTERM),
                                                         ("web:2", signal.SIGTERM)]
    assert w.states() == {"web:0": "RUNNING", "web:1": "RUNNING",
                          "web:3": "STOPPING", "web:2": "STOPPING"}
    # retired: the service counts two instances already, a start does not revive them
    assert [r.name for r in w.sup.instances_of("web")] == ["web:0", "web:1"]
    w.feed(m.Start(("web:2", "web:3"), fresh=True))
    assert w.state("web:2") == "STOPPING"
    w.exit("web:3")
    assert "web:3" not in w.sup.records
    assert {"web:3: retired: web scaled to 2", "web:3: removed"} <= set(w.lines)
    w.advance(5)  # web:2 ignores its SIGTERM: SIGKILL at its stop_timeout
    assert w.signalled("web:2")[-1] == (signal.SIGKILL, "family")
    w.killed("web:2")
    assert w.states() == {"web:0": "RUNNING", "web:1": "RUNNING"}
    assert {n: w.pid(n) for n in kept} == kept
    assert w.deadlines() == []


def test_from_one_to_more_and_back_replaces_the_single_instance_named_after_the_service():
    w = up(command("web"))
    w.feed(m.Scale("web", 3))
    assert w.states() == {"web:0": "RUNNING", "web:1": "RUNNING", "web:2": "RUNNING",
                          "web": "STOPPING"}  # the new ones run while the old one stops
    w.exit("web")
    assert list(w.sup.records) == ["web:0", "web:1", "web:2"]
    w.feed(m.Scale("web", 1))
    assert w.state("web") == "RUNNING"
    for name in ("web:2", "web:1", "web:0"):
        w.exit(name)
    assert w.states() == {"web": "RUNNING"}


def test_a_stopped_service_scales_without_starting_and_a_start_starts_them_all():
    w = World(command("web", autostart=False))
    w.feed(m.Scale("web", 2))
    assert w.states() == {"web:0": "STOPPED", "web:1": "STOPPED"} and w.pids == {}
    w.feed(m.Start(("web:0", "web:1"), fresh=True))
    assert set(w.states().values()) == {"RUNNING"}


def test_an_instance_scaled_away_and_back_before_it_stopped_runs_again():
    w = up(command("web", numprocs=3))
    w.feed(m.Scale("web", 2))
    assert w.state("web:2") == "STOPPING"
    w.feed(m.Scale("web", 3))
    assert not w.record("web:2").retired
    old = w.pid("web:2")
    w.exit("web:2")  # its stop ends; its goal is up again: a new process
    assert w.state("web:2") == "RUNNING" and w.pid("web:2") != old
    assert list(w.sup.records) == ["web:0", "web:1", "web:2"]


def test_retired_instances_do_not_stop_what_requires_the_service_nor_hold_up_its_order():
    w = up(command("db", numprocs=2), command("app", after=("db",), requires=("db",)))
    w.feed(m.Scale("db", 1))  # db:0 and db:1 go, db starts: app is not stopped for it
    assert w.state("app") == "RUNNING" and w.state("db") == "RUNNING"
    w.exit("db:1")
    w.exit("db:0")
    assert w.states() == {"db": "RUNNING", "app": "RUNNING"}


def test_a_scale_during_a_dependency_stop_order_waits_for_its_dependents():
    w = up(command("db"), command("app", numprocs=2, after=("db",)))
    w.feed(m.Scale("app", 1))
    assert w.state("app") == "RUNNING"
    w.feed(m.Shutdown())
    # db waits for every app instance, the retired ones too
    assert w.state("db") == "RUNNING"
    for name in ("app:1", "app:0", "app"):
        w.exit(name)
    w.exit("db")
    assert w.done == 0 and w.sup.records.keys() == {"db", "app"}


def test_refusals_name_the_reason_and_change_nothing():
    w = up(command("web", numprocs=2),
           command("prog_00", env=(("SUPERVISOR_PROCESS_NAME", "prog_00"),)))
    before = (dict(w.sup.records), w.states())
    for service, count, words in [
        ("web", 0, "1 or more, not 0 (to stop every instance: corral stop web)"),
        ("web", -1, "1 or more"),
        ("web", MAX_NUMPROCS + 1, f"{MAX_NUMPROCS} or less"),
        ("web", "2", "an integer"),
        ("nope", 2, "no service named 'nope'"),
        ("web:0", 2, "no service named 'web:0'"),
        ("prog_00", 2, "prog_00 cannot be scaled: it is one process of a supervisord.conf"),
    ]:
        assert words in scale.refusal(w.sup, service, count)
        w.feed(m.Scale(service, count))
        assert (dict(w.sup.records), w.states()) == before
        assert any(line.startswith(f"scale {service} refused: ") for line in w.lines)
    w.feed(m.Shutdown())
    assert scale.refusal(w.sup, "web", 3) == "the master is shutting down"


def test_the_same_count_is_a_no_op():
    w = up(command("web", numprocs=2))
    w.lines.clear()
    w.feed(m.Scale("web", 2))
    assert w.lines == [] and set(w.states().values()) == {"RUNNING"}
