"""Socket URLs of the `sockets` setting: parsed, checked, normalised (pure).

settings.py checks the key with check_list; supervisor/sockets.py binds
what the Endpoints describe.

URLs: tcp://HOST:PORT, tcp://[::1]:PORT, tcp://:PORT or tcp://*:PORT (all
IPv4 interfaces), udp://... alike, unix:///absolute/path, unix://relative
(to the config's folder), unix://@abstract. Ports are 1-65535.
"""

import os
import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,255}")


@dataclass(frozen=True)
class Endpoint:
    kind: str  # tcp, udp, unix
    host: str = ""  # "" is all IPv4 interfaces, as in TCPServer
    port: int = 0
    path: str = ""  # unix; a leading "\0" is the abstract namespace
    name: str = ""  # the #fragment, or ""
    url: str = ""  # normalised: what the spec keeps

    def fd_name(self, service):
        return self.name or service


def parse(url, folder=None):
    """An Endpoint from a URL; ValueError with a message that teaches."""
    if not isinstance(url, str):
        raise ValueError(f"{url!r} is not a string")  # noqa: TRY004 - a config error, as the rest
    example = '(e.g. "tcp://127.0.0.1:8000", "udp://:5300", "unix:///run/app.sock")'
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("tcp", "udp", "unix"):
        raise ValueError(f"{url!r}: the scheme must be tcp://, udp:// or unix:// {example}")
    rest, hashmark, name = rest.partition("#")
    if hashmark and not _NAME.fullmatch(name):
        raise ValueError(f"{url!r}: the name after '#' must be 1-255 of A-Z a-z 0-9 _ . @ -")
    suffix = f"#{name}" if hashmark else ""
    if scheme == "unix":
        if not rest or "\0" in rest:
            raise ValueError(f"{url!r}: give a path, e.g. unix:///run/app.sock")
        if rest.startswith("@"):
            path, shown = "\0" + rest[1:], rest
        else:
            path = os.path.normpath(os.path.join(folder or os.getcwd(), rest))
            shown = path
        if len(os.fsencode(path)) > 107:
            raise ValueError(f"{url!r}: a unix socket path is at most 107 bytes")
        return Endpoint("unix", path=path, name=name, url=f"unix://{shown}{suffix}")
    host, colon, port = rest.rpartition(":")
    if not colon or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{url!r}: give HOST:PORT with a port from 1 to 65535 {example}")
    if host.startswith("["):
        if not host.endswith("]") or len(host) < 3:
            raise ValueError(f"{url!r}: an IPv6 host is written [::1]")
        host = host[1:-1]
    elif host == "*":
        host = ""
    if any(ch in host for ch in "/?@[] ") or (":" in host and not rest.startswith("[")):
        raise ValueError(f"{url!r}: bad host {host!r}")
    shown = f"[{host}]" if ":" in host else host
    return Endpoint(scheme, host=host, port=int(port), name=name,
                    url=f"{scheme}://{shown}:{int(port)}{suffix}")


def check_list(value, folder):
    """The `sockets` key: a list of URLs, each once; returns normalised URLs."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'must be a list of socket URLs, e.g. ["tcp://127.0.0.1:8000"], '
                         f"not {value!r}")
    urls = [parse(v, folder).url for v in value]
    seen = set()
    for url in urls:
        where = url.partition("#")[0]
        if where in seen:
            raise ValueError(f"{url!r} is listed twice")
        seen.add(where)
    return tuple(urls)
