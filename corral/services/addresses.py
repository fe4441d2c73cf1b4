"""Bind a server's socket: IPv4/IPv6 by interface and port, UNIX paths with
their stale files; errors that name the server and the address.

Blocking calls on purpose: they run in privilegedStartService, in the master
before a worker starts (or in a worker before its loop serves).
"""

import errno
import os
import socket
import stat


def _inet_address(interface, port, kind):
    """(family, sockaddr) to bind: "" is all IPv4 interfaces, as in Twisted."""
    if interface == "":
        return socket.AF_INET, ("0.0.0.0", port)
    infos = socket.getaddrinfo(interface, port, socket.AF_UNSPEC, kind, 0, socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def bind_inet(owner, interface, port, kind, backlog=None):
    family, sockaddr = _inet_address(interface, port, kind)
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        if backlog is not None:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"{owner!r} cannot bind {sockaddr[0]}:{sockaddr[1]}: "
                                 f"{exc.strerror}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


def _is_abstract(path):
    return path[:1] in ("\0", b"\0")


def _remove_stale(owner, path, kind):
    """Unlink a socket file nobody listens on any more; refuse one that is in use."""
    if _is_abstract(path):
        return
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return  # not a socket: bind will say the address is in use
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, kind) as probe:
        probe.setblocking(False)
        err = probe.connect_ex(path)
    if err in (0, errno.EAGAIN):
        raise OSError(errno.EADDRINUSE, f"{owner!r}: {path!r} is in use by a live socket")
    if err == errno.ECONNREFUSED:  # nobody holds it
        os.unlink(path)


def bind_unix(owner, path, kind, mode, backlog=None):
    _remove_stale(owner, path, kind)
    sock = socket.socket(socket.AF_UNIX, kind)
    try:
        sock.bind(path)
        if not _is_abstract(path):
            os.chmod(path, mode)
        if backlog is not None:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"{owner!r} cannot bind {path!r}: {exc.strerror}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


class UnixPathMixin:
    def _where(self):
        return repr(self.path)

    def closeSocket(self):
        held = self.socket is not None and self.socket.fileno() != -1
        super().closeSocket()
        if held and not _is_abstract(self.path):
            try:
                if stat.S_ISSOCK(os.stat(self.path).st_mode):
                    os.unlink(self.path)
            except FileNotFoundError:
                pass
