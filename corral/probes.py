"""tcp and http probe targets, parsed once, and the probes that try them.

One way for both users: `ready = {tcp/http = ...}` (supervisor/readiness.py)
and `health = {tcp/http = ...}` (healthspec.py, supervisor/health.py).

A tcp target is a port (on 127.0.0.1), "HOST:PORT" or "[IPv6]:PORT"; an
http target is a plain http:// URL (no https). Hosts must be IP addresses
or `localhost` (tried as 127.0.0.1, then ::1): the master never resolves
names. A lookup would either block its loop (getaddrinfo) or need
asyncio's resolver, which runs getaddrinfo in a thread pool, and the
master has no threads; nor should a slow or broken DNS decide whether a
service counts as up. For the same reason IPv6 zones ("fe80::1%eth0") are
refused: asyncio resolves those in a thread too.

Parsing is pure and raises ValueError with a message for people. The
probes never raise for what the far end does (nor for a timeout): they
return (ok, detail), ok for a connect (tcp) or a 2xx/3xx status (http),
detail a short text such as "connected", "200", "connection refused",
"timed out after 1 s" or "not an HTTP answer".
"""

import asyncio
import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

TCP_FORMS = 'a port (1-65535), "HOST:PORT" or "[IPv6]:PORT"'
HTTP_FORM = 'a URL "http://HOST:PORT/PATH"'
_TCP = re.compile(r"\[([^\]]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})|(\d{1,5})", re.ASCII)
_STATUS_LINE = re.compile(rb"HTTP/\d(?:\.\d)? +(\d{3})\b")


@dataclass(frozen=True)
class Target:
    """What a probe connects to. kind: "tcp" | "http"; host: an IP address
    or "localhost"; path (with the query) and url (as written): http only."""

    kind: str
    host: str
    port: int
    path: str = None
    url: str = None

    def describe(self):
        """For messages: "tcp 127.0.0.1:6379", or the http URL as written."""
        return self.url if self.kind == "http" else f"tcp {_hostport(self.host, self.port)}"

    def hosts(self):
        """The addresses to try, in order (`localhost`: IPv4, then IPv6)."""
        return ("127.0.0.1", "::1") if self.host == "localhost" else (self.host,)


def parse_tcp(value):
    """A tcp Target from 8080, "8080", "10.0.0.2:53", "localhost:7" or "[::1]:22"."""
    port = None
    if isinstance(value, int) and not isinstance(value, bool):
        host, port = "127.0.0.1", value
    elif isinstance(value, str) and (match := _TCP.fullmatch(value.strip())):
        host = _host("tcp", match[1] or match[3] or "127.0.0.1", value)
        port = int(match[2] or match[4] or match[5])
    if port is None or not 1 <= port <= 65535:
        raise ValueError(f"tcp must be {TCP_FORMS}, not {value!r}")
    return Target("tcp", host, port)


def parse_http(url):
    """An http Target from "http://HOST[:PORT][/PATH][?QUERY]"."""
    if not isinstance(url, str):
        raise _bad_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:  # a bad port or a broken [IPv6] host
        raise _bad_url(url, "bad port or host") from None
    if parts.scheme != "http":
        raise _bad_url(url, "https is not supported" if parts.scheme == "https" else None)
    if port == 0:
        raise _bad_url(url, "bad port or host")
    if not parts.hostname:
        raise _bad_url(url, "it needs a host")
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    if re.search(r"[\x00-\x20\x7f]", path):
        raise _bad_url(url, "no spaces or control characters in the path")
    return Target("http", _host("http", parts.hostname, url), port or 80, path, url)


def _bad_url(url, why=None):
    return ValueError(f"http must be {HTTP_FORM}" + (f" ({why})" if why else "")
                      + f", not {url!r}")


def _host(kind, host, written):
    if host.lower() == "localhost":
        return "localhost"
    try:
        if "%" not in host:
            return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    raise ValueError(f"{kind} host must be an IP address or localhost (the master does not "
                     f"look up names), not {host!r} in {written!r}")


def _hostport(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the probes (on the running loop; never a thread) ---------------------------

async def probe_tcp(target, timeout):
    """(True, "connected") once a connect succeeds within timeout, else (False, why)."""
    return await bounded(timeout, _tcp(target))


async def probe_http(target, timeout):
    """(ok, "503") for a GET answered within timeout (ok: 2xx or 3xx), else (False, why)."""
    return await bounded(timeout, _http(target))


async def bounded(timeout, probe):
    """The (ok, detail) of coroutine probe, or (False, why) for a timeout or an OSError."""
    try:
        async with asyncio.timeout(timeout):
            return await probe
    except TimeoutError:
        return False, f"timed out after {timeout:g} s"
    except OSError as exc:
        return False, os_error_text(exc)


def os_error_text(exc):
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


async def _connect(target):
    """open_connection to target's address(es): IP literals, never a lookup."""
    first = None
    for host in target.hosts():
        try:
            return await asyncio.open_connection(host, target.port)
        except OSError as exc:
            first = first or exc  # "refused" on 127.0.0.1 says more than no IPv6 on ::1
    raise first


async def _tcp(target):
    _, writer = await _connect(target)
    writer.close()
    return True, "connected"


async def _http(target):
    reader, writer = await _connect(target)
    try:
        host = _hostport(target.host, target.port).removesuffix(":80")  # only port 80 ends so
        writer.write((f"GET {target.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: corral\r\n"
                      "Accept: */*\r\nConnection: close\r\n\r\n").encode())
        await writer.drain()
        try:
            line = await reader.readline()
        except ValueError:  # a first line longer than the stream's limit
            line = b"?"
    finally:
        writer.close()
    match = _STATUS_LINE.match(line)
    if not match:
        return False, "closed without an answer" if not line else "not an HTTP answer"
    code = int(match[1])
    return 200 <= code < 400, str(code)
