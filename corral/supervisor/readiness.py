"""Readiness, the master's side of it: the notify socket that commands report
to (the setting is readyspec.py's; the environment that points a command
at it, NOTIFY_SOCKET and WATCHDOG_USEC, is its kind's: kinds.py).

What `ready`, `start_timeout` and `watchdog` mean, and when STARTING
becomes RUNNING, is decided in the core (core/watch.py); the probes are
probes.py's, run by the shell (master.py). Nothing here blocks the loop:
the notify socket is read non-blocking, senders are known by SO_PASSCRED.
"""

import os

from corral.core import messages as m
from corral.supervisor.notify_socket import NotifySocket

PROBE_TIMEOUT = 1.0  # s one probe may take


# -- the master side ------------------------------------------------------------

class CommandNotify:
    """The notify socket of commands: opened for the first one that needs it;
    each datagram becomes a Notified input for the instance that sent it."""

    def __init__(self, master):
        self.master = master
        self.socket = None
        self._failed = False

    def before_spawn(self, spec):
        """Open the notify socket if spec's command needs it; tell the spawner."""
        if not spec.kind.needs_notify_socket(spec) or self._failed:
            return
        if self.socket is None:
            sock = NotifySocket(self.master.loop, self._datagram)
            try:
                sock.open()
            except OSError as exc:
                self._failed = True
                self.master.log(f"cannot create the notify socket: {exc}; "
                                "services with ready = \"notify\" or watchdog cannot report")
                return
            self.socket = sock
            self.master.spawner.notify_socket = sock.address
        if spec.user is not None and spec.user != os.geteuid():
            self.socket.share()

    def hand_over(self):
        """The open notify socket for `corral upgrade` (notify_socket.py), or None."""
        return None if self.socket is None else self.socket.hand_over()

    def adopt(self, held):
        """Take the notify socket of the image before this one (its commands know its path)."""
        sock = NotifySocket(self.master.loop, self._datagram)
        sock.adopt(held)
        self.socket = sock
        self.master.spawner.notify_socket = sock.address

    def _datagram(self, pid, lines):
        record = self._sender(pid)
        if record is not None:
            for line in lines:
                self.master.feed(m.Notified(record.name, record.pid, line))

    def _sender(self, pid):
        """The record whose process is pid, or whose process group pid is in."""
        record = self.master.record_of(pid)
        if record is None:
            try:
                record = self.master.record_of(os.getpgid(pid))
            except OSError:
                return None
        return record

    def close(self):
        if self.socket is not None:
            self.socket.close()
            self.socket = None
