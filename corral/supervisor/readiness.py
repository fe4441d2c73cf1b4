"""Readiness and the watchdog: when a STARTING instance becomes RUNNING, and
what happens to a RUNNING one that stops answering.

    ready = (none)          command: RUNNING once spawned; Python worker: once
                            startService finished (READY=1 on its notify pipe)
    ready = "notify"        command: once it sends READY=1 to $NOTIFY_SOCKET
                            (notify_socket.py); Python worker: as with none
    ready = {tcp = PORT}    once a TCP connect to 127.0.0.1:PORT (or
            {tcp = "H:P"}   HOST:PORT) succeeds; retried every PROBE_INTERVAL
    ready = {http = URL}    once a GET of the http:// URL answers 200..399
    ready = {seconds = N}   once it has stayed up N seconds (supervisord's
                            startsecs)

A Python worker with tcp/http/seconds is ready when both its startService
has finished and the check passed. An instance not ready `start_timeout`
seconds after its spawn has failed its start: its process group and family
get SIGKILL and, when the exit comes back, the restart policy decides as
for any exit before ready (an exit code 0 counts as a failure there).
`watchdog = S`: a RUNNING instance that sent no WATCHDOG=1 for S seconds
is killed the same way; Python workers send it from their event loop on
their own (workers/runner.py), so a loop blocked by a stuck callback stops
the heartbeat. SIGKILL and not the stop signal: an instance that missed its
deadline is not trusted to stop by itself, and the policy restarts it.

Invariants:
- The master's mark_ready() is the only way to RUNNING; this module only
  decides when. A kill here changes no state: the exit comes back through
  the pidfd like any other.
- Nothing blocks the loop: probes are non-blocking connects with a timeout,
  to addresses that need no name lookup (probes.py, shared with `health`).
- No timer runs for what nothing watches: a start timeout exists only while
  an instance is STARTING, a watchdog timer only for RUNNING instances that
  set `watchdog`. A heartbeat only stores the time; the timer, when it fires
  early, re-arms itself at last heartbeat + watchdog.
"""

import asyncio
import math
import os
import signal
from collections.abc import Mapping

from corral import probes
from corral.supervisor.notify_socket import NotifySocket
from corral.supervisor.states import State

PROBE_INTERVAL = 0.05  # s between two probes of a starting instance
PROBE_TIMEOUT = 1.0  # s one probe may take
READY_FORMS = ('"notify", {tcp = PORT}, {tcp = "HOST:PORT"}, '
               '{http = "http://HOST:PORT/PATH"} or {seconds = N}')


# -- the `ready` setting (settings.py checks it with this) --------------------

def parse_ready(value):
    """("notify",), ("tcp", Target), ("http", Target) or ("seconds", n); ValueError.

    Targets are probes.Target: probes.py parses and probes them, as for `health`."""
    if value == "notify":
        return ("notify",)
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, arg),) = value.items()
        if kind == "tcp":
            return ("tcp", probes.parse_tcp(arg))
        if kind == "http":
            return ("http", probes.parse_http(arg))
        if kind == "seconds":
            if isinstance(arg, bool) or not isinstance(arg, (int, float)) \
                    or not math.isfinite(arg) or arg <= 0:
                raise ValueError(f"seconds must be a number > 0, not {arg!r}")
            return ("seconds", float(arg))
    raise ValueError(f"must be {READY_FORMS}, not {value!r}")


def describe(ready):
    """How a ready setting reads in logs and status."""
    if ready is None or ready[0] == "notify":
        return "READY=1"
    if ready[0] in ("tcp", "http"):
        return ready[1].describe()
    return f"{ready[1]:g} s up"


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

