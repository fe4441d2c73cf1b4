"""corral.services.timer.TimerService on a real loop, 0.01 s intervals, deadline waits."""

import asyncio
import logging

import pytest

from corral.service import MultiService, Service
from corral.services.timer import TimerService
from tests.helpers import eventually, run

pytestmark = pytest.mark.timeout(30)


def test_calls_at_start_then_every_interval_with_arguments():
    calls = []

    async def go():
        timer = TimerService(0.01, lambda *a, **k: calls.append((a, k)), 1, 2, key="v")
        assert timer.interval == timer.step == 0.01
        await timer.startService()
        assert timer.running
        await eventually(lambda: len(calls) >= 5, "five calls")
        await timer.stopService()
        assert not timer.running
        assert all(c == ((1, 2), {"key": "v"}) for c in calls)

    run(go())


def test_first_call_comes_at_start_not_after_an_interval():
    calls = []

    async def go():
        timer = TimerService(3600, calls.append, "now")
        await timer.startService()
        await eventually(lambda: calls == ["now"], "the call at start")
        await timer.stopService()

    run(go())


def test_async_callable_is_awaited_and_calls_never_overlap():
    state = {"active": 0, "most": 0, "done": 0}

    async def slow():
        state["active"] += 1
        state["most"] = max(state["most"], state["active"])
        await asyncio.sleep(0.03)  # three intervals: the timer must not pile up
        state["active"] -= 1
        state["done"] += 1

    async def go():
        timer = TimerService(0.01, slow)
        await timer.startService()
        await eventually(lambda: state["done"] >= 4, "four finished calls")
        await timer.stopService()

    run(go())
    assert state["most"] == 1


def test_a_failing_call_is_logged_and_the_timer_goes_on(caplog):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) % 2:
            raise ValueError(f"boom {len(calls)}")

    async def go():
        timer = TimerService(0.01, flaky)
        timer.setName("flaky")
        await timer.startService()
        await eventually(lambda: len(calls) >= 6, "six calls despite failures")
        await timer.stopService()

    with caplog.at_level(logging.ERROR, logger="corral.services.timer"):
        run(go())
    failures = [r for r in caplog.records if r.name == "corral.services.timer"]
    assert len(failures) >= 3
    assert all(r.exc_info and r.exc_info[0] is ValueError for r in failures)
    assert "'flaky'" in failures[0].getMessage()


def test_a_failing_async_call_is_logged_too(caplog):
    calls = []

    async def broken():
        calls.append(1)
        raise RuntimeError("async boom")

    async def go():
        timer = TimerService(0.01, broken)
        await timer.startService()
        await eventually(lambda: len(calls) >= 3, "three calls")
        await timer.stopService()

    with caplog.at_level(logging.ERROR, logger="corral.services.timer"):
        run(go())
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


def test_stop_cancels_the_call_in_progress_and_the_timer():
    events = []

    async def hang():
        events.append("called")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def go():
        timer = TimerService(0.01, hang)
        await timer.startService()
        await eventually(lambda: events == ["called"], "the first call")
        await timer.stopService()
        assert events == ["called", "cancelled"]
        # Not a synchronisation: several intervals pass, and nothing more is called.
        await asyncio.sleep(0.05)
        assert events == ["called", "cancelled"]

    run(go())


def test_stop_between_calls_and_restart():
    calls = []

    async def go():
        timer = TimerService(0.01, calls.append, "tick")
        await timer.startService()
        await eventually(lambda: len(calls) >= 2, "two calls")
        await timer.stopService()
        stopped_at = len(calls)
        await asyncio.sleep(0.05)  # not a synchronisation: check nothing happens
        assert len(calls) == stopped_at
        await timer.startService()
        await eventually(lambda: len(calls) >= stopped_at + 2, "calls after the restart")
        await timer.stopService()

    run(go())


def test_in_a_tree_with_a_plain_sibling():
    calls = []

    async def go():
        tree = MultiService()
        plain = Service()
        plain.setServiceParent(tree)
        timer = TimerService(0.01, calls.append, "t")
        timer.setServiceParent(tree)
        await tree.startService()
        assert plain.running and timer.running
        await eventually(lambda: len(calls) >= 3, "three calls")
        await tree.stopService()
        assert not plain.running and not timer.running

    run(go())


def test_interval_must_be_positive():
    with pytest.raises(ValueError):
        TimerService(0, print)
