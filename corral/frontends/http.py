"""The HTTP listener: dashboard, /metrics, /livez, /readyz -> api.Operations.

Invariant: no client can block the master or grow its memory without
bound, as on the control socket. It runs on the master's loop (no thread);
each connection is its own task; a request is read with the limits of
httpwire.py and answered once (Connection: close); a reply waits
WRITE_TIMEOUT for a slow client at most, inside that client's task. The
event streams (/api/events, /api/logs/stream: server-sent events) are
written without waiting: what does not fit in STREAM_BUFFER is skipped and
the page is told how much ("dropped"); a follower whose buffer stays full
for STUCK_AFTER s is cut, with a line in the master's log.

Private by default. On a unix socket (mode 0600) only the master's uid or
root may connect (SO_PEERCRED). On TCP every request but the bare probes
(/livez, /readyz without ?verbose) needs the token: `Authorization: Bearer
T`, basic auth with T as the password (any user), or the cookie that
`/?token=T` sets. The token is http_token, or one made at start; it is
written with the URL into SOCKET.http (mode 0600) for `corral dashboard`.
State-changing requests are POSTs that carry the page's CSRF token in
X-Corral-CSRF (a header no other site's form can set), unless they come
with a bearer token, which no browser sends by itself.
"""

import asyncio
import hmac
import http.cookies
import importlib.resources
import ipaddress
import json
import os
import secrets
import urllib.parse

from corral import httpspec
from corral.errors import ControlError, CorralError
from corral.frontends import httpmetrics, peers
from corral.frontends.httpstream import follow_events, follow_logs, row
from corral.frontends.control import bind_socket
from corral.frontends.httpwire import (
    MAX_HEAD, HttpError, basic_auth, error_response, json_response, read_request, response, sse)

MAX_CLIENTS = 128
WRITE_TIMEOUT = 10.0  # s a reply may wait for a slow client
LOG_HISTORY = 200  # lines a log view starts with
COOKIE = "corral_token"
STATIC = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}


def info_path(control_socket):
    """Where the URL and token are written for `corral dashboard`."""
    return control_socket + ".http"


