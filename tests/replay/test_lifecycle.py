"""Scripted histories through the decision step: start, crash, stop, shutdown.

No process, no loop, no sleep: World (harness.py) answers spawns with fake
pids and moves a fake clock; each test reads the moves, signals and lines
the step asked for.
"""

import signal

import pytest

from corral.core import messages as m
from corral.core.record import KILL, LEFTOVERS, RETRY
from corral.core.states import State
from corral.probes import parse_tcp
from tests.replay.harness import World, command, python_tree


def start_all(world):
    world.feed(m.Start(tuple(world.sup.records), fresh=True))


# -- start order ---------------------------------------------------------------

def test_after_starts_a_python_dependent_once_its_dependency_is_ready():
    w = World(python_tree("db"), python_tree("web", after=("db",)),
              python_tree("worker", after=("web",)))
    start_all(w)
    assert w.states() == {"db": "STARTING", "web": "WAITING", "worker": "WAITING"}
    assert w.record("web").reason == "waiting for db"
    w.notify("db", "READY=1")
    assert w.spawned_order() == ["db", "web"] and w.state("worker") == "WAITING"
    w.notify("web", "READY=1")
    w.notify("worker", "READY=1")
    assert set(w.states().values()) == {"RUNNING"}
    assert w.lines.count("db: ready") == 1


def test_starting_one_service_starts_its_dependencies_first():
    w = World(command("db"), command("cache"), command("web", after=("db", "cache")))
    w.feed(m.Start(("web",), fresh=True))
    assert w.spawned_order() == ["db", "cache", "web"]
    assert w.states() == {"db": "RUNNING", "cache": "RUNNING", "web": "RUNNING"}


def test_order_after_orders_a_start_of_both_and_never_pulls_nor_blocks():
    """supervisord's priority layers (order_after): a start of both starts the
    lower one first and waits for it; a start of the upper one alone does not
    pull the lower one in; a lower one that fails does not hold the upper one;
    a shutdown stops the upper one first."""
    w = World(python_tree("db"), python_tree("web", order_after=("db",)))
    w.feed(m.Start(("web", "db"), fresh=True))  # asked in any order: the config's counts
    assert w.states() == {"db": "STARTING", "web": "WAITING"}
    assert w.record("web").reason == "waiting for db"
    w.notify("db", "READY=1")
    assert w.spawned_order() == ["db", "web"]
    w.notify("web", "READY=1")
    w.feed(m.Shutdown())
    assert [name for name, *_ in w.signals] == ["web"]  # web first, then db
    w.exit("web")
    assert [name for name, *_ in w.signals] == ["web", "db"]

    w = World(python_tree("db"), python_tree("web", order_after=("db",)))
    w.feed(m.Start(("web",), fresh=True))  # by hand: web alone, as supervisorctl start
    assert w.states() == {"db": "STOPPED", "web": "STARTING"}

    w = World(python_tree("db", backoff_initial=5.0), python_tree("web", order_after=("db",)))
    start_all(w)
    w.exit("db", code=1)  # a failed start of the layer below: web is not held
    assert w.states() == {"db": "BACKOFF", "web": "STARTING"}


def test_waiting_instances_start_in_config_order_whatever_order_they_began_waiting():
    # The step passes over the records of a state (Supervision.those_in), not
    # over every record: the order stays the config's.
    w = World(python_tree("db"), command("a", after=("db",)), command("b", after=("db",)),
              command("c", after=("db",)))
    w.feed(m.Start(("c", "b", "a"), fresh=True))
    assert w.states() == {"db": "STARTING", "a": "WAITING", "b": "WAITING", "c": "WAITING"}
    w.notify("db", "READY=1")
    assert w.spawned_order() == ["db", "a", "b", "c"]


def test_a_shutdown_of_many_instances_stops_each_once_and_ends_when_the_last_is_gone():
    w = World(command("web", numprocs=300))
    start_all(w)
    w.feed(m.Shutdown())
    assert set(w.states().values()) == {"STOPPING"}
    assert len(w.signalled()) == 300
    names = list(w.sup.records)
    for name in names[:-1]:
        w.exit(name)
    assert w.done is None and w.state(names[-1]) == "STOPPING"
    w.exit(names[-1])
    assert w.done == 0 and len(w.signalled()) == 300


