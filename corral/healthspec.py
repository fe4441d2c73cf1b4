"""The `health` and `max_memory` settings: parsed, checked and frozen.

Pure: no I/O, no loop. settings.py wraps parse_health and parse_memory in
its one-check-per-key table, so a bad value is a ConfigError naming the
key; supervisor/health.py runs what these describe.

Probe targets must be IP addresses (or `localhost`): a name lookup would
either block the master's loop or need asyncio's resolver, which runs
getaddrinfo in a thread pool, and the master has no threads.
"""

import ipaddress
import math
import re
import shlex
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_INTERVAL = 10.0  # s between the starts of two probes
DEFAULT_FAILURES = 3  # failed probes in a row that restart the service
MAX_DEFAULT_TIMEOUT = 5.0  # the default timeout is min(interval, this)
KINDS = ("http", "tcp", "exec")
KEYS = (*KINDS, "interval", "failures", "timeout")


@dataclass(frozen=True)
class Health:
    """One health check. kind: http | tcp | exec.

    http: host, port, path (with the query), url (as written); tcp: host,
    port; exec: argv (a tuple of strings).
    """

    kind: str
    interval: float = DEFAULT_INTERVAL
    failures: int = DEFAULT_FAILURES
    timeout: float = MAX_DEFAULT_TIMEOUT
    host: str = None
    port: int = None
    path: str = None
    url: str = None
    argv: tuple = None

    def target(self):
        """What is probed, for messages: "http http://127.0.0.1:8080/health"."""
        if self.kind == "http":
            return f"http {self.url}"
        if self.kind == "tcp":
            return f"tcp {_hostport(self.host, self.port)}"
        return "exec " + shlex.join(self.argv)

    def hosts(self):
        """The addresses to try, in order (`localhost`: IPv4, then IPv6)."""
        return ("127.0.0.1", "::1") if self.host == "localhost" else (self.host,)


def parse_health(value):
    """A Health from a table {http|tcp|exec = ..., interval, failures, timeout}.

    Raises ValueError with a message for people.
    """
    if not isinstance(value, Mapping):
        raise ValueError('must be a table, e.g. {http = "http://127.0.0.1:8080/health", '
                         f"interval = 5, failures = 3}}, not {value!r}")
    for key in value:
        if key not in KEYS:
            raise ValueError(f"unknown key {key!r} in health (known: {', '.join(KEYS)})")
    kinds = [kind for kind in KINDS if kind in value]
    if len(kinds) != 1:
        raise ValueError("needs exactly one of http, tcp, exec"
                         + (f" (has {', '.join(kinds)})" if kinds else ""))
    kind = kinds[0]
    interval = _positive(value, "interval", DEFAULT_INTERVAL)
    failures = value.get("failures", DEFAULT_FAILURES)
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        raise ValueError(f"health failures must be an integer >= 1, not {failures!r}")
    timeout = _positive(value, "timeout", min(interval, MAX_DEFAULT_TIMEOUT))
    common = dict(kind=kind, interval=interval, failures=failures, timeout=timeout)
    if kind == "http":
        return Health(**common, **_http(value["http"]))
    if kind == "tcp":
        host, port = _tcp(value["tcp"])
        return Health(**common, host=host, port=port)
    return Health(**common, argv=_exec(value["exec"]))


def _positive(table, key, default):
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"health {key} must be a number of seconds > 0, not {value!r}")
    return float(value)


def _http(url):
    if not isinstance(url, str):
        raise ValueError(f'health http must be a URL string like "http://127.0.0.1:8080/health", '
                         f"not {url!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"health http must be an http:// URL (https is not supported), not {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError(f"health http has a bad port: {url!r}") from None
    host = _host(parts.hostname, url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(c in path for c in " \r\n"):
        raise ValueError(f"health http has spaces or line breaks in its path: {url!r}")
    return dict(host=host, port=port, path=path, url=url)


def _tcp(value):
    if isinstance(value, int) and not isinstance(value, bool):
        host, port = "127.0.0.1", value
    elif isinstance(value, str):
        match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:]+):(\d+)|(\d+)", value.strip())
        if not match:
            raise ValueError(f'health tcp must be "host:port", "[::1]:port" or a port number, '
                             f"not {value!r}")
        host = match[1] or match[3] or "127.0.0.1"
        port = int(match[2] or match[4] or match[5])
        host = _host(host, value)
    else:
        raise ValueError(f'health tcp must be "host:port" or a port number, not {value!r}')
    if not 1 <= port <= 65535:
        raise ValueError(f"health tcp port must be 1..65535, not {port}")
    return host, port


def _host(host, written):
    if not host:
        raise ValueError(f"health needs a host in {written!r}")
    if host.lower() == "localhost":
        return "localhost"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"health probes need an IP address or localhost, not {host!r} in "
                         f"{written!r} (a name lookup would block the master)") from None


def _exec(value):
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"health exec: {exc}: {value!r}") from None
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        argv = list(value)
    else:
        raise ValueError('health exec must be a list of strings or a command string, '
                         f"not {value!r}")
    if not argv or not argv[0] or any("\0" in arg for arg in argv):
        raise ValueError(f"health exec needs a program to run, not {value!r}")
    return tuple(argv)


def _hostport(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- memory sizes -------------------------------------------------------------

_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}


def parse_memory(value):
    """Bytes (an int > 0) from an int or "512MB", "1.5G", "100K", "2GiB", "4096".

    Units are powers of 1024, with or without a trailing B or iB, any case.
    """
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if value > 0:
            return value
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([KMGT]?)(I?B)?\s*", value.upper())
        if match and not (match[3] == "IB" and not match[2]):
            size = int(float(match[1]) * 1024 ** _POWERS[match[2]])
            if size > 0:
                return size
    raise ValueError('must be a size > 0: bytes, or a string like "512M", "1.5G", "100K" '
                     f"(powers of 1024; B or iB may follow), not {value!r}")


def format_bytes(size):
    """600.2M, 512M, 1.5G, 900K, 12B: at most one decimal, powers of 1024."""
    for unit in ("T", "G", "M", "K"):
        scale = 1024 ** _POWERS[unit]
        if size >= scale:
            text = f"{size / scale:.1f}"
            return (text[:-2] if text.endswith(".0") else text) + unit
    return f"{size}B"
