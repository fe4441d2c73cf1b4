"""Clients as services: connect, and reconnect with backoff when it fails.

    TCPClient(host, port, protocol_factory, ...)
    SSLClient(host, port, protocol_factory, ssl_context, ...)
    UNIXClient(path, protocol_factory, ...)

Like Twisted's ClientService (twisted.application.internet). They are
re-exported by corral.services.internet, next to the servers.
"""

import asyncio
import logging
import random

from corral.service import Service

log = logging.getLogger("corral.services.internet")


class ClientStopped(ConnectionError):
    """whenConnected() gave up: the client service was stopped."""


class _ReconnectingClient(Service):
    """Connect; reconnect with backoff whenever the connect fails or the connection is lost.

    Like Twisted's ClientService. The delay before attempt n after n-1
    failures (a lost connection counts as one) is
    min(initial_delay * factor ** (n - 1), max_delay), stretched by a random
    fraction of up to `jitter` of itself so that many clients spread out.
    """

    transport = None  # the current connection, or None
    protocol = None  # its protocol, or None

    def __init__(self, protocol_factory, *, initial_delay=1.0, factor=1.5, max_delay=60.0,
                 jitter=0.1, connect_timeout=30.0):
        super().__init__()
        if not callable(protocol_factory):
            raise TypeError(f"protocol_factory must be callable, not {protocol_factory!r}")
        self.protocol_factory = protocol_factory
        self.initial_delay = initial_delay
        self.factor = factor
        self.max_delay = max_delay
        self.jitter = jitter
        self.connect_timeout = connect_timeout
        self.failedAttempts = 0  # since the last successful connect
        self._task = None
        self._lost = None  # future of the current attempt: set when its connection is lost
        self._waiters = []  # [future, failures left or None]

    def delay(self, attempt):
        """Seconds to wait before `attempt` (1 = after one failure or one lost connection)."""
        try:
            base = min(self.initial_delay * self.factor ** max(attempt - 1, 0), self.max_delay)
        except OverflowError:
            base = self.max_delay
        return base * (1 + self.jitter * random.random())

    async def whenConnected(self, failAfterFailures=None):
        """The protocol of the current connection, once there is one.

        failAfterFailures=n: raise the connect error after n more failed
        attempts instead. Raises ClientStopped if the service stops first.
        """
        if self.protocol is not None:
            return self.protocol
        waiter = [asyncio.get_running_loop().create_future(), failAfterFailures]
        self._waiters.append(waiter)
        try:
            return await waiter[0]
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def startService(self):
        super().startService()
        return self._begin()

    async def _begin(self):
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self!r}")

    def _factory(self):
        protocol = self.protocol_factory()
        lost, original = self._lost, protocol.connection_lost

        def connection_lost(exc):
            try:
                original(exc)
            finally:
                if not lost.done():
                    lost.set_result(exc)

        protocol.connection_lost = connection_lost
        return protocol

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            self._lost = lost = loop.create_future()
            try:
                transport, protocol = await asyncio.wait_for(
                    self._connect(loop, self._factory), self.connect_timeout)
            except Exception as exc:  # noqa: BLE001 - any failed connect is retried
                self.failedAttempts += 1
                self._settle(exc=exc)
                wait = self.delay(self.failedAttempts)
                log.warning("%r: connect failed (%s); attempt %d in %.2fs",
                            self, str(exc) or type(exc).__name__, self.failedAttempts + 1, wait)
                await asyncio.sleep(wait)
                continue
            self.failedAttempts = 0
            if not lost.done():
                self.transport, self.protocol = transport, protocol
                log.info("%r: connected", self)
                self._settle(protocol=protocol)
                await asyncio.shield(lost)  # a cancel must not mark it lost: _end closes
                self.transport = self.protocol = None
            self.failedAttempts = 1
            wait = self.delay(1)
            log.info("%r: connection lost; reconnecting in %.2fs", self, wait)
            await asyncio.sleep(wait)

    def _settle(self, protocol=None, exc=None):
        for waiter in list(self._waiters):
            future, left = waiter
            if future.done():
                continue
            if protocol is not None:
                future.set_result(protocol)
            elif exc is not None and left is not None:
                waiter[1] = left - 1
                if waiter[1] <= 0:
                    future.set_exception(exc)

    def stopService(self):
        super().stopService()
        return self._end()

    async def _end(self):
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        transport, lost = self.transport, self._lost
        if transport is not None and lost is not None and not lost.done():
            transport.close()
            done, _ = await asyncio.wait({lost}, timeout=5.0)
            if not done:
                transport.abort()
        self.transport = self.protocol = None
        for future, _ in list(self._waiters):
            if not future.done():
                future.set_exception(ClientStopped(f"{self!r} was stopped"))

    async def _connect(self, loop, factory):
        raise NotImplementedError


class TCPClient(_ReconnectingClient):
    """Keep a TCP connection to host:port (ssl: an ssl.SSLContext for TLS)."""

    def __init__(self, host, port, protocol_factory, *, ssl=None, **backoff):
        super().__init__(protocol_factory, **backoff)
        self.host, self.port, self.ssl = host, port, ssl

    def __repr__(self):
        label = f" {self.name!r}" if self.name is not None else ""
        return f"<{type(self).__name__}{label} {self.host}:{self.port}>"

    def _connect(self, loop, factory):
        return loop.create_connection(factory, self.host, self.port, ssl=self.ssl)


class SSLClient(TCPClient):
    """A TCPClient that speaks TLS with `ssl_context`."""

    def __init__(self, host, port, protocol_factory, ssl_context, **backoff):
        super().__init__(host, port, protocol_factory, ssl=ssl_context, **backoff)


class UNIXClient(_ReconnectingClient):
    """Keep a connection to the UNIX stream socket `path`."""

    def __init__(self, path, protocol_factory, **backoff):
        super().__init__(protocol_factory, **backoff)
        self.path = path

    def __repr__(self):
        label = f" {self.name!r}" if self.name is not None else ""
        return f"<{type(self).__name__}{label} {self.path!r}>"

    def _connect(self, loop, factory):
        return loop.create_unix_connection(factory, self.path)
