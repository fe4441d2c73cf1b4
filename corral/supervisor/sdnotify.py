"""Tell systemd (or anything listening on $NOTIFY_SOCKET) how the master is doing.

The sd_notify(3) protocol: one AF_UNIX datagram per message, lines of
NAME=value. We send READY=1 once start-up has settled, STATUS=... on every
state change ("5 running, 1 starting"), RELOADING=1 (with MONOTONIC_USEC, as
Type=notify-reload wants) then READY=1 around a reload, and STOPPING=1 when
shutting down.

Invariant: this never blocks the loop and never stops supervision. The
socket is non-blocking; a datagram that cannot be sent is dropped, and the
first failure is logged once. NOTIFY_SOCKET is taken out of the master's
environment, so workers do not inherit it and talk to systemd themselves.

"Settled" means start-up can do nothing more right now: every autostart
instance is RUNNING, or at rest (FATAL, EXITED, STOPPED because it was told
to or because a dependency failed), or in BACKOFF (it failed and will retry
in the background), or waits for a dependency that is settled without
running. So a crash-looping service does not hold READY=1 back forever; the
STATUS line names the instances that are not up.
"""

import contextlib
import os
import socket
import time

from corral.core.states import State

STATUS_ORDER = (State.RUNNING, State.WAITING, State.STARTING, State.BACKOFF, State.STOPPING,
                State.FAILING, State.STOPPED, State.EXITED, State.FATAL)
NOT_UP = (State.BACKOFF, State.FATAL)
NAMES_SHOWN = 5


class Notifier:
    """Sends sd_notify datagrams to address; does nothing when address is None."""

    def __init__(self, address=None):
        if address and address.startswith("@"):
            address = "\0" + address[1:]  # an abstract socket
        self.address = address or None
        self._sock = None
        self._failed = False  # logged once
        self._log = None
        self._master = None
        self.ready = False    # READY=1 was sent for the start-up
        self._status = None   # the last STATUS= text sent

    @classmethod
    def from_environment(cls, environ=os.environ):
        """A Notifier for $NOTIFY_SOCKET, which is removed from environ."""
        return cls(environ.pop("NOTIFY_SOCKET", None))

    def send(self, *lines):
        if self.address is None:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM
                                           | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode("utf-8", "replace"), self.address)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                if self._log is not None:
                    self._log(f"cannot notify systemd at {self.address!r}: "
                              f"{exc.strerror or exc}; ignoring from now on")

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- the master's life -------------------------------------------------

    def watch(self, master):
        """Follow master's state changes (call after start_autostart)."""
        if self.address is None:
            return
        self._master, self._log = master, master.log
        master.event_topic.subscribe(self._changed)
        self._changed()

    @contextlib.asynccontextmanager
    async def reloading(self):
        """Around a reload: RELOADING=1, then READY=1 (only once start-up was READY)."""
        was_ready = self.ready
        if was_ready:
            usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")
            self._status = "reloading"
        try:
            yield
        finally:
            if was_ready:
                self._changed(first=("READY=1",))

    def stopping(self):
        if self._master is None:
            self.send("STOPPING=1")
        self._changed(first=("STOPPING=1",))

    def _changed(self, items=None, first=()):
        master = self._master
        if master is None:
            return
        lines = list(first)
        if not self.ready and not master.shutting_down and settled(master):
            self.ready = True
            lines.append("READY=1")
        text = status_text(master, self.ready)
        if text != self._status:
            self._status = text
            lines.append(f"STATUS={text}")
        if lines:
            self.send(*lines)


def settled(master):
    """Start-up can do no more for now (see the module's docstring)."""
    def done(record):
        if record.state is State.WAITING:
            return any(dep.state is not State.RUNNING and done(dep)
                       for name in (*record.spec.after, *record.spec.order_after)
                       for dep in master.instances_of(name))
        return record.state not in (State.STARTING, State.STOPPING)

    return all(done(r) for r in master.records.values() if r.spec.autostart)


def status_text(master, ready):
    """'5 running, 1 starting', with the instances that are not up named."""
    records = list(master.records.values())
    counts = {state: 0 for state in STATUS_ORDER}
    for record in records:
        counts[record.state] += 1
    text = ", ".join(f"{n} {state.value.lower()}" for state, n in counts.items() if n)
    text = text or "no services"
    down = [r.name for r in records if r.state in NOT_UP]
    if down:
        more = f" and {len(down) - NAMES_SHOWN} more" if len(down) > NAMES_SHOWN else ""
        text += "; not up: " + ", ".join(down[:NAMES_SHOWN]) + more
    if master.shutting_down:
        return "stopping: " + text
    return text if ready else "starting: " + text
