"""The master: the only code that changes supervision state.

One asyncio loop in one thread. Everything that happens (a child exited, a
worker said READY, a backoff delay ended, a stop timed out, a signal, a
control request) arrives as a callback on that loop and ends in _set(),
which moves a Record through the transition table, logs and publishes the
change, wakes the waiters, and lets _pump() take the next step of the
start order or of the shutdown. Nothing here blocks: spawning is a fork,
pipes and pidfds are read only when the loop says they are ready.
"""

import asyncio
import collections
import os
import signal
import time

from corral import config as config_module
from corral.clock import Clock
from corral.supervisor import health, policy, readiness, report, sdnotify
from corral.supervisor.logs import LogHub
from corral.supervisor.operations import Operations
from corral.supervisor.record import Record
from corral.supervisor.sockets import SocketKeeper
from corral.supervisor.spawn import Spawner, SpawnError
from corral.supervisor.states import ACTIVE, AT_REST, HAS_PROCESS, STARTABLE, Event, State

LEFTOVER_POLL = 0.02  # s between checks for a stopped worker's leftover processes
EVENT_RING = 1000


class Master(Operations):
    def __init__(self, config, *, clock=None, spawner=None, loader=config_module.load,
                 console=None, color=False):
        self.config = config
        self.clock = clock or Clock()
        self.spawner = spawner or Spawner()
        self.loader = loader
        self.console = console
        self.color = color
        self.records = {}  # instance name -> Record, in config order
        self.shutting_down = False
        self.events = collections.deque(maxlen=EVENT_RING)
        self.event_followers = {}
        self._watchers = []  # (check, future): resolved when check() holds
        self._pump_scheduled = False
        self.loop = None
        self.loghub = None
        self.done = None
        self.usage = report.Usage()
        self.health = health.HealthMonitor(self)  # health probes, max_memory
        self.readiness = readiness.Readiness(self)  # `ready`, start_timeout, watchdog
        self._reload_lock = asyncio.Lock()
        self.notifier = sdnotify.Notifier()  # run.py sets one for $NOTIFY_SOCKET
        self.sockets = SocketKeeper()  # listening sockets that outlive workers
        for spec in config.services:
            self.add_service(spec)

    # -- set-up and main ---------------------------------------------------

    def attach_loop(self, loop):
        """Bind to the running loop; open the logs."""
        self.loop = loop
        self.done = loop.create_future()
        master = self.config.master
        self.loghub = LogHub(loop, console=self.console, color=self.color,
                             logfile=master.logfile, log_dir=master.log_dir,
                             max_bytes=master.log_max_bytes, backups=master.log_backups)
        self.loghub.set_rotation(self.config.services)
        loop.set_exception_handler(self._on_loop_error)

    def start_autostart(self):
        self.log(f"corral {_version()} starting {len(self.records)} instance(s), pid {os.getpid()}")
        for record in self.records.values():
            if record.spec.autostart:
                self.request_start(record)

    def log(self, text, record=None):
        """A line of the master's; about record: "NAME: text", filed under its
        service too (its ring, its file in log_dir, `corral logs SERVICE`)."""
        if record is None:
            self.loghub.emit(text, pid=os.getpid())
        else:
            self.loghub.emit(f"{record.name}: {text}", service=record.service, pid=os.getpid())

    def _on_loop_error(self, loop, context):
        # A bug must not take supervision down: report it and go on.
        exc = context.get("exception")
        self.log(f"internal error: {context.get('message')}: {exc!r}")

    def add_service(self, spec):
        for index in range(spec.numprocs):
            record = Record(spec, index)
            self.records[record.name] = record

    # -- the one place where state changes ---------------------------------

    def _set(self, record, event, description=""):
        old = record.move(event)
        record.description = description
        self.health.changed(record, old)  # probes run only while RUNNING
        item = {
            "time": time.time(), "name": record.name, "service": record.service,
            "from": old.value, "to": record.state.value, "pid": record.pid,
            "exit": str(record.last_exit) if record.last_exit else None,
        }
        self.events.append(item)
        for follower in list(self.event_followers.values()):
            follower([item])
        self._wake()
        self._schedule_pump()

    def _schedule_pump(self):
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self.loop.call_soon(self._pump)

    def _pump(self):
        """Take every step that the current states allow."""
        self._pump_scheduled = False
        if self.shutting_down:
            self._pump_shutdown()
            return
        for record in self.records.values():
            if not record.wanted or record.state not in STARTABLE:
                continue
            if record.state is State.BACKOFF:
                continue  # its timer restarts it
            blocker = self._failed_dependency(record)
            if blocker is not None:
                record.wanted = False
                record.description = f"not started: {blocker}"
                self.log(f"not started: {blocker}", record)
                self._wake()
            elif self._dependencies_running(record):
                record.wanted = False
                self._spawn(record, Event.START)

    def _pump_shutdown(self):
        for record in self.records.values():
            if record.state in (State.STARTING, State.RUNNING) and not self._dependents_alive(record):
                self.stop_record(record)
        if all(r.state in AT_REST for r in self.records.values()) and not self.done.done():
            self.log("all services stopped")
            self.sockets.close_all()
            self.done.set_result(0)

    def _wake(self):
        """Resolve every wait_for() whose condition now holds."""
        for entry in list(self._watchers):
            check, future = entry
            if future.done():
                self._watchers.remove(entry)
            elif check():
                self._watchers.remove(entry)
                future.set_result(None)

    async def wait_for(self, check):
        if check():
            return
        future = self.loop.create_future()
        self._watchers.append((check, future))
        try:
            await future
        finally:
            if (check, future) in self._watchers:
                self._watchers.remove((check, future))

    # -- dependencies ------------------------------------------------------

    def instances_of(self, service):
        return [r for r in self.records.values() if r.service == service]

    def _dependencies_running(self, record):
        return all(dep.state is State.RUNNING
                   for name in record.spec.after for dep in self.instances_of(name))

    def _failed_dependency(self, record):
        for name in record.spec.after:
            for dep in self.instances_of(name):
                if dep.state in AT_REST and not dep.wanted:
                    return f"{dep.name} is {dep.state}"
        return None

    def _dependents_alive(self, record):
        return any(record.service in other.spec.after and other.state in HAS_PROCESS
                   for other in self.records.values())

    # -- starting ----------------------------------------------------------

    def request_start(self, record, fresh=False):
        """Ask for record to run, its `after` services first."""
        if fresh:  # an operator's start forgets the restart history
            record.history = policy.History()
        for name in record.spec.after:
            for dep in self.instances_of(name):
                if dep.state not in ACTIVE and not dep.wanted:
                    self.request_start(dep, fresh)
        if record.state in (State.STARTING, State.RUNNING):
            return
        if record.state is State.BACKOFF:  # an operator wants it now, not later
            self._spawn(record, Event.START)  # (not left `wanted`: it is started)
            return
        record.wanted = True
        waiting = [n for n in record.spec.after
                   if any(d.state is not State.RUNNING for d in self.instances_of(n))]
        if waiting:
            record.description = "waiting for " + ", ".join(waiting)
        self._schedule_pump()

    def _spawn(self, record, event):
        record.cancel_timer()
        record.last_exit = None if event is Event.START else record.last_exit
        fds = self.sockets.prepare(self, record, event)  # bound once, kept (sockets.py)
        if fds is None:
            return  # FATAL: its sockets cannot be bound
        self.readiness.before_spawn(record.spec)  # its NOTIFY_SOCKET, if it needs one
        try:
            child = self.spawner.spawn(record.spec, record.name, record.index, fds)
        except SpawnError as exc:
            record.started_at = self.clock.now()
            self._set(record, event, "spawn failed")
            self.log(f"{exc}", record)
            self._exited(record, policy.Exit(error=str(exc)))
            return
        record.child = child
        record.started_at = self.clock.now()
        record.started_wall = time.time()
        record.status_text = None
        self.loghub.attach(child.out_fd, record.name, record.service, child.pid, "out")
        self.loghub.attach(child.err_fd, record.name, record.service, child.pid, "err")
        self.loop.add_reader(child.pidfd, self._on_child_exit, record, child)
        if child.notify_fd is not None:
            self.loop.add_reader(child.notify_fd, self._on_notify, record, child)
        self._set(record, event, f"spawned, pid {child.pid}")
        self.log(f"spawned, pid {child.pid}", record)
        self.readiness.spawned(record, child)  # RUNNING now, or when `ready` says

    def mark_ready(self, record):
        """STARTING -> RUNNING, when readiness.py says its process is ready."""
        self._set(record, Event.READY)

    def _on_notify(self, record, child):
        try:
            data = os.read(child.notify_fd, 65536)  # a whole pipe: no line cut in two
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.loop.remove_reader(child.notify_fd)
            os.close(child.notify_fd)
            child.notify_fd = None
            return
        for line in data.decode("utf-8", "replace").splitlines():
            self.readiness.message(record, child, line)  # READY=1, STATUS=, WATCHDOG=1

    # -- exits -------------------------------------------------------------

    def _on_child_exit(self, record, child):
        exit = child.poll()
        if exit is None:
            return  # not reaped yet: the pidfd stays readable, we come back
        self.loop.remove_reader(child.pidfd)
        child.close()
        self.loghub.drain(child.pid)
        if child.notify_fd is not None:
            self._on_notify(record, child)  # a READY=1 written just before exiting
        if record.child is not child:
            return
        self._exited(record, exit)

    def _exited(self, record, exit):
        """The record's process is gone (or never came): decide what next."""
        child = record.child
        record.last_exit = exit
        self.readiness.gone(record, exit)  # its timers and probes end here
        if record.state is State.STOPPING:
            if child is not None and child.family_alive():
                self.log(f"{exit}; waiting for the rest of its process group", record)
                self._await_leftovers(record)
                return
            self._finish_stop(record)
            return
        record.cancel_timer()
        if child is not None:  # no orphans left behind a crash; it scans /proc,
            # so it runs once the restart's timer is set, during the backoff
            # (callbacks run in order: before the restart, even after 0 s).
            self.loop.call_soon(child.signal_family, signal.SIGKILL)
        record.child = None
        if self.shutting_down:
            self._set(record, Event.FINISHED, f"{exit} during shutdown")
            self.log(f"{exit} during shutdown", record)
            return
        self._decide(record, exit, failed=record.state is State.STARTING
                     and record.spec.ready is not None)

    def _decide(self, record, exit, failed):
        """An unasked exit (or a stop for failing health): the policy decides."""
        decision, record.history = policy.decide(
            record.spec, record.history, exit, record.started_at, self.clock.now(),
            failed=failed)
        if isinstance(decision, policy.Restart):
            record.restarts += 1
            self._set(record, Event.CRASHED, f"restarting in {decision.delay:.2f} s")
            self.log(f"{decision.reason}", record)
            record.timer = self.loop.call_later(decision.delay, self._retry, record)
        elif isinstance(decision, policy.GiveUp):
            self._set(record, Event.GAVE_UP, decision.reason)
            self.log(f"FATAL: {decision.reason}", record)
        else:
            self._set(record, Event.FINISHED, decision.reason)
            self.log(f"exited: {decision.reason}", record)

    def _retry(self, record):
        record.timer = None
        if record.state is State.BACKOFF:
            self._spawn(record, Event.RETRY)

    # -- stopping ----------------------------------------------------------

    def stop_record(self, record):
        record.wanted, record.failing = False, None
        if record.state is State.BACKOFF:
            record.cancel_timer()
            self._set(record, Event.STOP, "stopped while waiting to restart")
            return
        if record.state not in (State.STARTING, State.RUNNING):
            return
        spec = record.spec
        self._set(record, Event.STOP, f"stopping ({policy.signal_name(spec.stop_signal)})")
        self.log(f"stopping pid {record.pid} with "
                 f"{policy.signal_name(spec.stop_signal)}", record)
        record.child.signal_family(spec.stop_signal)  # its group and what left it
        record.timer = self.loop.call_later(spec.stop_timeout, self._stop_timed_out, record)

    def fail_record(self, record, why):
        """Stop record gracefully, then let its restart policy take the exit
        as a failure: backoff, FATAL, restart = "never" (health.py)."""
        self.stop_record(record)
        if record.state is State.STOPPING:
            record.failing = why

    def _stop_timed_out(self, record):
        record.timer = None
        if record.state is State.STOPPING and record.child is not None:
            self.log(f"still running {record.spec.stop_timeout:g} s after "
                     f"the stop signal: killing its process group", record)
            record.child.signal_family(signal.SIGKILL)

    def _await_leftovers(self, record):
        child = record.child
        if child is None or record.state is not State.STOPPING:
            return
        if child.family_alive():
            self.loop.call_later(LEFTOVER_POLL, self._await_leftovers, record)
        else:
            self._finish_stop(record)

    def _finish_stop(self, record):
        record.cancel_timer()
        record.child = None
        exit = record.last_exit
        if record.failing is not None:
            record.failing = None
            if not self.shutting_down:
                self._decide(record, exit, failed=True)
                return
        self._set(record, Event.EXITED, f"stopped ({exit})")
        self.log(f"stopped ({exit})", record)

    def kill_all(self):
        """The second Ctrl-C: SIGKILL every worker's group and family now."""
        self.log("killing every worker now")
        for record in self.records.values():
            if record.child is not None:
                record.child.signal_family(signal.SIGKILL)

    def begin_shutdown(self):
        if self.shutting_down:
            return
        self.shutting_down = True
        self.log("shutting down")
        self.notifier.stopping()
        for record in self.records.values():
            record.wanted = False
            if record.state is State.BACKOFF:
                self.stop_record(record)
        self._schedule_pump()


def _version():
    from corral import __version__

    return __version__