class HttpServer:
    def __init__(self, ops, address, log, *, auth="token", token=None, control_socket=None):
        self.ops, self.log, self.address = ops, log, address
        self.where = httpspec.parse_address(address)
        self.auth = auth if self.where[0] == "tcp" else "peer"
        self.token = token or secrets.token_urlsafe(24)
        self.csrf = secrets.token_urlsafe(24)
        self.info = info_path(control_socket) if control_socket else None
        self.server = None
        self.clients = set()
        self.url = None
        self.metrics = httpmetrics.Exposition()  # keeps the series that rarely change

    async def start(self):
        if self.where[0] == "unix":
            sock = bind_socket(self.where[1])
            self.server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_HEAD)
            self.url = self.address
        else:
            _kind, host, port = self.where
            try:
                self.server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD,
                                                         reuse_address=True)
            except OSError as exc:
                raise CorralError(f"http: cannot listen on {self.address}: "
                                  f"{exc.strerror or exc}") from None
            port = self.server.sockets[0].getsockname()[1]  # port 0: the one given
            shown = f"[{host}]" if ":" in host else host
            self.url = f"http://{shown}:{port}/"
        self._write_info()
        self.log(f"http: listening on {self.url}" + (
            " (token in " + self.info + ")" if self.auth == "token" and self.info else ""))

    def _write_info(self):
        if self.info is None:
            return
        try:
            if os.path.lexists(self.info):
                os.unlink(self.info)
            fd = os.open(self.info, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"url": self.url, "auth": self.auth,
                           "token": self.token if self.auth == "token" else None}, f)
        except OSError as exc:
            self.log(f"http: cannot write {self.info}: {exc.strerror}")

    async def close(self):
        if self.server is not None:
            self.server.close()
        for path in (self.info, self.where[1] if self.where[0] == "unix" else None):
            try:
                if path and os.path.exists(path):
                    os.unlink(path)
            except OSError:
                pass
        for task in list(self.clients):
            task.cancel()
        if self.clients:
            await asyncio.wait(list(self.clients), timeout=1.0)

    # -- one connection ----------------------------------------------------

    async def _serve(self, reader, writer):
        task = asyncio.current_task()
        self.clients.add(task)
        try:
            if len(self.clients) > MAX_CLIENTS:
                writer.write(error_response(HttpError(503, "too many clients")))
            elif self.auth == "peer" and not peers.allowed(writer):
                writer.write(error_response(HttpError(403, "permission denied")))
            else:
                await self._one(reader, writer)
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
        except asyncio.TimeoutError:
            self.log(f"http: dropped a client that did not read its reply in {WRITE_TIMEOUT:g} s")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.clients.discard(task)
            writer.transport.abort()

    async def _one(self, reader, writer):
        request = None
        try:
            request = await read_request(reader)
            if request is None:
                return
            route = ROUTES.get(request.path)
            if route is None and request.path.startswith("/static/"):
                route = ("GET", _static, True)
            if route is None:
                raise HttpError(404, f"no such page: {request.path[:100]}")
            method, handler, private = route
            if request.method not in ((method, "HEAD") if method == "GET" else (method,)):
                raise HttpError(405, f"{request.path} takes {method}", [("Allow", method)])
            if private or "verbose" in request.query:
                redirect = self._authorize(request)
                if redirect is not None:
                    writer.write(redirect)
                    return
            if method == "POST":
                self._check_csrf(request)
            reply = await handler(self, request, reader, writer)
        except HttpError as error:
            reply = error_response(error)
        except ControlError as exc:
            reply = error_response(HttpError(404 if exc.code == "no_such_service" else 409,
                                             exc.message))
        except Exception as exc:  # a bug: answer, log, and keep serving
            self.log(f"http: internal error: {exc!r}")
            reply = error_response(HttpError(500, f"internal error: {exc}"))
        if reply:
            if request is not None and request.method == "HEAD":
                reply = reply.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
            writer.write(reply)

    # -- who may ask ---------------------------------------------------------

    def _authorize(self, request):
        """None when allowed (request.extra["auth"] says how); a 303 that sets
        the cookie for /?token=T; else raises 401."""
        if self.auth == "peer":
            request.extra["auth"] = self.auth
            return None
        if self.auth == "none":
            # No token: only a Host that is an address or localhost, or a page
            # of any site could rebind its name to 127.0.0.1 and drive us.
            host = urllib.parse.urlsplit("//" + request.headers.get("host", "")).hostname or ""
            if host != "localhost" and not _is_address(host):
                raise HttpError(403, f"Host {host[:100]!r} refused: without auth only an "
                                     "address or localhost (DNS rebinding)")
            request.extra["auth"] = self.auth
            return None
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and self._is_token(value.strip()):
            request.extra["auth"] = "bearer"
            return None
        basic = basic_auth(request.headers)
        if basic is not None and self._is_token(basic[1]):
            request.extra["auth"] = "basic"
            return None
        cookies = http.cookies.SimpleCookie()
        try:
            cookies.load(request.headers.get("cookie", ""))
        except http.cookies.CookieError:
            pass
        if COOKIE in cookies and self._is_token(cookies[COOKIE].value):
            request.extra["auth"] = "cookie"
            return None
        token = request.arg("token")
        if token is not None and request.method == "GET" and self._is_token(token):
            rest = {k: v for k, v in request.query.items() if k != "token"}
            target = request.path + ("?" + urllib.parse.urlencode(rest, doseq=True) if rest else "")
            return response(303, "", headers=[
                ("Location", target),
                ("Set-Cookie", f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/")])
        raise HttpError(401, "authentication required: a bearer token, basic auth with the "
                             "token as password, or /?token=T (see `corral dashboard`)",
                        [("WWW-Authenticate", 'Basic realm="corral", charset="UTF-8"')])

    def _is_token(self, value):
        return bool(value) and hmac.compare_digest(value.encode(), self.token.encode())

    def _check_csrf(self, request):
        if request.extra.get("auth") == "bearer":
            return
        origin = request.headers.get("origin")
        if origin and urllib.parse.urlsplit(origin).netloc != request.headers.get("host"):
            raise HttpError(403, "cross-origin request refused")
        if not hmac.compare_digest(request.headers.get("x-corral-csrf", "").encode(),
                                   self.csrf.encode()):
            raise HttpError(403, "missing or wrong X-Corral-CSRF header (reload the page)")


def _is_address(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


# -- pages ---------------------------------------------------------------------


def _asset(name):
    return importlib.resources.files("corral.frontends").joinpath("static", name).read_bytes()


async def _dashboard(server, request, reader, writer):
    page = _asset("index.html").replace(b"{{csrf}}", server.csrf.encode())
    return response(200, page, "text/html; charset=utf-8", headers=[
        ("Content-Security-Policy",
         "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
         "img-src 'self' data:; frame-ancestors 'none'")])


async def _static(server, request, reader, writer):
    name = request.path[len("/static/"):]
    if name not in STATIC:
        raise HttpError(404, f"no such file: {name[:100]}")
    return response(200, _asset(name), STATIC[name] + "; charset=utf-8")


async def _livez(server, request, reader, writer):
    return response(200, "ok\n")  # answered: the loop runs


async def _readyz(server, request, reader, writer):
    checks = server.ops.readiness(request.query.get("service", []))
    ready = all(c.ok for c in checks)
    if "verbose" in request.query:
        lines = [f"[{'+' if c.ok else '-'}]{c.name} {'ok' if c.ok else c.state}" for c in checks]
        lines.append("readyz check passed" if ready else "readyz check failed")
        body = "\n".join(lines) + "\n"
    else:
        body = "ok\n" if ready else "not ready\n"
    return response(200 if ready else 503, body)


async def _metrics(server, request, reader, writer):
    return response(200, server.metrics.render(server.ops), httpmetrics.CONTENT_TYPE)


async def _status(server, request, reader, writer):
    return json_response(200, [row(s) for s in server.ops.status(request.query.get("name", []))])


async def _tree(server, request, reader, writer):
    tree = server.ops.tree()
    after = server.ops.dependencies()
    for node in tree.get("children", []):
        node["after"] = after.get(node["name"], [])
    return json_response(200, tree)


async def _logs(server, request, reader, writer):
    name = _log_name(request)
    return json_response(200, server.ops.logs(name, _lines(request), max_bytes=1 << 20,
                                              after=_number(request, "after", 0)))


def _log_name(request):
    name = request.arg("name") or None
    if name is not None and any(ch in name for ch in "*?["):
        raise HttpError(400, "give one service or instance name")
    return None if name == "all" else name


def _lines(request):
    return min(_number(request, "lines", LOG_HISTORY), 10000)


def _number(request, name, default):
    text = request.arg(name, str(default))
    if not text.isdigit():
        raise HttpError(400, f"{name} must be a number, not {text[:20]!r}")
    return int(text)


def _action(verb):
    async def act(server, request, reader, writer):
        body = request.json()
        names = body.get("names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise HttpError(400, 'send {"names": ["web", "db:0" or "all"]}')
        outcomes = await getattr(server.ops, verb)(names)
        return json_response(200, [o.as_dict() for o in outcomes])
    return act


async def _events(server, request, reader, writer):
    await follow_events(server, request, reader, writer)
    return None


async def _log_stream(server, request, reader, writer):
    await follow_logs(server, _log_name(request), _lines(request), reader, writer)
    return None


# path -> (method, handler, needs auth)
ROUTES = {
    "/": ("GET", _dashboard, True),
    "/livez": ("GET", _livez, False),
    "/readyz": ("GET", _readyz, False),
    "/metrics": ("GET", _metrics, True),
    "/api/status": ("GET", _status, True),
    "/api/tree": ("GET", _tree, True),
    "/api/logs": ("GET", _logs, True),
    "/api/events": ("GET", _events, True),
    "/api/logs/stream": ("GET", _log_stream, True),
    "/api/start": ("POST", _action("start"), True),
    "/api/stop": ("POST", _action("stop"), True),
    "/api/restart": ("POST", _action("restart"), True),
}
