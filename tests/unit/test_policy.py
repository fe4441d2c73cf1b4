"""The restart policy, driven by a FakeClock: no sleeping."""

import signal

import pytest

from corral.clock import FakeClock
from corral.errors import EXIT_WORKER_BOOT
from corral.spec import ServiceSpec
from corral.core.policy import Exit, Finish, GiveUp, History, Restart, decide



def command(**settings):
    return ServiceSpec(name="svc", command=("/bin/true",), **settings)


def crash_loop(spec, clock, exits, uptime=0.01):
    """Run `exits` crashes, each after `uptime` s of running; return the decisions."""
    history = History()
    decisions = []
    for exit in exits:
        started = clock.now()
        clock.advance(uptime)
        decision, history = decide(spec, history, exit, started, clock.now(), random=lambda: 0.5)
        decisions.append(decision)
        if isinstance(decision, Restart):
            clock.advance(decision.delay)
    return decisions, history


def test_backoff_doubles_from_a_small_first_delay_up_to_the_cap():
    spec = command(backoff_initial=0.05, backoff_factor=2, backoff_max=0.3,
                   max_restarts=100, restart_window=1000)
    decisions, _ = crash_loop(spec, FakeClock(), [Exit(code=1)] * 5)
    assert [d.delay for d in decisions] == pytest.approx([0.05, 0.1, 0.2, 0.3, 0.3])


def test_a_crash_after_a_run_past_the_start_window_restarts_at_once_and_resets_the_count():
    spec = command()  # backoff_reset = 1 s, the start window's floor
    clock = FakeClock()
    history = History(restarts=(clock.now(),) * 5, attempt=4)  # an unstable past
    started = clock.now()
    clock.advance(1.5)
    decision, history = decide(spec, history, Exit(code=1), started, clock.now(),
                               random=lambda: 1.0, ready_at=started)
    assert isinstance(decision, Restart) and decision.delay == 0.0  # no jitter on 0
    assert history == History()
    # up as long, never ready (or ready but up less than backoff_reset): a failed start
    for ready_at, now in ((None, 1.5), (0.0, 0.9)):
        decision, _ = decide(spec, History(), Exit(code=1), 0.0, now, ready_at=ready_at)
        assert decision.delay > 0


def test_default_crash_loop_backs_off_for_about_3_s_then_goes_fatal():
    # systemd: RestartSec=100ms, 5 starts in 10 s; doubling gives a dependency
    # that is down a few seconds some time (docs/config.md).
    clock = FakeClock()
    first = clock.now()
    decisions, _ = crash_loop(command(), clock, [Exit(code=1)] * 6, uptime=0.001)
    assert [d.delay for d in decisions[:5]] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6])
    assert isinstance(decisions[5], GiveUp)  # max_restarts = 5 within 10 s
    assert 3.0 < clock.now() - first < 3.2


def test_jitter_stays_within_its_band():
    spec = command(backoff_initial=1.0, backoff_jitter=0.1)
    low, _ = decide(spec, History(), Exit(code=1), 0, 0.01, random=lambda: 0.0)
    high, _ = decide(spec, History(), Exit(code=1), 0, 0.01, random=lambda: 0.999999)
    assert low.delay == pytest.approx(0.9)
    assert high.delay == pytest.approx(1.1, abs=1e-5)


def test_gives_up_after_max_restarts_within_the_window():
    spec = command(max_restarts=3, restart_window=10)
    decisions, _ = crash_loop(spec, FakeClock(), [Exit(code=1)] * 5)
    assert [type(d) for d in decisions[:4]] == [Restart, Restart, Restart, GiveUp]
    assert "exited 4 times in 10 s" in decisions[3].reason


def test_restarts_spread_wider_than_the_window_never_give_up():
    spec = command(max_restarts=2, restart_window=5, backoff_reset=1000)
    clock = FakeClock()
    history = History()
    for _ in range(10):
        started = clock.now()
        clock.advance(6)  # each run outlives the window
        decision, history = decide(spec, history, Exit(code=1), started, clock.now())
        assert isinstance(decision, Restart)
        clock.advance(decision.delay)


def test_restart_policies():
    ok, failed, killed = Exit(code=0), Exit(code=3), Exit(signal=signal.SIGKILL)
    for exit in (ok, failed, killed):
        decision, _ = decide(command(restart="never"), History(), exit, 0, 1)
        assert isinstance(decision, Finish)
        decision, _ = decide(command(restart="always"), History(), exit, 0, 1)
        assert isinstance(decision, Restart)
    assert isinstance(decide(command(restart="on-failure"), History(), ok, 0, 1)[0], Finish)
    assert isinstance(decide(command(restart="on-failure"), History(), failed, 0, 1)[0], Restart)
    assert isinstance(decide(command(restart="on-failure"), History(), killed, 0, 1)[0], Restart)


def test_exit_codes_say_which_exits_on_failure_leaves_alone():
    spec = command(restart="on-failure", exit_codes=(0, 2))
    for code in (0, 2):
        decision, _ = decide(spec, History(), Exit(code=code), 0, 1)
        assert isinstance(decision, Finish) and f"exit {code}" in decision.reason
    for exit in (Exit(code=1), Exit(code=3), Exit(signal=signal.SIGTERM), Exit(error="ENOENT")):
        assert isinstance(decide(spec, History(), exit, 0, 1)[0], Restart), exit
    # 0 is a failure when exit_codes leaves it out (supervisord's exitcodes=2).
    assert isinstance(decide(command(restart="on-failure", exit_codes=(2,)), History(),
                             Exit(code=0), 0, 1)[0], Restart)
    # An expected code before ready is still a failed start.
    assert isinstance(decide(spec, History(), Exit(code=2), 0, 1, failed=True)[0], Restart)
    # restart = always restarts whatever exit_codes says.
    assert isinstance(decide(command(exit_codes=(0, 2)), History(), Exit(code=2), 0, 1)[0],
                      Restart)


def test_a_python_worker_that_cannot_boot_goes_fatal_at_once():
    spec = ServiceSpec(name="py", factory="m:f")
    decision, _ = decide(spec, History(), Exit(code=EXIT_WORKER_BOOT), 0, 0.1)
    assert isinstance(decision, GiveUp)
    assert "could not load or start" in decision.reason
    # the same code from a command is just a failure
    assert isinstance(decide(command(), History(), Exit(code=EXIT_WORKER_BOOT), 0, 0.1)[0], Restart)


def test_exit_descriptions():
    assert str(Exit(code=3)) == "exit 3"
    assert str(Exit(signal=signal.SIGKILL)) == "SIGKILL"
    assert str(Exit(error="no such file")) == "spawn failed: no such file"
    assert Exit.from_returncode(-9) == Exit(signal=9)
    assert not Exit(code=0).failed and Exit(code=1).failed and Exit(signal=15).failed
