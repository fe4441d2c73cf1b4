"""Readiness, the master's side of it (the setting is readyspec.py's): the
environment that lets a command report (NOTIFY_SOCKET, WATCHDOG_USEC), and the notify
socket that commands report to.

What `ready`, `start_timeout` and `watchdog` mean, and when STARTING
becomes RUNNING, is decided in the core (core/watch.py); the probes are
probes.py's, run by the shell (master.py). Nothing here blocks the loop:
the notify socket is read non-blocking, senders are known by SO_PASSCRED.
"""

import os

from corral.core import messages as m
from corral.supervisor.notify_socket import NotifySocket

PROBE_TIMEOUT = 1.0  # s one probe may take


# -- the environment of a command ---------------------------------------------

def adjust_env(env, spec, address):
    """NOTIFY_SOCKET (and WATCHDOG_USEC) for a command that needs them,
    CORRAL_WATCHDOG_USEC for a Python worker (its runner heartbeats); never
    the master's own (systemd's), which are not the worker's to use.
    WATCHDOG_PID is left out (sd_watchdog_enabled() then accepts any pid):
    the environment is made before the fork that gives the pid."""
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CORRAL_WATCHDOG_USEC"):
        env.pop(name, None)
    usec = str(int(spec.watchdog * 1_000_000)) if spec.watchdog else None
    if not spec.is_command:
        if usec:
            env["CORRAL_WATCHDOG_USEC"] = usec
    elif address and needs_socket(spec):
        env["NOTIFY_SOCKET"] = address
        if usec:
            env["WATCHDOG_USEC"] = usec
    return env


def needs_socket(spec):
    return spec.is_command and (spec.ready == ("notify",) or bool(spec.watchdog))


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
        if not needs_socket(spec) or self._failed:
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
