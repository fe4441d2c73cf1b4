"""A small HTTP/1.1 server on the master's loop, for the XML-RPC frontend.

supervisorctl and the tools built on it speak XML-RPC over HTTP (a POST to
/RPC2) and read `tail -f` as a chunked GET. This serves exactly that, on
asyncio streams: no thread, nothing that blocks the loop.

Invariant: no client can block the master or grow its memory without
bound. Each connection is its own task; a request head is read up to
MAX_HEAD bytes, a body up to MAX_BODY (else 431/413 and the connection
closes); a head or body that does not arrive within READ_TIMEOUT s, or a
reply the client does not take within WRITE_TIMEOUT s, ends the
connection. A unix socket admits only the master's uid (or root), as the
control socket does; with a username, every request needs basic auth
(the password may be supervisord's "{SHA}" + the hex SHA-1 of it). Each
listener has its own pair, as supervisord's [unix_http_server] and
[inet_http_server] do.
"""

import asyncio
import base64
import functools
import hashlib
import hmac
import os
import socket
import struct
from dataclasses import dataclass, field

MAX_HEAD = 16 * 1024  # bytes of request line and headers
MAX_BODY = 4 << 20  # bytes of one XML-RPC request
MAX_CLIENTS = 256
READ_TIMEOUT = 30.0  # s for a head (after the first byte) or a body to arrive
IDLE_TIMEOUT = 300.0  # s a kept-alive connection may wait for its next request
WRITE_TIMEOUT = 30.0  # s for the client to take a reply
_CRED = struct.Struct("3i")

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
           413: "Payload Too Large", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}


@dataclass
class Request:
    method: str
    path: str
    version: str
    headers: dict  # lower-cased names
    body: bytes = b""
    keep_alive: bool = field(default=True)


class HTTPError(Exception):
    def __init__(self, status, close=False):
        super().__init__(status)
        self.status, self.close = status, close


def check_password(given, expected):
    """supervisord's rule: "{SHA}hex" compares the SHA-1 of what was given."""
    if expected.startswith("{SHA}"):
        given = hashlib.sha1(given.encode("utf-8", "surrogateescape")).hexdigest()
        expected = expected[5:].lower()
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))


def authorized(headers, username, password):
    if username is None:
        return True
    kind, _, value = headers.get("authorization", "").partition(" ")
    if kind.lower() != "basic":
        return False
    try:
        user, _, given = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), username.encode()) and \
        check_password(given, password or "")


def response(status, body=b"", content_type="text/plain", keep_alive=True, extra=()):
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
             f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
             "Connection: " + ("keep-alive" if keep_alive else "close"), *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


async def read_request(reader):
    """The next Request, or None at a clean end of the connection."""
    try:
        first = await asyncio.wait_for(reader.read(1), IDLE_TIMEOUT)
        if not first:
            return None
        head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    except asyncio.LimitOverrunError:
        raise HTTPError(431, close=True) from None
    except (asyncio.IncompleteReadError, asyncio.TimeoutError):
        return None
    if len(head) > MAX_HEAD:
        raise HTTPError(431, close=True)
    try:
        text = head.decode("latin-1")
        request_line, *header_lines = text[:-4].split("\r\n")
        method, path, version = request_line.split(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(version)
        headers = {}
        for line in header_lines:
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise ValueError(line)
            headers[name.strip().lower()] = value.strip()
    except ValueError:
        raise HTTPError(400, close=True) from None
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    request = Request(method, path, version, headers, keep_alive=keep_alive)
    if "transfer-encoding" in headers:
        raise HTTPError(501, close=True)  # no client of supervisord sends a chunked body
    length = headers.get("content-length")
    if method == "POST" and length is None:
        raise HTTPError(411, close=True)
    if length is not None:
        if not length.isdigit():
            raise HTTPError(400, close=True)
        if int(length) > MAX_BODY:
            raise HTTPError(413, close=True)
        try:
            request.body = await asyncio.wait_for(reader.readexactly(int(length)), READ_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError):
            return None
    return request


def peer_uid_allowed(writer):
    sock = writer.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return True
    try:
        _pid, uid, _gid = _CRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    except OSError:
        return False
    return uid in (0, os.getuid())


class HTTPServer:
    """Serves handler(request, reader, writer) -> bytes to write, or None when the
    handler has answered itself (a stream) and the connection is done."""

    def __init__(self, handler, log):
        self.handler, self.log = handler, log
        self.servers = []
        self.clients = set()

    async def listen_unix(self, sock, username=None, password=None):
        """Serve on a bound unix socket; with a username, basic auth with this pair."""
        self.servers.append(await asyncio.start_unix_server(
            functools.partial(self._serve, auth=(username, password)), sock=sock,
            limit=MAX_HEAD))

    async def listen_tcp(self, host, port, username=None, password=None):
        self.servers.append(await asyncio.start_server(
            functools.partial(self._serve, auth=(username, password)), host, port,
            limit=MAX_HEAD, reuse_address=True))

    async def close(self):
        for server in self.servers:
            server.close()
        for task in list(self.clients):
            task.cancel()
        if self.clients:
            await asyncio.wait(list(self.clients), timeout=1.0)

    async def _serve(self, reader, writer, auth):
        task = asyncio.current_task()
        self.clients.add(task)
        try:
            if not peer_uid_allowed(writer):
                await self._send(writer, response(403, b"permission denied\n", keep_alive=False))
            elif len(self.clients) > MAX_CLIENTS:
                await self._send(writer, response(503, b"too many clients\n", keep_alive=False))
            else:
                await self._requests(reader, writer, auth)
        except (ConnectionError, asyncio.TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self.clients.discard(task)
            writer.transport.abort()

    async def _requests(self, reader, writer, auth):
        while True:
            try:
                request = await read_request(reader)
            except HTTPError as exc:
                await self._send(writer, response(exc.status, keep_alive=False))
                return
            if request is None:
                return
            if not authorized(request.headers, *auth):
                await self._send(writer, response(
                    401, b"unauthorized\n", keep_alive=request.keep_alive,
                    extra=['WWW-Authenticate: Basic realm="corral"']))
            else:
                try:
                    reply = await self.handler(request, reader, writer)
                except HTTPError as exc:
                    reply = response(exc.status, keep_alive=request.keep_alive and not exc.close)
                    request.keep_alive = request.keep_alive and not exc.close
                except Exception as exc:  # a bug: answer, log, and keep serving
                    self.log(f"xmlrpc: {request.method} {request.path} failed: {exc!r}")
                    reply = response(500, keep_alive=False)
                    request.keep_alive = False
                if reply is None:
                    return
                await self._send(writer, reply)
            if not request.keep_alive:
                return

    async def _send(self, writer, data):
        writer.write(data)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