def test_a_dependency_at_rest_blocks_its_dependents_with_the_reason():
    w = World(command("db", restart="never"), python_tree("web", after=("db",)))
    w.fail_spawn["db"] = ("exec failed: permission denied: /usr/bin/db", False)
    start_all(w)
    assert w.state("db") == "EXITED"
    assert w.moves_of("db") == [("STOPPED", "EXITED")]  # never a STARTING without a process
    assert w.state("web") == "STOPPED"
    assert w.record("web").reason == "not started: db is EXITED"
    assert "web: not started: db is EXITED" in w.lines


def test_numprocs_instances_are_all_awaited_by_dependents():
    w = World(python_tree("db", numprocs=2), python_tree("web", after=("db",)))
    start_all(w)
    w.notify("db:0", "READY=1")
    assert w.state("web") == "WAITING"
    w.notify("db:1", "READY=1")
    assert w.state("web") == "STARTING"


# -- crashes, backoff, give-up ------------------------------------------------------

def crashing(**settings):
    settings = {"backoff_initial": 1.0, "backoff_factor": 2.0, "backoff_max": 30.0,
                "max_restarts": 3, "restart_window": 60.0, **settings}
    return command("app", **settings)


def test_a_crash_loop_backs_off_then_goes_fatal():
    w = World(crashing())
    start_all(w)
    delays = []
    for _ in range(3):
        w.exit("app", code=1)
        assert w.state("app") == "BACKOFF"
        delays.append(w.record("app").deadlines[RETRY] - w.clock.now())
        w.advance(delays[-1])
        assert w.state("app") == "STARTING" or w.state("app") == "RUNNING"
    assert delays == [1.0, 2.0, 4.0]
    w.exit("app", code=1)
    assert w.state("app") == "FATAL"
    assert w.record("app").reason == "exited 4 times in 60 s (exit 1): giving up"
    assert w.lines[-1] == "app: FATAL: exited 4 times in 60 s (exit 1): giving up"
    assert not w.record("app").deadlines
    assert w.record("app").restarts == 3


def test_a_crash_after_a_run_past_the_start_window_restarts_at_once_and_uncounted():
    w = World(crashing(backoff_reset=10.0))  # max_restarts = 3 in 60 s
    start_all(w)
    w.exit("app", code=1)  # a failed start: backed off, counted
    w.advance(1.0)
    w.exit("app", code=1)
    assert w.record("app").deadlines[RETRY] - w.clock.now() == 2.0
    w.advance(2.0)
    for _ in range(5):  # more good runs than max_restarts, all within the window
        w.advance(11.0)  # RUNNING (at spawn: a command) and up past backoff_reset
        w.exit("app", code=1)
        assert w.record("app").deadlines[RETRY] == w.clock.now()
        assert w.lines[-1] == "app: exit 1 after 11.0 s up; restarting at once"
        w.advance(0)
        assert w.state("app") == "RUNNING"
    w.exit("app", code=1)  # the count started over: a failed start backs off from 1 s
    assert w.record("app").deadlines[RETRY] - w.clock.now() == 1.0


def test_the_default_backoff_survives_kills_every_few_seconds_and_gives_up_on_a_crash_loop():
    # The case: killed 10 times, 1.2-3.2 s after each restart.
    w = World(command("echo"))  # the defaults (jitter off)
    start_all(w)
    for i in range(10):
        w.advance(1.2 + (i % 3))
        w.killed("echo")
        assert w.state("echo") == "BACKOFF" and w.record("echo").deadlines[RETRY] == w.clock.now()
        w.advance(0)
    assert w.state("echo") == "RUNNING" and w.record("echo").restarts == 10
    # A crash loop (exits at once): 0.1, 0.2, 0.4, 0.8, 1.6 s, then FATAL.
    delays = []
    first = w.clock.now()
    while True:
        w.exit("echo", code=1)
        if w.state("echo") == "FATAL":
            break
        delays.append(round(w.record("echo").deadlines[RETRY] - w.clock.now(), 3))
        w.advance(delays[-1])
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert w.clock.now() - first == pytest.approx(3.1)
    assert w.record("echo").reason == "exited 6 times in 10 s (exit 1): giving up"


