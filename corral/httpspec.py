"""The [corral] http keys: where the HTTP listener listens and who may ask.

Checked at load time, on the spec side (no master code), so that a bad
address or an open listener is refused before anything starts:

    http = "127.0.0.1:9001" | "[::1]:9001" | "unix:///run/corral.http"
    http_auth = "token" (default: bearer, basic or ?token=) | "none"
    http_token = "..."  (else one is generated at start, frontends/http.py)

Listening on an address other than loopback with http_auth = "none" would
let anyone on the network stop every service: refused (there is no TLS
either: docs/dashboard.md puts a reverse proxy in front).
"""

import ipaddress

AUTH_MODES = ("token", "none")
MIN_TOKEN = 16


def parse_address(value):
    """("unix", path) or ("tcp", host, port) from an http address; ValueError."""
    if not isinstance(value, str) or not value:
        raise ValueError(f'must be "HOST:PORT" or "unix:///path", not {value!r}')
    if value.startswith("unix://"):
        path = value[len("unix://"):]
        if not path.startswith("/"):
            raise ValueError(f'a unix socket needs an absolute path ("unix:///run/x"), not {value!r}')
        return ("unix", path)
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f'must be "HOST:PORT" (a port 0-65535; 0: any free one) or "unix:///path", not {value!r}')
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        raise ValueError(f'give the host too ("127.0.0.1:{port}"), not {value!r}')
    return ("tcp", host, int(port))


def is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def check_auth(value):
    if value not in AUTH_MODES:
        raise ValueError(f"must be one of {', '.join(AUTH_MODES)}, not {value!r}")
    return value


def check_token(value):
    if not isinstance(value, str) or len(value) < MIN_TOKEN or not value.isprintable() \
            or " " in value:
        raise ValueError(f"must be a string of at least {MIN_TOKEN} printable characters "
                         "without spaces")
    return value


def refusal(address, auth):
    """Why this listener may not be opened (one line), or None."""
    if address is None:
        return None
    where = parse_address(address)
    if where[0] == "tcp" and auth == "none" and not is_loopback(where[1]):
        return (f"http = {address!r} without auth would let anyone who can reach it stop "
                'your services: keep http_auth = "token", or listen on 127.0.0.1 or a unix socket')
    return None
