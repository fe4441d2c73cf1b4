"""The master's signal handlers under a burst of signals, with real signals
sent to this process and no other: asyncio alone loses a SIGTERM once ~280
others have filled its wakeup socket while the loop was busy."""

import asyncio
import os
import signal

import pytest

from corral.frontends import signals


class Ops:
    """The verbs of frontends/signals.py, counted."""

    def __init__(self):
        self.called = []

    def shutdown(self):
        self.called.append("shutdown")

    def kill_all(self):
        self.called.append("kill_all")

    def reopen(self):
        self.called.append("reopen")


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def run_until(loop, check, timeout=5.0):
    async def wait():
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.005)
    loop.run_until_complete(wait())


def burst(sig, count):
    """What the master sees while its loop is busy: the loop is not running."""
    for _ in range(count):
        os.kill(os.getpid(), sig)


@pytest.mark.timeout(20)
def test_a_sigterm_after_a_burst_that_filled_the_wakeup_socket_is_handled(loop, capfd):
    ops = Ops()
    taken = signals.install(loop, ops)
    try:
        burst(signal.SIGUSR1, 2000)  # each one reopens; the socket is full long before
        os.kill(os.getpid(), signal.SIGTERM)
        run_until(loop, lambda: "shutdown" in ops.called)
        assert ops.called.count("reopen") == 2000
    finally:
        signals.uninstall(loop, taken)
    # asyncio's "Exception ignored when trying to write to the signal wakeup
    # fd", once per dropped byte, is not printed: a full socket is harmless.
    assert "wakeup fd" not in capfd.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.timeout(20)
def test_two_interrupts_still_mean_kill_now(loop):
    ops = Ops()
    taken = signals.install(loop, ops)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        run_until(loop, lambda: ops.called == ["shutdown"])
        os.kill(os.getpid(), signal.SIGINT)
        run_until(loop, lambda: "kill_all" in ops.called)
    finally:
        signals.uninstall(loop, taken)