def test_the_start_window_is_the_readiness_the_record_has():
    # ready = {seconds = 3}: RUNNING 3 s after its spawn; a crash before is a
    # failed start, one after restarts at once.
    w = World(python_tree("app", ready=("seconds", 3.0), backoff_initial=1.0))
    start_all(w)
    w.notify("app", "READY=1")
    w.advance(2.0)
    assert w.state("app") == "STARTING"
    w.exit("app", code=1)
    assert w.record("app").deadlines[RETRY] - w.clock.now() == 1.0
    w.advance(1.0)
    w.notify("app", "READY=1")
    w.advance(3.5)
    assert w.state("app") == "RUNNING"
    w.exit("app", code=1)
    assert w.record("app").deadlines[RETRY] == w.clock.now()
    # up longer than backoff_reset but never RUNNING (no READY=1): a failed start
    w.advance(0)
    w.advance(5.0)
    assert w.state("app") == "STARTING"
    w.exit("app", code=1)
    assert w.record("app").deadlines[RETRY] - w.clock.now() == 1.0


def test_restart_policies():
    w = World(crashing(restart="on-failure"), command("never", restart="never"))
    start_all(w)
    w.exit("app", code=0)
    assert w.state("app") == "EXITED" and w.record("app").reason == "exit 0; restart = on-failure"
    w.exit("never", code=3)
    assert w.state("never") == "EXITED"


def test_a_python_boot_error_is_not_retried():
    w = World(python_tree("app"))
    start_all(w)
    w.exit("app", code=78)
    assert w.state("app") == "FATAL"
    assert "could not load or start its service tree" in w.record("app").reason


def test_a_crash_kills_what_the_process_left_behind():
    w = World(crashing())
    start_all(w)
    pid = w.pid("app")
    w.exit("app", code=1)
    assert (("app", pid, signal.SIGKILL, "family")) in w.signals


def test_a_failed_spawn_backs_off_without_a_starting():
    w = World(crashing())
    w.fail_spawn["app"] = ("exec failed: no such file: /nope", False)
    start_all(w)
    assert w.moves_of("app") == [("STOPPED", "BACKOFF")]
    assert w.record("app").last_exit.error == "exec failed: no such file: /nope"
    assert "app: exec failed: no such file: /nope" in w.lines
    del w.fail_spawn["app"]
    w.advance(1.0)
    assert w.moves_of("app")[-2:] == [("BACKOFF", "STARTING"), ("STARTING", "RUNNING")]


def test_sockets_that_cannot_be_bound_are_fatal_at_once():
    w = World(crashing())
    w.fail_spawn["app"] = ("[Errno 98] Address already in use", True)
    start_all(w)
    assert w.state("app") == "FATAL"
    assert w.record("app").reason == "cannot bind its sockets: [Errno 98] Address already in use"


def test_an_operators_start_in_backoff_spawns_now_with_a_fresh_history():
    w = World(crashing())
    start_all(w)
    w.exit("app", code=1)
    w.feed(m.Start(("app",), fresh=True))
    assert w.state("app") == "RUNNING" and RETRY not in w.record("app").deadlines
    assert w.record("app").history.attempt == 0


def test_an_exit_of_a_replaced_process_is_ignored():
    w = World(crashing())
    start_all(w)
    w.feed(m.Exited("app", 99999, w.record("app").last_exit))
    assert w.state("app") == "RUNNING"


# -- stopping -------------------------------------------------------------------------

