"""Readiness, the watchdog, health and memory, through the decision step."""

import signal

from corral.core import messages as m
from corral.core.record import HEALTH, MEMORY, READY_BY, WATCHDOG
from corral.healthspec import parse_health
from corral.probes import parse_http, parse_tcp
from tests.replay.harness import World, command, python_tree


def started(*specs):
    w = World(*specs)
    w.feed(m.Start(tuple(w.sup.records), fresh=True))
    return w


# -- readiness --------------------------------------------------------------------

def test_start_seconds_0_is_running_at_spawn_and_says_nothing_more():
    w = started(command("app"))  # the harness's commands: start_seconds = 0
    assert w.moves_of("app") == [("STOPPED", "STARTING"), ("STARTING", "RUNNING")]
    assert w.lines == ["app: spawned, pid 100"]


UP_1S = ("seconds", 1.0)  # a command's default: start_seconds = 1 (settings.py, kinds.py)


def test_a_command_is_started_once_it_stayed_up_and_only_then_its_dependents_start():
    w = started(command("db", ready=UP_1S), command("web", after=("db",), ready=UP_1S))
    assert w.states() == {"db": "STARTING", "web": "WAITING"}
    assert w.record("db").reason == "spawned, pid 100; waiting for 1 s up"
    w.advance(0.99)
    assert w.states() == {"db": "STARTING", "web": "WAITING"}  # web not spawned yet
    w.advance(0.01)
    assert w.states() == {"db": "RUNNING", "web": "STARTING"}
    assert "db: ready (up 1 s)" in w.lines and w.spawned_order() == ["db", "web"]
    w.advance(1.0)
    assert w.states() == {"db": "RUNNING", "web": "RUNNING"}


def test_a_command_that_dies_within_start_seconds_never_counts_as_started():
    """Its dependents never start, each exit says why in words, and the
    policy gives up as for any crash loop: FATAL with the words in its reason."""
    w = started(command("db", ready=UP_1S, max_restarts=2, backoff_initial=0.005,
                        backoff_factor=5),  # the backoff this history was written for
                command("web", after=("db",), ready=UP_1S))
    for attempt in range(3):
        w.advance(0.25)
        w.exit("db", code=1)
        w.advance(0.2)  # past the backoff (5, 25 ms): spawned again, unless FATAL
    assert w.state("db") == "FATAL"
    assert w.record("db").reason == ("exited 3 times in 10 s (exit 1 after 0.43 s, within "
                                     "start_seconds = 1: a failed start): giving up")
    assert "db: exit 1 after 0.25 s, within start_seconds = 1: a failed start; " \
        "restarting in 0.01 s" in w.lines
    assert w.state("web") == "STOPPED" and "web" not in w.spawned_order()
    assert w.record("web").reason == "not started: db is FATAL"
    # Exit 0 in the window is a failed start too, even with restart = on-failure.
    w = started(command("job", ready=UP_1S, restart="on-failure", backoff_initial=1.0))
    w.advance(0.2)
    w.exit("job", code=0)
    assert w.state("job") == "BACKOFF"
    assert str(w.record("job").last_exit) == ("exit 0 after 0.20 s, within start_seconds = 1: "
                                              "a failed start")


def test_notify_waits_for_ready_and_keeps_status_text():
    w = started(command("app", ready=("notify",)))
    assert w.state("app") == "STARTING"
    assert w.record("app").reason == "spawned, pid 100; waiting for READY=1"
    w.notify("app", "STATUS=warming up")
    assert w.record("app").status_text == "warming up"
    w.notify("app", "READY=1")
    assert w.state("app") == "RUNNING" and w.lines[-1] == "app: ready (READY=1)"


def test_a_start_timeout_kills_and_the_policy_counts_a_failed_start():
    w = started(python_tree("app", start_timeout=3.0, backoff_initial=1.0))
    w.advance(2.9)
    assert w.signalled() == []
    w.advance(0.1)
    assert w.signalled() == [(signal.SIGKILL, "family")]
    assert "app: not ready 3 s after its spawn (start_timeout; waiting for startService): " \
        "killing" in w.lines
    w.killed("app")
    assert w.state("app") == "BACKOFF"
    assert str(w.record("app").last_exit) == ("not ready within 3 s (start_timeout): "
                                              "waiting for startService")  # not "SIGKILL"
    assert w.record("app").reason == ("not ready within 3 s (start_timeout): "  # the move says why
                                      "waiting for startService; restarting in 1.00 s")