class _Watch:
    """What is awaited of one process of one record."""

    def __init__(self, child, notified, checked):
        self.child = child
        self.notified = notified  # READY=1 came (or is not awaited)
        self.checked = checked  # the tcp/http/seconds check passed (or there is none)
        self.how = ""  # what made it ready, for the log
        self.problem = ""  # the last probe failure, for the start timeout's message
        self.probe = None  # asyncio.Task of a tcp/http probe
        self.timers = []  # start timeout, seconds
        self.watchdog = None  # handle, while RUNNING with a watchdog
        self.last_beat = 0.0  # loop time of the last WATCHDOG=1
        self.stopping = False  # it said STOPPING=1: no more heartbeats expected
        self.killed = False

    def cancel(self):
        for handle in [*self.timers, self.watchdog, self.probe]:
            if handle is not None:
                handle.cancel()
        self.timers, self.watchdog, self.probe = [], None, None


class Readiness:
    """Per master: the notify socket, probes, start timeouts and watchdogs."""

    def __init__(self, master):
        self.master = master
        self.socket = None  # NotifySocket, opened for the first command that needs it
        self._watches = {}  # Record -> _Watch, while its process lives and is watched
        self._pids = {}  # main pid -> Record, for the same records
        self._socket_failed = False

    @property
    def loop(self):
        return self.master.loop

    def before_spawn(self, spec):
        """Open the notify socket if spec's command needs it; tell the spawner."""
        if not needs_socket(spec) or self._socket_failed:
            return
        if self.socket is None:
            sock = NotifySocket(self.loop, self._datagram)
            try:
                sock.open()
            except OSError as exc:
                self._socket_failed = True
                self.master.log(f"cannot create the notify socket: {exc}; "
                                "services with ready = \"notify\" or watchdog cannot report")
                return
            self.socket = sock
            self.master.spawner.notify_socket = sock.address
        if spec.user is not None and spec.user != os.geteuid():
            self.socket.share()

    def spawned(self, record, child):
        """record is STARTING with child: make it RUNNING now, or arrange when."""
        spec = record.spec
        kind = spec.ready[0] if spec.ready else None
        watch = _Watch(child, notified=child.kind == "command" and kind != "notify",
                       checked=kind in (None, "notify"))
        if watch.notified and watch.checked and not spec.watchdog:
            self.master.mark_ready(record)  # a plain command: RUNNING once spawned
            return
        self._watches[record] = watch
        self._pids[child.pid] = record
        if not (watch.notified and watch.checked):
            if spec.ready is not None:
                record.description += f"; waiting for {describe(spec.ready)}"
            if spec.start_timeout:
                watch.timers.append(self.loop.call_later(
                    spec.start_timeout, self._start_timed_out, record, watch))
        if kind == "seconds":
            watch.timers.append(self.loop.call_later(spec.ready[1], self._up_long_enough,
                                                     record, watch))
        self._advance(record, watch)

    def _advance(self, record, watch):
        if record.child is not watch.child or record.state is not State.STARTING:
            return
        if not watch.notified:
            return
        if not watch.checked:
            if record.spec.ready[0] in ("tcp", "http") and watch.probe is None:
                watch.probe = self.loop.create_task(self._probe(record, watch))
            return
        for handle in watch.timers:
            handle.cancel()
        watch.timers = []
        if watch.child.kind == "command" and record.spec.ready is None:
            how = None  # plain command: no line
        elif record.spec.ready is None:
            how = ""  # Python worker: "ready", as always
        else:
            how = watch.how or describe(record.spec.ready)
        if how is not None:
            self.master.log("ready" + (f" ({how})" if how else ""), record)
        self.master.mark_ready(record)
        if record.state is State.RUNNING and record.spec.watchdog:
            watch.last_beat = self.loop.time()
            watch.watchdog = self.loop.call_at(watch.last_beat + record.spec.watchdog,
                                               self._watchdog_due, record, watch)

    def _up_long_enough(self, record, watch):
        watch.checked = True
        watch.how = f"up {record.spec.ready[1]:g} s"
        self._advance(record, watch)

    async def _probe(self, record, watch):
        target = record.spec.ready[1]
        probe = probes.probe_tcp if target.kind == "tcp" else probes.probe_http
        while record.child is watch.child and record.state is State.STARTING:
            ok, detail = await probe(target, PROBE_TIMEOUT)
            if ok:  # "tcp 127.0.0.1:5432 answers", "http://127.0.0.1/ answered 200"
                watch.probe = None
                watch.checked = True
                watch.how = target.describe() + (" answers" if target.kind == "tcp"
                                                 else f" answered {detail}")
                self._advance(record, watch)
                return
            watch.problem = detail
            await asyncio.sleep(PROBE_INTERVAL)

    # -- what workers say ----------------------------------------------------

    def message(self, record, child, line):
        """One sd_notify line from child of record (notify pipe or socket)."""
        if record.child is not child:
            return
        watch = self._watches.get(record)
        if line == "READY=1":
            if watch is not None and not watch.notified:
                watch.notified = True
                self._advance(record, watch)
        elif line.startswith("STATUS="):
            record.status_text = line[len("STATUS="):] or None
        elif line == "WATCHDOG=1":
            if watch is not None:
                watch.last_beat = self.loop.time()
        elif line == "WATCHDOG=trigger":
            if watch is not None and record.state is State.RUNNING:
                self._kill(record, watch, "asked for its watchdog to fire (WATCHDOG=trigger): "
                                          "killing")
        elif line == "STOPPING=1" and watch is not None and not watch.stopping:
            watch.stopping = True
            self.master.log("says it is stopping (STOPPING=1)", record)

    def _datagram(self, pid, lines):
        record = self._sender(pid)
        if record is not None:
            for line in lines:
                self.message(record, record.child, line)

    def _sender(self, pid):
        """The record whose process is pid, or whose process group pid is in."""
        record = self._pids.get(pid)
        if record is None:
            try:
                record = self._pids.get(os.getpgid(pid))
            except OSError:
                return None
        return record if record is not None and record.child is not None else None

    # -- deadlines -------------------------------------------------------------

    def _start_timed_out(self, record, watch):
        if record.child is not watch.child or record.state is not State.STARTING:
            return
        spec = record.spec
        if watch.notified:
            waited = describe(spec.ready)
        else:
            waited = "READY=1" if watch.child.kind == "command" else "startService"
        problem = f": {watch.problem}" if watch.problem and watch.notified else ""
        self._kill(record, watch, f"not ready {spec.start_timeout:g} s after its spawn "
                                  f"(start_timeout; waiting for {waited}{problem}): killing")

    def _watchdog_due(self, record, watch):
        watch.watchdog = None
        if record.child is not watch.child or record.state is not State.RUNNING \
                or watch.stopping or watch.killed:
            return
        limit = record.spec.watchdog
        silent = self.loop.time() - watch.last_beat
        if silent < limit:
            watch.watchdog = self.loop.call_at(watch.last_beat + limit,
                                               self._watchdog_due, record, watch)
            return
        self._kill(record, watch, f"no watchdog heartbeat for {silent:.1f} s: "
                                  f"killing (watchdog = {limit:g})")

    def _kill(self, record, watch, why):
        if watch.killed:
            return
        watch.killed = True
        watch.cancel()
        self.master.log(why, record)
        watch.child.signal_family(signal.SIGKILL)

    def gone(self, record, exit):
        """record's process exited (or never came): forget it; say if it failed its start."""
        watch = self._watches.pop(record, None)
        if watch is not None:
            watch.cancel()
            self._pids.pop(watch.child.pid, None)
        if record.state is State.STARTING and record.spec.ready is not None \
                and exit.error is None and not (watch is not None and watch.killed):
            self.master.log(f"{exit} before it was ready: a failed start", record)

    def close(self):
        for watch in self._watches.values():
            watch.cancel()
        self._watches.clear()
        self._pids.clear()
        if self.socket is not None:
            self.socket.close()
            self.socket = None
