"""probes.py: tcp and http targets (for `ready` and `health`) and the probes,
on a real loop against in-process servers."""

import asyncio
import socket

import pytest

from corral.probes import Target, parse_http, parse_tcp, probe_http, probe_tcp
from tests.helpers import free_port, run_without_threads


@pytest.mark.parametrize("value, target", [
    (8080, Target("tcp", "127.0.0.1", 8080)),
    (" 8080 ", Target("tcp", "127.0.0.1", 8080)),
    ("10.0.0.2:53", Target("tcp", "10.0.0.2", 53)),
    ("LocalHost:7", Target("tcp", "localhost", 7)),
    ("[::1]:22", Target("tcp", "::1", 22)),
    ("[0:0::1]:22", Target("tcp", "::1", 22)),
])
def test_tcp_forms(value, target):
    assert parse_tcp(value) == target


@pytest.mark.parametrize("url, host, port, path", [
    ("http://127.0.0.1:8080/health?full=1", "127.0.0.1", 8080, "/health?full=1"),
    ("http://localhost", "localhost", 80, "/"),
    ("HTTP://[::1]:81/x#frag", "::1", 81, "/x"),
    ("http://user:pw@10.0.0.1/", "10.0.0.1", 80, "/"),
])
def test_http_forms(url, host, port, path):
    assert parse_http(url) == Target("http", host, port, path, url)


@pytest.mark.parametrize("value", [0, 70000, True, 1.5, None, "host", "host:port", ":80",
                                   "::1:80", "[::1]", "1:2:3", "99999999999"])
def test_bad_tcp(value):
    with pytest.raises(ValueError) as info:
        parse_tcp(value)
    assert str(info.value) == ('tcp must be a port (1-65535), "HOST:PORT" or "[IPv6]:PORT", '
                               f"not {value!r}")


@pytest.mark.parametrize("value, words", [
    (80, 'http must be a URL "http://HOST:PORT/PATH", not 80'),
    ("127.0.0.1:80", "http must be a URL"),
    ("https://127.0.0.1/", "(https is not supported)"),
    ("http://127.0.0.1:99999/", "(bad port or host)"),
    ("http://127.0.0.1:0/", "(bad port or host)"),
    ("http://[::1/", "(bad port or host)"),
    ("http:///x", "(it needs a host)"),
    ("http://127.0.0.1/a b", "(no spaces or control characters in the path)"),
])
def test_bad_http(value, words):
    with pytest.raises(ValueError) as info:
        parse_http(value)
    assert words in str(info.value)


@pytest.mark.parametrize("parse, value", [
    (parse_tcp, "db.internal:5432"), (parse_http, "http://example.com/"),
    (parse_tcp, "[fe80::1%eth0]:80"),  # asyncio would resolve a zone in a thread
])
def test_host_names_are_refused(parse, value):
    with pytest.raises(ValueError, match="host must be an IP address or localhost "
                                         r"\(the master does not look up names\)"):
        parse(value)


def test_describe_and_hosts():
    assert parse_tcp("[::1]:80").describe() == "tcp [::1]:80"
    assert parse_tcp(6379).describe() == "tcp 127.0.0.1:6379"
    assert parse_http("http://localhost/x").describe() == "http://localhost/x"
    assert parse_tcp("localhost:1").hosts() == ("127.0.0.1", "::1")
    assert parse_tcp("[::1]:1").hosts() == ("::1",)


# -- the probes --------------------------------------------------------------------

async def serve(answer, host="127.0.0.1"):
    """A server that reads one request head, writes answer (if not None) and
    closes, or else keeps quiet: (server, port, request heads)."""
    heads = []

    async def handle(reader, writer):
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        if answer is None:
            await asyncio.sleep(10)
        writer.write(answer)
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    return server, server.sockets[0].getsockname()[1], heads


@pytest.mark.parametrize("status, ok", [(200, True), (204, True), (302, True),
                                        (404, False), (500, False), (503, False)])
def test_http_statuses_and_request(status, ok):
    async def main():
        server, port, heads = await serve(f"HTTP/1.1 {status} X\r\n\r\n".encode())
        async with server:
            result = await probe_http(parse_http(f"http://127.0.0.1:{port}/h?x=1"), 5)
        assert heads[0].startswith(b"GET /h?x=1 HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{port}\r\n".encode() in heads[0]
        assert b"Connection: close\r\n" in heads[0]
        return result

    assert run_without_threads(main()) == (ok, str(status))


@pytest.mark.parametrize("answer, detail", [
    (b"", "closed without an answer"),
    (b"SSH-2.0-OpenSSH\r\n", "not an HTTP answer"),
    (b"HTTP/1.1 200 " + b"x" * 100_000 + b"\r\n", "not an HTTP answer"),  # too long a line
    (None, "timed out after 0.1 s"),
])
def test_http_answers_that_are_not_healthy(answer, detail):
    async def main():
        server, port, _ = await serve(answer)
        async with server:
            return await probe_http(parse_http(f"http://127.0.0.1:{port}/"), 0.1)

    assert run_without_threads(main()) == (False, detail)


def test_tcp_and_localhost():
    async def main():
        server, port, _ = await serve(b"")
        async with server:
            assert await probe_tcp(parse_tcp(port), 5) == (True, "connected")
        assert await probe_tcp(parse_tcp(free_port()), 5) == (False, "connection refused")
        refused = await probe_http(parse_http(f"http://localhost:{free_port()}/"), 5)
        assert refused == (False, "connection refused")  # 127.0.0.1's error, not ::1's
        if socket.has_ipv6:
            try:
                server, port, _ = await serve(b"HTTP/1.0 204 None\r\n\r\n", host="::1")
            except OSError:
                return  # no IPv6 loopback here
            async with server:
                target = parse_http(f"http://localhost:{port}/")
                assert await probe_http(target, 5) == (True, "204")  # after 127.0.0.1

    run_without_threads(main())
