"""The master's shell: runs the decision step's effects, owns every fd.

One asyncio loop in one thread. Everything that happens (a child exited, a
worker said READY=1, a deadline passed, a probe answered, an operator
asked) becomes one input to core.step, and the effects it returns are
executed here: spawn (sockets bound first, sockets.py), signal, probe, arm
one timer per deadline found on a record, log, publish the move. Nothing
here decides; nothing here blocks: spawning is a fork, pipes and pidfds
are read only when the loop says they are ready, probes are tasks.

Over 400 lines: it is one object, the shell's single owner of children,
timers and fds; its parts (spawn, timers, probes, effects) share that
state on every effect, and pieces already apart (spawn.py, health.py,
reload.py, resume.py) are those that need none of it.
"""

import asyncio
import collections
import os
import signal
import time
import traceback

from corral import config as config_module
from corral.clock import Clock
from corral.core import messages as m
from corral.core.record import Group, Supervision
from corral.core.states import BEING_STOPPED
from corral.core.step import step as decide
from corral.supervisor import health, readiness, report, sdnotify
from corral.supervisor.logs import LogHub
from corral.supervisor.sockets import SocketKeeper
from corral.supervisor.spawn import Spawner, SpawnError
from corral.supervisor.subscriptions import Counters, Topic

EVENT_RING = 1000