def test_ready_seconds_and_an_early_exit_is_a_failed_start():
    w = started(command("app", ready=("seconds", 1.0), backoff_initial=1.0))
    w.advance(0.5)
    w.exit("app", code=0)  # exit 0 before ready is a failure still
    assert w.state("app") == "BACKOFF"
    assert w.lines[-1] == ("app: exit 0 after 0.50 s, within start_seconds = 1: a failed start; "
                           "restarting in 1.00 s")
    w.advance(1.0)  # respawned
    w.advance(1.0)
    assert w.state("app") == "RUNNING" and w.lines[-1] == "app: ready (up 1 s)"


def test_a_tcp_check_is_probed_until_it_answers_then_the_timeout_is_gone():
    w = started(command("app", ready=("tcp", parse_tcp(5432)), start_timeout=10.0))
    w.advance(0)
    w.answer("app", "ready", False, "connection refused")
    assert w.probes == []
    w.advance(0.05)
    w.answer("app", "ready", True, "connected")
    assert w.state("app") == "RUNNING"
    assert w.lines[-1] == "app: ready (tcp 127.0.0.1:5432 answers)"
    assert READY_BY not in w.record("app").deadlines


def test_a_start_timeout_names_the_last_probe_failure():
    w = started(command("app", ready=("http", parse_http("http://127.0.0.1:8000/")),
                        start_timeout=1.0))
    w.advance(0)
    w.answer("app", "ready", False, "connection refused")
    w.advance(1.0)
    assert w.record("app").killed == ("not ready within 1 s (start_timeout): "
                                      "waiting for http://127.0.0.1:8000/: connection refused")


def test_a_python_worker_with_a_check_needs_both():
    w = started(python_tree("app", ready=("tcp", parse_tcp(5432))))
    w.advance(0.5)
    assert w.probes == []  # startService first
    w.notify("app", "READY=1")
    w.advance(0)
    w.answer("app", "ready", True, "connected")
    assert w.state("app") == "RUNNING"


# -- the watchdog ------------------------------------------------------------------

def test_heartbeats_keep_it_and_silence_kills_it():
    w = started(command("app", watchdog=2.0, backoff_initial=1.0))
    assert w.state("app") == "RUNNING" and WATCHDOG in w.record("app").deadlines
    for _ in range(5):
        w.advance(1.5)
        w.notify("app", "WATCHDOG=1")
    assert w.signalled() == []
    w.advance(2.0)
    assert w.signalled() == [(signal.SIGKILL, "family")]
    assert "app: no watchdog heartbeat for 2.0 s: killing (watchdog = 2)" in w.lines
    w.killed("app")
    assert w.state("app") == "BACKOFF"  # after a good run: again at once
    assert w.lines[-1] == ("app: killed by the watchdog: no heartbeat for 2.0 s "
                           "after 9.5 s up; restarting at once")


def test_stopping_1_ends_the_watchdog_and_trigger_fires_it():
    w = started(command("a", watchdog=1.0), command("b", watchdog=1.0))
    w.notify("a", "STOPPING=1")
    w.advance(5)
    assert w.signalled("a") == []
    assert "a: says it is stopping (STOPPING=1)" in w.lines
    w.signals.clear()
    w2 = started(command("b", watchdog=100.0))
    w2.notify("b", "WATCHDOG=trigger")
    assert w2.signalled("b") == [(signal.SIGKILL, "family")]


# -- health ----------------------------------------------------------------------------

def healthy(**settings):
    check = parse_health({"http": "http://127.0.0.1:8000/", "interval": 1, "failures": 2})
    return command("web", health=check, backoff_initial=1.0, **settings)


