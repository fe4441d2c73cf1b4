"""A small HTTP/1.1 server on the master's loop, for the XML-RPC frontend.

supervisorctl and the tools built on it speak XML-RPC over HTTP (a POST to
/RPC2) and read `tail -f` as a chunked GET. This serves exactly that, on
asyncio streams: no thread, nothing that blocks the loop. Requests are read
by httpwire.py, the master's one HTTP parser; what differs from the
dashboard's listener is kept-alive connections (supervisorctl reuses its
own), a larger body and supervisord's passwords.

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
import functools
import hashlib
import hmac

from corral.frontends import peers
from corral.frontends.httpwire import MAX_HEAD, HttpError, basic_auth, read_request, response

MAX_BODY = 4 << 20  # bytes of one XML-RPC request
MAX_CLIENTS = 256
READ_TIMEOUT = 30.0  # s for a head (after the first byte) or a body to arrive
IDLE_TIMEOUT = 300.0  # s a kept-alive connection may wait for its next request
WRITE_TIMEOUT = 30.0  # s for the client to take a reply


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
    basic = basic_auth(headers)
    if basic is None:
        return False
    user, given = basic
    return hmac.compare_digest(user.encode(), username.encode()) and \
        check_password(given, password or "")


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


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
            if not peers.allowed(writer):
                await self._send(writer, response(403, "permission denied\n"))
            elif len(self.clients) > MAX_CLIENTS:
                await self._send(writer, response(503, "too many clients\n"))
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
                request = await read_request(reader, MAX_BODY, READ_TIMEOUT, idle=IDLE_TIMEOUT)
            except HttpError as exc:  # the stream cannot be trusted any further: close
                await self._send(writer, response(exc.status, exc.message + "\n", headers=exc.headers))
                return
            if request is None:
                return
            keep = request.keep_alive
            if not authorized(request.headers, *auth):
                await self._send(writer, response(
                    401, "unauthorized\n", keep_alive=keep,
                    headers=[("WWW-Authenticate", 'Basic realm="corral"')]))
            else:
                try:
                    reply = await self.handler(request, reader, writer)
                except HttpError as exc:  # a well-formed request refused: keep the connection
                    reply = response(exc.status, exc.message + "\n", headers=exc.headers,
                                     keep_alive=keep)
                except Exception as exc:  # a bug: answer, log, and keep serving
                    self.log(f"xmlrpc: {request.method} {request.path} failed: {exc!r}")
                    reply, keep = response(500, "internal error\n"), False
                if reply is None:
                    return
                await self._send(writer, reply)
            if not keep:
                return

    async def _send(self, writer, data):
        writer.write(data)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
