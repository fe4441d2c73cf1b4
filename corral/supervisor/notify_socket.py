"""The master's own NOTIFY_SOCKET: where commands say READY=1, STATUS=..., WATCHDOG=1.

systemd's sd_notify(3) protocol, served rather than spoken (sdnotify.py
speaks it to systemd): one AF_UNIX SOCK_DGRAM socket per master, each
datagram one or more NAME=value lines. Any sd_notify client works
unchanged: libsystemd's sd_notify(), `systemd-notify --ready` (which needs
NotifyAccess=all under systemd, and here needs nothing), python-sdnotify, or
four lines of socket code.

Who sent a datagram is what the kernel says, never what the message says:
SO_PASSCRED makes it stamp every datagram with the sender's pid
(SCM_CREDENTIALS), and readiness.py matches that pid to an instance (its
main process, or any process of its process group). A datagram without
credentials, or from a pid that is no worker's, is dropped.

Where it lives: `notify` in a fresh directory from tempfile.mkdtemp (mode
0700, owned by the master after any privilege drop: it is created on first
use, not at start). When a service runs as another user (`user`), the
directory becomes 0711 and the socket 0666 so that its worker can send; the
pid check above is then the only gate, as with systemd's own notify socket.
The directory goes when the master stops.

Invariant: never blocks the loop. The socket is non-blocking, read only
when the loop says it is readable, and at most MAX_PER_WAKE datagrams per
wake-up, so that a worker flooding it cannot starve supervision.
"""

import array
import os
import shutil
import socket
import tempfile

MAX_DATAGRAM = 4096
MAX_PER_WAKE = 64
UCRED = array.array("i", [0, 0, 0]).itemsize * 3  # struct ucred: pid, uid, gid
SUN_PATH_MAX = 107


class NotifySocket:
    """A bound, non-blocking sd_notify socket on the loop; deliver(pid, lines)."""

    def __init__(self, loop, deliver):
        self.loop = loop
        self.deliver = deliver
        self.dir = None
        self.address = None
        self._sock = None
        self._shared = False

    def open(self):
        """Create the directory and the socket; raises OSError."""
        folder = tempfile.mkdtemp(prefix="corral-notify-")
        if len(folder) + len("/notify") > SUN_PATH_MAX:  # a long $TMPDIR
            shutil.rmtree(folder, ignore_errors=True)
            folder = tempfile.mkdtemp(prefix="corral-notify-", dir="/tmp")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM
                             | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            address = os.path.join(folder, "notify")
            sock.bind(address)
            os.chmod(address, 0o600)
        except OSError:
            sock.close()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.dir, self.address, self._sock = folder, address, sock
        self.loop.add_reader(sock.fileno(), self._readable)

    def hand_over(self):
        """{fd, dir, address, shared} for `corral upgrade`: datagrams sent
        meanwhile wait in the socket for the next image's adopt()."""
        return {"fd": self._sock.fileno(), "dir": self.dir, "address": self.address,
                "shared": self._shared}

    def adopt(self, held):
        """Serve the socket of hand_over(), from the image before this one."""
        self.dir, self.address, self._shared = held["dir"], held["address"], held["shared"]
        self._sock = socket.socket(fileno=held["fd"])
        self.loop.add_reader(self._sock.fileno(), self._readable)

    def share(self):
        """Let workers of other users send (dir 0711, socket 0666)."""
        if self._sock is not None and not self._shared:
            os.chmod(self.dir, 0o711)
            os.chmod(self.address, 0o666)
            self._shared = True

    def _readable(self):
        for _ in range(MAX_PER_WAKE):
            try:
                data, ancillary, _flags, _addr = self._sock.recvmsg(
                    MAX_DATAGRAM, socket.CMSG_SPACE(UCRED))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            pid = _sender(ancillary)
            if pid is None or not data:
                continue
            lines = [line for line in data.decode("utf-8", "replace").split("\n") if line]
            if lines:
                self.deliver(pid, lines)

    def close(self):
        if self._sock is not None:
            try:
                self.loop.remove_reader(self._sock.fileno())
            except (ValueError, RuntimeError):
                pass  # the loop is already closed
            self._sock.close()
            self._sock = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _sender(ancillary):
    """The sender's pid from SCM_CREDENTIALS, or None."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= UCRED:
            pid = array.array("i", data[:UCRED])[0]
            return pid if pid > 0 else None
    return None
