"""Monotonic time for every duration; wall time only for stamps and display.

The pure parts (policy, records) take `now` from a Clock so that their tests
can advance a FakeClock instead of sleeping.
"""

import time


class Clock:
    """The real monotonic clock."""

    def now(self):
        return time.monotonic()


class FakeClock(Clock):
    """A clock that moves only when told to."""

    def __init__(self, start=1000.0):
        self._now = float(start)

    def now(self):
        return self._now

    def advance(self, seconds):
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._now += seconds
