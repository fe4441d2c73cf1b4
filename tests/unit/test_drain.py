"""Stream servers drain on stop: stopService waits for open connections, up to
`drain` seconds. Real sockets on 127.0.0.1 and a real loop; every wait has a
deadline."""

import asyncio

import pytest

from corral.services.internet import TCPServer, UNIXServer
from tests.helpers import run

pytestmark = pytest.mark.timeout(30)

DEADLINE = 5.0


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def connect(server):
    host, port = server.address[:2]
    return await asyncio.wait_for(asyncio.open_connection(host, port), DEADLINE)


async def echo(reader, writer, line):
    writer.write(line)
    return await asyncio.wait_for(reader.readline(), DEADLINE)


def test_stop_waits_for_open_connections_which_are_still_served():
    async def go():
        server = TCPServer(0, Echo, interface="127.0.0.1", drain=DEADLINE)
        await server.startService()
        reader, writer = await connect(server)
        assert await echo(reader, writer, b"one\n") == b"one\n"
        stopping = asyncio.ensure_future(server.stopService())
        # No new connection is accepted while it drains...
        await asyncio.wait_for(_new_connections_wait_in_the_backlog(server), DEADLINE)
        # ...but the open one is still served, and the stop waits for it.
        assert await echo(reader, writer, b"two\n") == b"two\n"
        assert not stopping.done()
        writer.close()
        await asyncio.wait_for(stopping, DEADLINE)  # it ends once the client has gone
        server.closeSocket()

    run(go())


async def _new_connections_wait_in_the_backlog(server):
    # The held socket stays bound (clients queue in its backlog for the next
    # worker): a connect succeeds but nothing answers. No echo within 0.2 s is
    # the check (an absence: there is no event to wait for).
    reader, writer = await connect(server)
    writer.write(b"queued\n")
    done, _ = await asyncio.wait({asyncio.ensure_future(reader.readline())}, timeout=0.2)
    assert not done, "a stopping server accepted a new connection"
    writer.close()


def test_stop_gives_up_after_drain_seconds():
    async def go():
        server = TCPServer(0, Echo, interface="127.0.0.1", drain=0.3)
        await server.startService()
        reader, writer = await connect(server)
        assert await echo(reader, writer, b"x\n") == b"x\n"
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.wait_for(server.stopService(), DEADLINE)
        assert loop.time() - t0 >= 0.3  # it waited for the connection that stayed open
        writer.close()
        server.closeSocket()

    run(go())


def test_drain_zero_stops_at_once_as_twisted_does():
    async def go():
        server = TCPServer(0, Echo, interface="127.0.0.1", drain=0)
        await server.startService()
        reader, writer = await connect(server)
        assert await echo(reader, writer, b"x\n") == b"x\n"
        stopping = asyncio.ensure_future(server.stopService())
        await asyncio.wait_for(stopping, 0.5)  # far below any drain
        assert await echo(reader, writer, b"still\n") == b"still\n"  # not cut by the stop
        writer.close()
        server.closeSocket()

    run(go())


def test_unix_server_drains_too(tmp_path):
    async def go():
        path = str(tmp_path / "s")
        server = UNIXServer(path, Echo, drain=DEADLINE)
        await server.startService()
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), DEADLINE)
        assert await echo(reader, writer, b"u\n") == b"u\n"
        stopping = asyncio.ensure_future(server.stopService())
        assert await echo(reader, writer, b"v\n") == b"v\n"  # (the loop turned meanwhile)
        assert not stopping.done()
        writer.close()
        await asyncio.wait_for(stopping, DEADLINE)
        server.closeSocket()

    run(go())


@pytest.mark.parametrize("drain", [-1, "5", True, None])
def test_drain_must_be_seconds(drain):
    with pytest.raises(ValueError, match="drain must be a number of seconds >= 0"):
        TCPServer(0, Echo, drain=drain)


def test_no_connections_no_wait():
    async def go():
        server = TCPServer(0, Echo, interface="127.0.0.1", drain=30)
        await server.startService()
        await asyncio.wait_for(server.stopService(), 1.0)
        server.closeSocket()

    run(go())