def test_stop_escalates_to_sigkill_after_stop_timeout():
    w = World(command("app", stop_timeout=5.0, stop_signal=signal.SIGINT))
    start_all(w)
    w.feed(m.Stop(("app",)))
    assert w.state("app") == "STOPPING" and w.signalled() == [(signal.SIGINT, "family")]
    w.advance(4.9)
    assert w.signalled() == [(signal.SIGINT, "family")]
    w.advance(0.1)
    assert w.signalled()[-1] == (signal.SIGKILL, "family")
    assert "app: still running 5 s after the stop signal: killing its process group" in w.lines
    w.killed("app")
    assert w.state("app") == "STOPPED"
    assert w.record("app").reason == "stopped (killed after its stop_timeout of 5 s)"
    assert not w.record("app").deadlines


def test_stop_goes_in_reverse_dependency_order():
    w = World(command("db"), command("web", after=("db",)), command("tool"))
    start_all(w)
    w.feed(m.Stop(("db", "web")))
    assert w.states() == {"db": "RUNNING", "web": "STOPPING", "tool": "RUNNING"}
    w.exit("web", code=0)
    assert w.states() == {"db": "STOPPING", "web": "STOPPED", "tool": "RUNNING"}


def test_stopping_only_the_dependency_does_not_wait_for_dependents():
    w = World(command("db"), command("web", after=("db",)))
    start_all(w)
    w.feed(m.Stop(("db",)))
    assert w.states() == {"db": "STOPPING", "web": "RUNNING"}


def test_leftovers_are_awaited_before_stopped():
    w = World(command("app"))
    start_all(w)
    w.feed(m.Stop(("app",)))
    pid = w.pid("app")
    w.exit("app", code=0, leftovers=True)
    assert w.state("app") == "STOPPING" and LEFTOVERS in w.record("app").deadlines
    w.advance(0.02)
    assert ("app", pid, "leftovers") in w.probes
    w.feed(m.Leftovers("app", pid, alive=True))
    w.advance(0.02)
    w.feed(m.Leftovers("app", pid, alive=False))
    assert w.state("app") == "STOPPED" and KILL not in w.record("app").deadlines


def test_a_start_while_stopping_starts_it_again_once_gone():
    w = World(command("app"))
    start_all(w)
    w.feed(m.Stop(("app",)))
    w.feed(m.Start(("app",), fresh=True))
    assert w.state("app") == "STOPPING"
    w.exit("app", code=0)
    assert w.moves_of("app")[-3:] == [("STOPPING", "STOPPED"), ("STOPPED", "STARTING"),
                                      ("STARTING", "RUNNING")]


def test_a_crash_of_a_service_waiting_to_be_stopped_is_not_restarted():
    w = World(command("db"), command("web", after=("db",)))
    start_all(w)
    w.feed(m.Stop(("db", "web")))
    w.exit("db", code=1)  # while web is still stopping
    assert w.state("db") == "EXITED" and not w.record("db").deadlines


def test_shutdown_during_backoff_and_start_is_prompt_and_ends_done():
    w = World(crashing(), python_tree("slow"))
    start_all(w)
    w.exit("app", code=1)
    w.feed(m.Shutdown())
    assert w.state("app") == "STOPPED" and not w.record("app").deadlines
    assert w.state("slow") == "STOPPING" and w.done is None
    w.advance(60)  # no respawn ever comes
    assert w.spawned_order() == ["app", "slow"]
    w.killed("slow")
    assert w.done == 0 and w.lines[-1] == "all services stopped"
    assert w.closed == [("app", "slow")]


def test_an_exit_during_shutdown_is_final():
    w = World(command("db"), command("web", after=("db",)))
    start_all(w)
    w.feed(m.Shutdown())
    w.exit("db", code=1)  # before its turn to stop
    assert w.state("db") == "EXITED" and w.record("db").reason == "exit 1 during shutdown"
    w.exit("web", code=0)
    assert w.done == 0


def test_no_start_after_shutdown():
    w = World(command("app"))
    w.feed(m.Shutdown())
    assert w.done == 0
    start_all(w)
    assert w.state("app") == "STOPPED" and not w.pids


# -- reload ------------------------------------------------------------------------------