class Master:
    def __init__(self, config, *, clock=None, spawner=None, loader=config_module.load,
                 console=None, color=False, as_loaded=None):
        self.config = config
        # [corral] as the loader read it at start, before `corral run`'s
        # options: what a reload's new load is compared with (reload.py).
        self.as_loaded = as_loaded or config.master
        self.clock = clock or Clock()
        self.spawner = spawner or Spawner()
        self.loader = loader
        self.console = console
        self.color = color
        self.sup = Supervision(on_fatal=config.master.on_fatal,
                               groups={g.name: Group.of(g) for g in config.groups})
        self.sup.add(*config.services)
        self.events = collections.deque(maxlen=EVENT_RING)
        self.containment = ""  # how workers are kept together, in words (serve.py)
        self.event_topic = Topic()  # followers of the moves (events -f, sdnotify)
        self.counters = Counters()
        self._watchers = []  # (check, future): resolved when check() holds
        self._settle_scheduled = False
        self._depth = 0  # feed() calls under way (effects feed their answers)
        self._children = {}  # pid -> spawn.Child, while its record may still need it
        self._timers = {}  # name (None: the master) -> {kind: (when, asyncio.TimerHandle)}
        self._probes = {}  # (name, pid) -> set of probe tasks
        self.loop = None
        self.loghub = None
        self.done = None
        self.usage = report.UsageCache()  # one psutil pass for status, metrics and max_memory
        self.notify = readiness.CommandNotify(self)  # commands' NOTIFY_SOCKET
        self.reload_lock = asyncio.Lock()
        self.notifier = sdnotify.Notifier()  # serve.py sets one for $NOTIFY_SOCKET
        self.goals = None  # goals.GoalFile: serve.py sets one beside the socket
        self.upgrader = None  # upgrade.Upgrader: serve.py sets one (corral upgrade)
        self.sockets = SocketKeeper()  # listening sockets that outlive workers

    @property
    def records(self):
        return self.sup.records

    @property
    def shutting_down(self):
        return self.sup.shutting_down

    def instances_of(self, service):
        return self.sup.instances_of(service)

    def record_of(self, pid):
        """The record whose current process is pid, or None."""
        child = self._children.get(pid)
        record = self.records.get(child.instance) if child is not None else None
        return record if record is not None and record.pid == pid else None

    # -- set-up ------------------------------------------------------------

    def attach_loop(self, loop):
        """Bind to the running loop; open the logs."""
        self.loop = loop
        self.done = loop.create_future()
        master = self.config.master
        self.loghub = LogHub(loop, console=self.console, color=self.color,
                             logfile=master.logfile, log_dir=master.log_dir,
                             max_bytes=master.log_max_bytes, backups=master.log_backups)
        self.loghub.set_rotation(self.config.services)
        self.loghub.names([n for spec in self.config.services for n in spec.instance_names()])
        loop.set_exception_handler(self._on_loop_error)

    def start_autostart(self):
        """Start what autostart says, or what an operator said last (goals.py)."""
        for service, count in (self.goals.scaled(self.config.services) if self.goals else {}).items():
            self.log(f"{service}: scaled to {count}: an operator said so before the master "
                     f"restarted (--reset-state forgets it)")
            self.feed(m.Scale(service, count))  # all at rest still: nothing stops
        self.log(f"corral {_version()} starting {len(self.records)} instance(s), pid {os.getpid()}")
        names = []
        for record in self.records.values():
            goal = self.goals.initial(record.name, record.spec.autostart) if self.goals \
                else ("up" if record.spec.autostart else "down")
            if goal == "up":
                names.append(record.name)
            if self.goals and record.name in self.goals.goals \
                    and (goal == "up") != record.spec.autostart:
                self.log(f"{'started' if goal == 'up' else 'left stopped'}: an operator "
                         f"said so before the master restarted (--reset-state forgets it)",
                         record.name)
        self.feed(m.Start(tuple(names)))

    def log(self, text, name=None):
        """A line of the master's; about instance `name`: "NAME: text", filed
        under its service too (its ring, its file in log_dir, `corral logs SERVICE`)."""
        record = self.records.get(name) if name is not None else None
        if record is None:
            self.loghub.emit(text, pid=os.getpid())
        else:
            self.loghub.emit(f"{name}: {text}", service=record.service, pid=os.getpid())

    def _on_loop_error(self, loop, context):
        # A bug must not take supervision down: report it and go on.
        exc = context.get("exception")
        self.log(f"internal error: {context.get('message')}: {exc!r}")

    # -- the one way in --------------------------------------------------------

    def feed(self, item):
        """One input to the decision step; execute what it decides.

        Effects may feed answers back (a Spawn's Spawned) before the next
        effect runs. A bug in either is logged and supervision goes on."""
        self._depth += 1
        try:
            for effect in decide(self.sup, item, self.clock.now()):
                self._EFFECTS[type(effect)](self, effect)
        except Exception as exc:
            if self._depth > 1:
                raise
            self.log(f"internal error on {item}: {exc!r}")
        finally:
            self._depth -= 1

    def _spawn(self, effect):
        record = self.records[effect.name]
        spec = record.spec
        try:
            fds = self.sockets.prepare(spec)  # bound once, kept (sockets.py)
        except Exception as exc:  # noqa: BLE001 - user code too: whatever fails is FATAL
            for line in traceback.format_exc().rstrip().splitlines():
                self.log(line, record.name)
            self.feed(m.SpawnFailed(record.name, str(exc), fatal=True))
            return
        self.notify.before_spawn(spec)  # its NOTIFY_SOCKET, if it needs one
        try:
            child = self.spawner.spawn(spec, record.name, record.index, fds)
        except SpawnError as exc:
            self.feed(m.SpawnFailed(record.name, str(exc)))
            return
        self._children[child.pid] = child
        self.loghub.attach(child.out_fd, record.name, record.service, child.pid, "out")
        self.loghub.attach(child.err_fd, record.name, record.service, child.pid, "err")
        self.loop.add_reader(child.pidfd, self._on_child_exit, record.name, child)
        if child.notify_fd is not None:
            self.loop.add_reader(child.notify_fd, self._on_notify, record.name, child)
        self.feed(m.Spawned(record.name, child.pid))

    def _signal(self, effect):
        child = self._children.get(effect.pid)
        if child is None:
            return
        if effect.whom == "family":
            if child.exit is not None:
                # After a crash: the family's kill scans /proc, so it runs once
                # the restart's timer is set, during the backoff.
                self.loop.call_soon(child.signal_family, effect.signal)
            else:
                child.signal_family(effect.signal)
        elif effect.whom == "group":
            child.signal_group(effect.signal)
        elif child.exit is None:  # the main process only; its pid is not reused yet
            try:
                os.kill(child.pid, effect.signal)
            except OSError:
                pass

    def _check_leftovers(self, effect):
        child = self._children.get(effect.pid)
        self.feed(m.Leftovers(effect.name, effect.pid,
                              child is not None and child.family_alive()))

    def _probe(self, effect):
        task = self.loop.create_task(self._run_probe(effect))
        self._probes.setdefault((effect.name, effect.pid), set()).add(task)
        task.add_done_callback(lambda t, key=(effect.name, effect.pid): self._probe_done(key, t))

    async def _run_probe(self, effect):
        record = self.records.get(effect.name)
        if record is None:
            return
        if effect.what == "ready":
            ok, detail = await health.probe_target(record.spec.ready[1], readiness.PROBE_TIMEOUT)
        else:
            ok, detail = await health.probe(self, record, record.spec.health)
        self.feed(m.Probed(effect.name, effect.pid, effect.what, ok, detail))

    def _probe_done(self, key, task):
        tasks = self._probes.get(key)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._probes[key]
        if not task.cancelled() and task.exception() is not None:
            self.log(f"probe failed: internal error: {task.exception()!r}", key[0])

    def _sample_memory(self, effect):
        records = [self.records[n] for n in effect.names if n in self.records]
        found = self.usage.refresh(self.records.values(), [r.pid for r in records if r.pid is not None])
        self.feed(m.MemorySampled(tuple((r.name, found[r.pid].rss if r.pid in found else None)
                                        for r in records)))

    def _arm(self, effect):
        """Make the timers of one record (or the master) match its deadlines."""
        name = effect.name
        if name is None:
            deadlines = self.sup.deadlines
        else:
            record = self.records.get(name)
            deadlines = record.deadlines if record is not None else {}
        timers = self._timers.setdefault(name, {})
        for kind in [k for k in timers if k not in deadlines]:
            timers.pop(kind)[1].cancel()
        for kind, when in deadlines.items():
            armed = timers.get(kind)
            if armed is not None and armed[0] == when:
                continue
            if armed is not None:
                armed[1].cancel()
            delay = max(0.0, when - self.clock.now())
            timers[kind] = (when, self.loop.call_later(delay, self._due, name, kind, when))
        if not timers:
            del self._timers[name]

    def _due(self, name, kind, when):
        timers = self._timers.get(name, {})
        timers.pop(kind, None)
        if self.clock.now() < when:  # the loop woke a hair early: not yet
            handle = self.loop.call_later(when - self.clock.now(), self._due, name, kind, when)
            self._timers.setdefault(name, {})[kind] = (when, handle)
            return
        if not timers:
            self._timers.pop(name, None)
        self.feed(m.Due(name, kind))

    def _moved(self, effect):
        self.counters.moved(effect)
        item = {
            "time": time.time(), "name": effect.name, "service": effect.service,
            "from": effect.old.value, "to": effect.new.value, "pid": effect.pid,
            "exit": str(effect.exit) if effect.exit else None, "reason": effect.reason or None,
        }
        self.events.append(item)
        self.event_topic.publish([item])
        self._wake()
        if not self._settle_scheduled:
            self._settle_scheduled = True
            self.loop.call_soon(self._settle)

    def _settle(self):
        self._settle_scheduled = False
        self.feed(m.Settle())

    def _log(self, effect):
        self.log(effect.text, effect.name)

    def _close_sockets(self, effect):
        self.sockets.close(list(effect.services))
        self.sockets.close_all()

    def _done(self, effect):
        if not self.done.done():
            self.done.set_result(effect.code)

    _EFFECTS = {
        m.Spawn: _spawn, m.Signal: _signal, m.CheckLeftovers: _check_leftovers,
        m.Probe: _probe, m.SampleMemory: _sample_memory, m.Arm: _arm, m.Moved: _moved,
        m.Log: _log, m.CloseSockets: _close_sockets, m.Done: _done,
    }

    # -- what processes say ------------------------------------------------------

    def _on_notify(self, name, child):
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
            self.feed(m.Notified(name, child.pid, line))  # READY=1, STATUS=, WATCHDOG=1

    def _on_child_exit(self, name, child):
        exit = child.poll()
        if exit is None:
            return  # not reaped yet: the pidfd stays readable, we come back
        self.loop.remove_reader(child.pidfd)
        child.close()
        self.loghub.drain(child.pid)
        if child.notify_fd is not None:
            self._on_notify(name, child)  # a READY=1 written just before exiting
        for task in self._probes.pop((name, child.pid), ()):
            task.cancel()  # kills an exec probe still running
        record = self.records.get(name)
        stopping = record is not None and record.pid == child.pid \
            and record.state in BEING_STOPPED
        self.feed(m.Exited(name, child.pid, exit, leftovers=stopping and child.family_alive()))
        self._forget(name, child)

    def _forget(self, name, child):
        """Drop the Child once its record no longer refers to it."""
        record = self.records.get(name)
        if record is None or record.pid != child.pid:
            self._children.pop(child.pid, None)

    # -- waiting ---------------------------------------------------------------

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

    # -- whole-master verbs --------------------------------------------------------

    def begin_shutdown(self):
        if self.shutting_down:
            return
        self.feed(m.Shutdown())
        self.notifier.stopping()

    def child_of(self, record):
        """record's process (a spawn.Child) while it is not reaped, else None."""
        child = self._children.get(record.pid) if record.pid is not None else None
        return child if child is not None and child.exit is None else None

    def send_signal(self, record, sig, whom):
        """An operator's signal to record's process group or main process."""
        child = self._children.get(record.pid)
        if child is None:
            return False
        if whom == "group":
            return child.signal_group(sig)
        try:
            os.kill(child.pid, sig)
            return True
        except OSError:
            return False

    def kill_all(self):
        """The second Ctrl-C: SIGKILL every worker's group and family now."""
        self.log("killing every worker now")
        for record in self.records.values():
            child = self._children.get(record.pid)
            if child is not None:
                child.signal_family(signal.SIGKILL)

    def replace(self, config, keep):
        """A reload's new config (services not in keep are at rest)."""
        self.feed(m.Replace(config.services, tuple(keep), config.groups))
        self.config = config
        for name in [n for n in self._timers if n is not None and n not in self.records]:
            for _when, handle in self._timers.pop(name).values():
                handle.cancel()

    def close(self):
        for timers in self._timers.values():
            for _when, handle in timers.values():
                handle.cancel()
        self._timers.clear()
        self.notify.close()


def _version():
    from corral import __version__

    return __version__
