"""[unix_http_server], [inet_http_server] and [supervisorctl]: checked settings.

corral does not serve XML-RPC here: these become a plain XmlRpc value on
Config.master.xmlrpc for the XML-RPC frontend to serve, already checked
(paths, modes, owners, ports, {SHA} passwords, and never a non-loopback
port without a password), so that a bad value is a load error with its
line, like any other.
"""

import ipaddress
import os
import re
from dataclasses import dataclass

from corral import privileges
from corral.loaders.supervisord.expand import expand

UNIX_KEYS = ("file", "chmod", "chown", "username", "password")
INET_KEYS = ("port", "username", "password")
CTL_KEYS = ("serverurl", "username", "password", "prompt", "history_file")


@dataclass(frozen=True)
class UnixHttpServer:
    path: str
    mode: int = 0o700
    owner: tuple = None  # (uid, gid), or None: the master's
    username: str = None
    password: str = None  # as written: plain, or "{SHA}" + 40 hex digits


@dataclass(frozen=True)
class InetHttpServer:
    host: str  # "127.0.0.1" unless the file says otherwise; "" is every interface
    port: int
    username: str = None
    password: str = None


@dataclass(frozen=True)
class Supervisorctl:
    serverurl: str = None
    username: str = None
    password: str = None
    prompt: str = "supervisor"
    history_file: str = None


@dataclass(frozen=True)
class XmlRpc:
    """What an XML-RPC frontend needs from a supervisord.conf."""

    unix: UnixHttpServer = None
    inet: InetHttpServer = None
    ctl: Supervisorctl = None
    identifier: str = "supervisor"
    # (group name, priority, (corral service names...)) in start order:
    # supervisord's process groups, whose full names are "group:process".
    groups: tuple = ()
    # (corral service name, its [program:x] priority): getAllConfigInfo's process_prio.
    priorities: tuple = ()
    # [supervisord] settings of the master that `corral run` options carry
    # (--uid, --umask, --rundir, -d), kept for the frontend and for convert.
    master_user: str = None
    master_umask: int = None
    master_directory: str = None
    nodaemon: bool = True
    minfds: int = None


def _text(section, key, default=None):
    if key not in section.values:
        return default
    return expand(section, key, {}) or default


def _auth(section):
    username, password = _text(section, "username"), _text(section, "password")
    if (username is None) != (password is None):
        key = "password" if password is None else "username"
        raise section.error("username and password go together; give both or neither",
                            key if key in section.values else None)
    if password and password.startswith("{SHA}") and \
            not re.fullmatch(r"[0-9a-fA-F]{40}", password[5:]):
        raise section.error("a {SHA} password is {SHA} and 40 hex digits (the SHA-1 of "
                            "the password)", "password")
    return username, password


def unix_server(section, folder):
    path = _text(section, "file")
    if not path:
        raise section.error("needs 'file' (the socket's path, e.g. /var/run/supervisor.sock)")
    path = os.path.normpath(os.path.join(folder, os.path.expanduser(path)))
    if not os.path.isdir(os.path.dirname(path)):
        raise section.error(f"the folder of {path!r} does not exist", "file")
    if len(os.fsencode(path)) > 107:
        raise section.error("a unix socket path is at most 107 bytes", "file")
    mode = 0o700
    if "chmod" in section.values:
        try:
            mode = privileges.parse_umask(_text(section, "chmod"))
        except ValueError as exc:
            raise section.error(f"{exc} (an octal mode like 0700)", "chmod") from None
    owner = None
    if "chown" in section.values:
        user, _, group = _text(section, "chown").partition(":")
        try:
            uid = privileges.user_id(user)
            gid = privileges.group_id(group) if group else privileges.primary_group(uid)
        except ValueError as exc:
            raise section.error(str(exc), "chown") from None
        owner = (uid, gid)
    return UnixHttpServer(path, mode, owner, *_auth(section))


def inet_server(section):
    text = _text(section, "port")
    if not text:
        raise section.error("needs 'port' (e.g. 127.0.0.1:9001)")
    host, colon, port = text.rpartition(":")
    if not colon:
        host = "127.0.0.1"  # a bare port: loopback, not every interface
    elif host == "*":
        host = ""
    host = host.strip("[]")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise section.error(f"must be HOST:PORT or PORT with a port from 1 to 65535, not "
                            f"{text!r}", "port")
    if host not in ("", "localhost"):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise section.error(f"the host must be an IP address, localhost or *, not {host!r} "
                                "(the master never looks names up)", "port") from None
    username, password = _auth(section)
    loopback = host == "localhost" or (host and ipaddress.ip_address(host).is_loopback)
    if not loopback and not password:
        raise section.error(f"{text!r} is reachable from other hosts: set username and "
                            "password, or listen on 127.0.0.1", "port")
    return InetHttpServer(host, int(port), username, password)


def supervisorctl(section):
    url = _text(section, "serverurl")
    if url and not url.startswith(("unix://", "http://")):
        raise section.error(f"must be unix:///PATH or http://HOST:PORT, not {url!r}",
                            "serverurl")
    username, password = _text(section, "username"), _text(section, "password")
    return Supervisorctl(url, username, password, _text(section, "prompt", "supervisor"),
                         _text(section, "history_file"))
