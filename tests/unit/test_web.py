"""corral.services.web.WebService in-process: raw HTTP requests over a real socket."""

import asyncio
import os

import pytest

from corral.services.web import WebService

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "empty dir").mkdir()
    (root / "a.txt").write_bytes(b"hello\n")
    (root / "page.html").write_text("<p>page</p>")
    (root / "data.bin").write_bytes(bytes(range(256)) * 1000)
    (root / "sub" / "index.html").write_text("<p>index</p>")
    (root / "sub" / "b.txt").write_text("inner")
    (root / "<odd> & name.txt").write_text("odd")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "out-link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "in-link.txt").symlink_to(root / "a.txt")
    (root / "out-dir").symlink_to(tmp_path)
    os.mkfifo(root / "fifo")
    return root


def serve(site, *requests):
    """Start a WebService on a free port, send each raw request, stop; the replies."""

    async def go():
        service = WebService(str(site), 0, "127.0.0.1")
        await service.startService()
        port = service.server.sockets[0].getsockname()[1]
        replies = []
        try:
            for request in requests:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                await writer.drain()
                replies.append(await asyncio.wait_for(reader.read(), 10))
                writer.close()
        finally:
            await service.stopService()
        return replies

    return [parse(reply) for reply in asyncio.run(go())]


def parse(reply):
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return status, headers, body


def get(path, method="GET", version="HTTP/1.1"):
    return f"{method} {path} {version}\r\nHost: x\r\n\r\n".encode()


def test_files(site):
    (status, headers, body), (s2, h2, b2), (s3, h3, b3) = serve(
        site, get("/a.txt"), get("/data.bin", version="HTTP/1.0"), get("/page.html?x=1"))
    assert (status, body) == (200, b"hello\n")
    assert headers["Content-Length"] == "6" and headers["Content-Type"] == "text/plain"
    assert headers["Connection"] == "close" and "Last-Modified" in headers
    assert s2 == 200 and b2 == bytes(range(256)) * 1000 and h2["Content-Length"] == "256000"
    assert h2["Content-Type"] == "application/octet-stream"
    assert (s3, b3, h3["Content-Type"]) == (200, b"<p>page</p>", "text/html")


def test_head_sends_headers_only(site):
    [(status, headers, body)] = serve(site, get("/a.txt", "HEAD"))
    assert (status, headers["Content-Length"], body) == (200, "6", b"")


def test_folders(site):
    (s1, h1, _), (s2, _, b2), (s3, h3, b3), (s4, _, b4) = serve(
        site, get("/sub"), get("/sub/"), get("/"), get("/empty%20dir/"))
    assert s1 == 301 and h1["Location"] == "/sub/"
    assert (s2, b2) == (200, b"<p>index</p>")
    assert s3 == 200 and h3["Content-Type"] == "text/html; charset=utf-8"
    assert int(h3["Content-Length"]) == len(b3)
    listing = b3.decode()
    assert '<a href="a.txt">a.txt</a>' in listing and '<a href="sub/">sub/</a>' in listing
    assert '<a href="%3Codd%3E%20%26%20name.txt">&lt;odd&gt; &amp; name.txt</a>' in listing
    assert s4 == 200 and b"Index of /empty dir/" in b4


def test_quoted_names(site):
    [(status, _, body)] = serve(site, get("/%3Codd%3E%20%26%20name.txt"))
    assert (status, body) == (200, b"odd")


def test_missing_is_404(site):
    (s1, _, b1), (s2, _, _) = serve(site, get("/nope.txt"), get("/sub/nope/"))
    assert (s1, b1) == (404, b"404 Not Found\n")
    assert s2 == 404


def test_escaping_the_root_is_403(site):
    replies = serve(site, get("/../secret.txt"), get("/sub/../../secret.txt"), get("/%2e%2e/secret.txt"),
                    get("/out-link.txt"), get("/out-dir/secret.txt"), get("/../nothing-there"),
                    get("/fifo"))
    assert [status for status, _, _ in replies] == [403] * 7
    assert all(b"secret" not in body for _, _, body in replies)


def test_dotdot_and_symlinks_inside_the_root_are_fine(site):
    (s1, _, b1), (s2, _, b2) = serve(site, get("/sub/../a.txt"), get("/in-link.txt"))
    assert (s1, b1) == (200, b"hello\n") and (s2, b2) == (200, b"hello\n")


def test_bad_requests(site):
    replies = serve(site, get("/a.txt", "POST"), b"nonsense\r\n\r\n", get("/a.txt", version="HTTP/2.0"),
                    get("a.txt"), get("/a%00.txt"))
    assert [status for status, _, _ in replies] == [405, 400, 505, 400, 400]
    assert replies[0][1]["Allow"] == "GET, HEAD"


def test_stop_closes_waiting_connections(site):
    async def go():
        service = WebService(str(site), 0, "127.0.0.1")
        await service.startService()
        port = service.server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /a.txt HTTP/1.1\r\n")  # and never the rest
        await writer.drain()
        await asyncio.sleep(0.05)
        await asyncio.wait_for(service.stopService(), 5)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert not service.running
        writer.close()

    asyncio.run(go())