def test_health_failures_in_a_row_stop_it_as_failing_then_the_policy_restarts():
    w = started(healthy())
    w.advance(1)
    w.answer("web", "health", False, "503")
    assert w.record("web").health_note == "health: 1 failure (503)"
    assert w.lines[-1] == "web: health check failed (1/2): http http://127.0.0.1:8000/: 503"
    w.advance(1)
    w.answer("web", "health", False, "503")
    why = "health check failed 2 times in a row (http http://127.0.0.1:8000/: 503)"
    assert w.state("web") == "FAILING" and w.record("web").reason == why
    assert w.lines[-2] == f"web: {why}: stopping it as failed"
    assert w.signalled() == [(signal.SIGTERM, "family")]
    assert HEALTH not in w.record("web").deadlines and w.record("web").health_note is None
    w.exit("web", code=0)  # stopped gracefully: a failure all the same
    assert w.state("web") == "BACKOFF"
    w.advance(1)
    assert w.state("web") == "RUNNING" and w.pid("web") == 101


def test_a_passing_probe_resets_the_count_and_probes_go_start_to_start():
    w = started(healthy())
    w.advance(1)
    probe_at = w.clock.now()
    w.advance(0.3)  # the probe takes 0.3 s
    w.answer("web", "health", False, "timed out")
    assert w.record("web").deadlines[HEALTH] == probe_at + 1
    w.advance(0.7)
    w.answer("web", "health", True, "200")
    assert w.record("web").health_failures == 0 and w.lines[-1] == "web: health check passed again"


def test_an_operators_stop_while_failing_ends_stopped():
    w = started(healthy())
    for _ in range(2):
        w.advance(1)
        w.answer("web", "health", False, "503")
    w.feed(m.Stop(("web",)))
    w.exit("web", code=0)
    assert w.state("web") == "STOPPED"


def test_a_health_answer_for_an_old_process_is_ignored():
    w = started(healthy())
    w.advance(1)
    w.feed(m.Probed("web", 12345, "health", False, "503"))
    assert w.record("web").health_failures == 0


# -- memory ---------------------------------------------------------------------------

def test_memory_is_sampled_only_while_a_running_instance_has_a_limit():
    w = started(command("plain"))
    assert MEMORY not in w.sup.deadlines
    w = started(command("big", max_memory=1024, backoff_initial=1.0), command("plain"))
    w.advance(1.0)
    assert w.memory == [("big",)]
    w.feed(m.MemorySampled((("big", 512),)))
    assert w.state("big") == "RUNNING"
    w.advance(1.0)
    w.feed(m.MemorySampled((("big", 4096),)))
    assert w.state("big") == "FAILING"
    assert w.record("big").reason == "rss 4K over max_memory 1K"
    w.advance(1.0)  # nothing RUNNING has a limit now: no pass, no timer
    assert len(w.memory) == 2 and MEMORY not in w.sup.deadlines


# -- moved from the integration suite: decisions only --------------------------------

def test_health_failures_go_through_the_restart_policy_to_fatal():
    check = parse_health({"tcp": 8000, "interval": 0.05, "failures": 1})
    w = started(command("deaf", health=check, max_restarts=2, restart_window=60.0,
                        backoff_initial=0.05, backoff_factor=1.0))
    for _ in range(3):
        w.advance(0.06)  # the first probe, 0.05 s after RUNNING
        w.answer("deaf", "health", False, "connection refused")
        assert w.state("deaf") == "FAILING"
        w.exit("deaf", sig=signal.SIGTERM)
        w.advance(0.06)  # the backoff
    assert w.state("deaf") == "FATAL" and "exited 3 times in 60 s" in w.record("deaf").reason
    assert w.lines.count("deaf: SIGTERM; restarting in 0.05 s") == 2  # the backoff, as for a crash
    assert len(w.pids) == 3 and w.record("deaf").restarts == 2


def test_a_health_failure_with_restart_never_stays_down():
    check = parse_health({"tcp": 8000, "interval": 0.05, "failures": 2})
    w = started(command("once", health=check, restart="never"))
    for _ in range(2):
        w.advance(0.06)
        w.answer("once", "health", False, "connection refused")
    w.exit("once", sig=signal.SIGTERM)
    assert w.state("once") == "EXITED" and w.record("once").reason == "SIGTERM; restart = never"
    assert not w.record("once").deadlines
    w.advance(60)
    assert len(w.pids) == 1
