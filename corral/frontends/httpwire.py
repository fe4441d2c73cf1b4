"""HTTP/1.1 on the wire, bounded: one request in, one response out.

The one HTTP parser of the master: both HTTP frontends, the dashboard's
(http.py) and supervisord's XML-RPC (xmlrpc_http.py), read through these
with limits, so that no client can make the master hold more than
MAX_HEAD + max_body bytes for it or wait on it for longer than the
timeouts: an oversized head is 431, a body over max_body 413, a chunked
body 411, a bad request line 400, a method other than GET/HEAD/POST 405.
The dashboard closes every connection (`Connection: close`: no keep-alive
state to bound, and it makes few requests besides its event streams);
supervisorctl keeps its connection, so response() can say keep-alive.

    request  = Request(method, path, query {name: [values]}, headers {lower: value}, body)
    response = response(status, body, content_type, extra headers) -> bytes
"""

import asyncio
import base64
import json
import urllib.parse
from dataclasses import dataclass, field

MAX_HEAD = 16 * 1024  # request line and headers
MAX_HEADERS = 64
MAX_BODY = 64 * 1024
HEAD_TIMEOUT = 10.0  # s for the whole head, and again for the body
METHODS = ("GET", "HEAD", "POST")

REASONS = {200: "OK", 204: "No Content", 303: "See Other", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
           413: "Content Too Large", 415: "Unsupported Media Type",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable"}


class HttpError(Exception):
    """A request that gets status and message, and changes nothing."""

    def __init__(self, status, message, headers=()):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, tuple(headers)


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes = b""
    peer: object = None
    extra: dict = field(default_factory=dict)  # what the listener learnt (auth)
    version: str = "HTTP/1.1"

    @property
    def keep_alive(self):
        """What the client asked for: HTTP/1.1 keeps the connection unless told
        to close, HTTP/1.0 only when told to keep it."""
        connection = self.headers.get("connection", "").lower()
        return connection != "close" if self.version == "HTTP/1.1" else connection == "keep-alive"

    def arg(self, name, default=None):
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self):
        if not self.body:
            return {}
        if "json" not in self.headers.get("content-type", ""):
            raise HttpError(415, "send the body as application/json")
        try:
            value = json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, f"bad JSON body: {exc}") from None
        if not isinstance(value, dict):
            raise HttpError(400, "the JSON body must be an object")
        return value


def basic_auth(headers):
    """(user, password) of an Authorization: Basic header, else None."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


async def read_request(reader, max_body=MAX_BODY, timeout=HEAD_TIMEOUT, idle=None):
    """The next Request, or None when the client closed (or stayed idle for
    `idle` s, on a kept-alive connection) before sending one. The head, then
    the body, must each come within timeout s of their first byte."""
    try:
        first = b""
        if idle is not None:  # between requests: wait long, then quietly close
            first = await asyncio.wait_for(reader.read(1), idle)
            if not first:
                return None
        head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.IncompleteReadError as exc:
        if not (first + exc.partial).strip():
            return None
        raise HttpError(400, "the request ended in its head") from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"request head over {MAX_HEAD} bytes") from None
    except ValueError:  # the limit, as raised by some paths of readuntil
        raise HttpError(431, f"request head over {MAX_HEAD} bytes") from None
    except asyncio.TimeoutError:
        if idle is not None and not first:
            return None
        raise HttpError(408, f"no complete request head within {timeout:g} s") from None
    if len(head) > MAX_HEAD:
        raise HttpError(431, f"request head over {MAX_HEAD} bytes")
    request = parse_head(head)
    request.body = await _read_body(reader, request.headers, max_body, timeout)
    return request


def parse_head(head):
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # latin-1 decodes everything; kept for clarity
        raise HttpError(400, "undecodable request head") from None
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "bad request line")
    method, target, version = parts
    if method not in METHODS:
        raise HttpError(405, f"method {method[:20]!r} not allowed", [("Allow", ", ".join(METHODS))])
    if not target.startswith("/"):
        raise HttpError(400, "the target must be a path")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header lines")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "bad header line")
        headers[name.lower()] = value.strip()
    path, _, query = target.partition("?")
    path = urllib.parse.unquote(path)
    if "\0" in path or "/../" in path + "/":
        raise HttpError(400, "bad path")
    return Request(method, path, urllib.parse.parse_qs(query, keep_blank_values=True), headers,
                   version=version)


async def _read_body(reader, headers, max_body, timeout):
    if "transfer-encoding" in headers:  # no client of ours sends one: no chunked decoder
        raise HttpError(411, "send a Content-Length, not a chunked body")
    length = headers.get("content-length", "0")  # none: no body (RFC 9112 6.3)
    if not length.isdigit():
        raise HttpError(400, "bad Content-Length")
    length = int(length)
    if length > max_body:
        raise HttpError(413, f"body over {max_body} bytes")
    if not length:
        return b""
    try:
        return await asyncio.wait_for(reader.readexactly(length), timeout)
    except asyncio.IncompleteReadError:
        raise HttpError(400, "the body ended early") from None
    except asyncio.TimeoutError:
        raise HttpError(408, "the body did not come") from None


BASE_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
)


def response(status, body=b"", content_type="text/plain; charset=utf-8", headers=(),
             head_only=False, length=True, keep_alive=False):
    """The bytes of a whole response; length=False for a stream (SSE)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in (*BASE_HEADERS, *headers)]
    lines.append(f"Content-Type: {content_type}")
    if length:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return data if head_only else data + body


def json_response(status, value, headers=()):
    return response(status, json.dumps(value), "application/json", headers)


def error_response(error):
    return json_response(error.status, {"error": error.message}, error.headers)


def sse(event, data):
    """One server-sent event: data is JSON, on one line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
