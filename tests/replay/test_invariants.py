"""Random histories: whatever happens in whatever order, the records stay
consistent, no move is illegal, and a shutdown always ends.

300 seeded histories of 80 happenings each (starts, stops, crashes, READY=1
lines, probe answers, scales, time passing) over a small tree with dependencies
(`after`, `requires` and `order_after`), a restart group of each strategy, readiness
checks, health and watchdogs, with both `on_fatal` choices; then a shutdown.
"""

import random

import pytest

from corral.core import messages as m
from corral.core.record import Group
from corral.core.states import AT_REST, HAS_PROCESS
from corral.healthspec import parse_health
from corral.probes import parse_tcp
from tests.replay.harness import World, command, python_tree


def specs():
    return (
        python_tree("db", start_timeout=2.0, backoff_initial=0.1),
        command("cache", ready=("tcp", parse_tcp(6379)), start_timeout=1.0,
                backoff_initial=0.2, stop_timeout=0.5),
        command("web", after=("db", "cache"), requires=("db",), numprocs=2, watchdog=1.0,
                health=parse_health({"tcp": 8000, "interval": 0.5, "failures": 2}),
                restart="on-failure", max_restarts=3),
        python_tree("job", after=("web",), ready=("seconds", 0.3), restart="never"),
        command("mail", order_after=("cache",), backoff_initial=0.1),  # supervisord's priority
    )


class _Where:
    def __init__(self, record, w):
        self.record, self.w = record, w

    def __repr__(self):
        return f"{self.record.name} {self.record.state}: {self.w.moves[-5:]}"


def check(w):
    for record in w.sup.records.values():
        where = _Where(record, w)  # formatted only when an assert fails
        assert (record.pid is not None) == (record.state in HAS_PROCESS), where
        assert record.pending is None, where
        if record.state in AT_REST:
            assert not record.deadlines, where
        if record.pid is not None:
            assert w.pids[record.pid] == record.name, where
        assert not (record.retired and record.state in AT_REST), where  # dropped at rest
    for service, records in w.sup.by_service.items():  # a scale keeps the names whole
        assert [r.name for r in records] == records[0].spec.instance_names(), service
        assert not any(r.retired for r in records), service
    # the step's index of records by state (Supervision.in_state) is the truth
    indexed = {name: state for state, names in w.sup.in_state.items() for name in names}
    assert indexed == {n: r.state for n, r in w.sup.records.items()}


def happen(w, rng):
    names = list(w.sup.records)
    live = [n for n in names if w.pid(n) in w.alive]
    choice = rng.random()
    if choice < 0.15:
        w.feed(m.Start(tuple(rng.sample(names, rng.randint(1, 2))), fresh=rng.random() < 0.5))
    elif choice < 0.25:
        w.feed(m.Stop(tuple(rng.sample(names, rng.randint(1, 3)))))
    elif choice < 0.45 and live:
        name = rng.choice(live)
        if rng.random() < 0.5:
            w.exit(name, code=rng.choice([0, 1, 78]), leftovers=rng.random() < 0.2)
        else:
            w.killed(name)
    elif choice < 0.6 and live:
        w.notify(rng.choice(live), rng.choice(["READY=1", "WATCHDOG=1", "STATUS=busy",
                                               "STOPPING=1", "WATCHDOG=trigger"]))
    elif choice < 0.75 and w.probes:
        name, pid, what = w.probes.pop(rng.randrange(len(w.probes)))
        if what == "leftovers":
            w.feed(m.Leftovers(name, pid, alive=rng.random() < 0.3))
        else:
            w.feed(m.Probed(name, pid, what, ok=rng.random() < 0.6, detail="x"))
    elif choice < 0.8:
        w.feed(m.Scale(rng.choice(["web", "db", "job"]), rng.randint(1, 3)))
    else:
        w.advance(rng.choice([0.01, 0.1, 0.5, 1.0, 3.0]))


def settle_everything(w):
    """Every live process ends when signalled; let all deadlines pass."""
    for _ in range(200):
        for name, record in list(w.sup.records.items()):  # (a retired one goes at rest)
            if record.pid is not None and record.pid in w.alive:
                if any(n == name and pid == record.pid for n, pid, _s, _w in w.signals):
                    w.killed(name)
        for name, pid, what in list(w.probes):
            w.probes.remove((name, pid, what))
            if what == "leftovers":
                w.feed(m.Leftovers(name, pid, alive=False))
        if w.done is not None:
            return
        w.advance(1.0)
    raise AssertionError(f"shutdown never ended: {w.states()} {w.deadlines()}")


@pytest.mark.parametrize("seed", range(300))
def test_random_history_keeps_records_consistent_and_shutdown_ends(seed):
    rng = random.Random(seed)
    w = World(*specs())
    w.sup.on_fatal = "shutdown" if seed % 3 == 0 else "stay"
    strategy = ("one_for_one", "one_for_all", "rest_for_one")[seed % 3]
    w.sup.groups = {"g": Group("g", ("db", "cache"), strategy, max_restarts=3)}
    w.sup.index()
    w.feed(m.Start(("db", "cache", "web:0", "web:1", "job")))
    check(w)
    for _ in range(80):
        happen(w, rng)
        check(w)
    w.feed(m.Shutdown())
    settle_everything(w)
    check(w)
    assert all(r.state in AT_REST for r in w.sup.records.values()), w.states()
    fatal = any(new == "FATAL" for _n, _o, new, _r in w.moves)
    assert not w.sup.deadlines
    assert w.done == (1 if fatal and w.sup.on_fatal == "shutdown" else 0)
    before = len(w.pids)
    w.feed(m.Start(("db",)))
    w.advance(10)
    assert len(w.pids) == before  # nothing is spawned after a shutdown