def test_replace_keeps_unchanged_records_and_makes_changed_ones_anew():
    w = World(command("keep"), command("change"), command("gone"))
    start_all(w)
    w.exit("keep", code=1)
    w.advance(1)
    kept = w.record("keep")
    w.feed(m.Stop(("change", "gone")))
    w.exit("change")
    w.exit("gone")
    new = (command("keep"), command("change", stop_timeout=3.0), command("added"))
    w.feed(m.Replace(new, keep=("keep",)))
    assert list(w.sup.records) == ["keep", "change", "added"]
    assert [r.name for r in w.sup.those_in((State.RUNNING,))] == ["keep"]
    assert w.record("keep") is kept and kept.restarts == 1 and kept.state.value == "RUNNING"
    assert w.record("change").spec.stop_timeout == 3.0 and w.state("change") == "STOPPED"
    w.feed(m.Start(("change", "added")))
    assert w.states() == {"keep": "RUNNING", "change": "RUNNING", "added": "RUNNING"}


def test_a_probe_deadline_of_a_removed_record_is_ignored():
    w = World(command("app", ready=("tcp", parse_tcp(5432))))
    start_all(w)
    w.feed(m.Replace((), keep=()))
    w.feed(m.Due("app", "probe"))  # a timer the shell had armed
    assert w.sup.records == {}


def test_a_slow_shutdown_says_who_it_waits_for():
    w = World(command("db", stop_timeout=10.0), command("web", after=("db",), stop_timeout=5.0))
    start_all(w)
    w.feed(m.Shutdown())
    assert "shutting down (a second Ctrl-C kills every worker now)" in w.lines
    w.advance(2.0)
    assert w.lines[-1] == "still stopping: db (after its dependents), web (SIGKILL in 3.0 s)"
    w.exit("web", code=0)
    w.advance(2.0)
    assert w.lines[-1] == "still stopping: db (SIGKILL in 8.0 s)"
    w.exit("db", code=0)
    assert w.done == 0 and not w.sup.deadlines
    w.advance(10.0)
    assert w.lines[-1] == "all services stopped"


# -- moved from the integration suite: decisions only --------------------------------

def test_restart_never_and_on_failure_finish_and_on_failure_restarts_failures():
    w = World(command("never", restart="never"), command("ok", restart="on-failure"),
              command("fails", restart="on-failure", max_restarts=100, backoff_initial=0.01))
    start_all(w)
    w.exit("never", code=1)
    w.exit("ok", code=0)
    for _ in range(3):
        w.exit("fails", code=3)
        w.advance(1)
    assert w.state("never") == "EXITED" and w.record("never").restarts == 0
    assert w.state("ok") == "EXITED" and w.record("ok").restarts == 0
    assert w.record("fails").restarts == 3 and w.state("fails") == "RUNNING"
    assert "never: exited: exit 1; restart = never" in w.lines
    assert "ok: exited: exit 0; restart = on-failure" in w.lines
    assert any(line.startswith("fails: exit 3; restarting in") for line in w.lines)
    w.advance(60)
    assert w.spawned_order().count("never") == 1 and w.spawned_order().count("ok") == 1


def test_an_operators_start_revives_a_fatal_service():
    w = World(command("once", max_restarts=0))
    start_all(w)
    w.exit("once", code=1)
    assert w.state("once") == "FATAL" and w.record("once").restarts == 0
    assert w.lines[-1] == "once: FATAL: exited 1 times in 10 s (exit 1): giving up"
    w.feed(m.Start(("once",), fresh=True))
    assert w.state("once") == "RUNNING"
    w.exit("once", code=1)
    assert w.state("once") == "FATAL" and len(w.pids) == 2


def test_a_start_during_backoff_leaves_nothing_pending():
    # restart = on-failure: the started run exits 0 and must stay EXITED,
    # with no retry left from the backoff it interrupted.
    w = World(command("job", restart="on-failure", backoff_initial=30.0, backoff_max=30.0))
    start_all(w)
    w.exit("job", code=1)
    assert w.state("job") == "BACKOFF"
    w.feed(m.Start(("job",), fresh=True))
    w.advance(0.2)
    w.exit("job", code=0)
    assert w.state("job") == "EXITED" and not w.record("job").deadlines
    w.advance(60)
    assert len(w.pids) == 2
