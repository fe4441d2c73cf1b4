"""Helpers shared by the unit and the integration tests: waits with deadlines,
the test's own view of /proc, a free port, running coroutines, and a service
that journals what it is asked to do.

Helpers for a real master only are in tests/integration/harness.py; shared
fixtures are in the conftest.py files.
"""

import asyncio
import os
import socket
import time

from corral.service import Service

DEADLINE = 10.0


# -- waiting ------------------------------------------------------------------------


class WaitTimeout(AssertionError):
    pass


def wait_until(check, timeout=DEADLINE, interval=0.01, message="condition", dump=None):
    """Poll check() until it returns a truthy value; fail after timeout."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            extra = f"\n--- master log ---\n{dump()}" if dump else ""
            raise WaitTimeout(f"timed out after {timeout} s waiting for {message}{extra}")
        time.sleep(interval)


# -- /proc, from the test's side ----------------------------------------------------


def stat_of(pid):
    """(state, ppid, pgrp, session) from /proc/PID/stat, or None once pid is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3])


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    stat = stat_of(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def proc_status(pid):
    """/proc/PID/status as {field: [values]}."""
    with open(f"/proc/{pid}/status") as f:
        return {key: rest.split() for key, _, rest in (line.partition(":") for line in f)}


# -- sockets ------------------------------------------------------------------------


def free_port(kind=socket.SOCK_STREAM):
    """A port on 127.0.0.1 that nothing listens on (a moment ago)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- coroutines ---------------------------------------------------------------------


def run(coro):
    """Run coro on a fresh loop (asyncio.run); fail after 20 s."""
    return asyncio.run(asyncio.wait_for(coro, 20))


def run_without_threads(coro):
    """Run coro on a fresh loop; fail if anything used the default executor."""
    loop = asyncio.new_event_loop()
    try:
        result = loop.run_until_complete(coro)
        assert loop._default_executor is None, "a probe used a thread pool"
        return result
    finally:
        loop.close()


async def eventually(predicate, what="condition", timeout=5.0):
    """Yield to the running loop until predicate() holds; fail after timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


# -- a service that journals each step ----------------------------------------------


class Boom(Exception):
    pass


class Recorder(Service):
    """A service that appends each step to a shared journal. Modes for start and stop:

    sync, raise: plain method (raise: journals, then raises Boom)
    future: returns an asyncio future that the loop completes two hops later
    coro, coro-raise: a coroutine that yields to the loop between its begin
        and its end (coro-raise: journals "-fail", then raises Boom)
    hang: a coroutine that waits forever and journals its cancellation
    gate: a coroutine that waits until a byte can be read from `gate_fd`
    """

    gate_fd = None

    def __init__(self, name, journal, start="sync", stop="sync"):
        super().__init__()
        self.setName(name)
        self.journal = journal
        self.modes = {"start": start, "stop": stop}

    def startService(self):
        super().startService()
        return self._act("start")

    def stopService(self):
        super().stopService()
        return self._act("stop")

    def _act(self, what):
        mode = self.modes[what]
        if mode in ("sync", "raise"):
            self.journal.append(f"{what} {self.name}")
            if mode == "raise":
                raise Boom(f"{what} {self.name} failed")
            return None
        if mode == "future":
            self.journal.append(f"{what}-begin {self.name}")
            loop = asyncio.get_running_loop()
            future = loop.create_future()

            def finish():
                self.journal.append(f"{what}-end {self.name}")
                future.set_result(None)

            # Two hops through the loop, so that anything not waiting for
            # us would run in between.
            loop.call_soon(loop.call_soon, finish)
            return future
        return self._coro(what, mode)

    async def _coro(self, what, mode):
        self.journal.append(f"{what}-begin {self.name}")
        try:
            if mode == "hang":
                await asyncio.get_running_loop().create_future()
            elif mode == "gate":
                await _readable(self.gate_fd)
                os.read(self.gate_fd, 1)
            else:
                for _ in range(3):
                    await asyncio.sleep(0)  # yield to the loop; not a timing wait
        except asyncio.CancelledError:
            self.journal.append(f"{what}-cancelled {self.name}")
            raise
        if mode == "coro-raise":
            self.journal.append(f"{what}-fail {self.name}")
            raise Boom(f"{what} {self.name} failed")
        self.journal.append(f"{what}-end {self.name}")


async def _readable(fd):
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)


# -- LogHub -------------------------------------------------------------------------

WALL = 1_800_000_000.25     # a fixed wall clock keeps the log prefix predictable
