"""TimerService: call a function now and every `interval` seconds while started.

As Twisted's TimerService (a LoopingCall with now=True): the calls keep to a
grid of start + n * interval; a call that overruns skips the ticks it
missed instead of piling them up. The callable may be a coroutine function
or return an awaitable: it is awaited, so two calls never overlap. Unlike
Twisted's, a call that raises does not stop the timer: the error is logged
with its traceback and the next tick comes as planned. stopService cancels
the timer, and the call in progress if it is awaiting something.
"""

import asyncio
import inspect
import logging

from corral.service import Service

log = logging.getLogger("corral.services.timer")

__all__ = ["TimerService"]


class TimerService(Service):
    """Call callable(*args, **kwargs) at start and every `interval` seconds."""

    def __init__(self, interval, callable, *args, **kwargs):
        super().__init__()
        if not interval > 0:
            raise ValueError(f"TimerService interval must be > 0 seconds, not {interval!r}")
        self.step = interval  # Twisted's name
        self.call = (callable, args, kwargs)
        self._task = None

    @property
    def interval(self):
        return self.step

    def __repr__(self):
        label = f" {self.name!r}" if self.name is not None else ""
        return f"<TimerService{label} every {self.step}s: {self.call[0]!r}>"

    def startService(self):
        super().startService()
        return self._begin()

    async def _begin(self):
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._tick(), name=repr(self))

    def stopService(self):
        super().stopService()
        return self._end()

    async def _end(self):
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})

    async def _tick(self):
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while True:
            await self._call_once()
            now = loop.time()
            # The next tick on the grid that is still ahead of us.
            n = max(n + 1, int((now - start) / self.step) + 1)
            await asyncio.sleep(start + n * self.step - now)

    async def _call_once(self):
        function, args, kwargs = self.call
        try:
            result = function(*args, **kwargs)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%r: the call failed; the timer goes on", self)
