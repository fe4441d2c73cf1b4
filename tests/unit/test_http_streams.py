"""The event streams' bounds, in-process with a stand-in for Operations: a
reader that stops reading costs at most STREAM_BUFFER, the items it missed
are counted (subscription.drop) and told once it reads again, and one that
never reads again is cut with a line in the log."""

import asyncio
import socket

from corral.frontends import httpstream
from corral.frontends.http import HttpServer
from tests.helpers import run


class Subscription:
    def __init__(self, callback):
        self.callback, self.dropped, self.closed = callback, 0, False

    def drop(self, count):
        self.dropped += count

    def close(self):
        self.closed = True


class Ops:
    """The few verbs the log stream uses."""

    def __init__(self):
        self.subscriptions = []

    def logs(self, name, lines, max_bytes=None):
        return []

    def subscribe(self, topic, callback, name=None):
        self.subscriptions.append(Subscription(callback))
        return self.subscriptions[-1]


def line(i):
    return {"time": 0.0, "name": "a", "service": "a", "pid": 1, "stream": "out",
            "line": f"{i:06d} " + "x" * 1000}


async def _open(server, sock):
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", server.server.sockets[0].getsockname()[1]))
    await loop.sock_sendall(sock, b"GET /api/logs/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")


async def _wait(check, seconds=10):
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.01)


def _client():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    return sock


def test_a_reader_that_stops_is_bounded_told_and_cut(monkeypatch):
    monkeypatch.setattr(httpstream, "TICK", 0.05)
    monkeypatch.setattr(httpstream, "STUCK_AFTER", 0.5)
    logged = []

    async def main():
        ops = Ops()
        server = HttpServer(ops, "127.0.0.1:0", logged.append, auth="none")
        await server.start()
        sock = _client()
        try:
            await _open(server, sock)
            await _wait(lambda: ops.subscriptions)
            sub = ops.subscriptions[0]
            for batch in range(200):  # 200 x 100 lines of 1 kB: far over the buffer
                sub.callback([line(batch * 100 + i) for i in range(100)])
            assert sub.dropped > 15000  # most were skipped, not queued
            transport = next(iter(_transports(server)))
            assert transport.get_write_buffer_size() <= httpstream.STREAM_BUFFER + 2000
            await _wait(lambda: any("stuck" in text for text in logged))
            await _wait(lambda: sub.closed)
        finally:
            sock.close()
            await server.close()
    run(main())


def test_a_reader_that_catches_up_is_told_how_many_it_missed(monkeypatch):
    monkeypatch.setattr(httpstream, "TICK", 0.05)

    async def main():
        loop = asyncio.get_running_loop()
        ops = Ops()
        server = HttpServer(ops, "127.0.0.1:0", print, auth="none")
        await server.start()
        sock = _client()
        try:
            await _open(server, sock)
            await _wait(lambda: ops.subscriptions)
            sub = ops.subscriptions[0]
            for batch in range(50):
                sub.callback([line(batch * 100 + i) for i in range(100)])
            missed = sub.dropped
            assert missed > 0
            data = b""
            mark = b"event: dropped\ndata: "
            while mark not in data or b"\n\n" not in data.split(mark, 1)[1]:
                data += await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
            told = data.split(b"event: dropped\ndata: ", 1)[1].split(b"\n", 1)[0]
            assert told == f'{{"count":{missed}}}'.encode()
        finally:
            sock.close()
            await server.close()
    run(main())


def _transports(server):
    """The connections' transports, from their tasks' frames (the server keeps
    no table of writers: it needs none)."""
    for task in server.clients:
        coro = task.get_coro()
        writer = coro.cr_frame.f_locals.get("writer") if coro.cr_frame else None
        if writer is not None:
            yield writer.transport
