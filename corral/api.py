"""Operations: the one object every frontend talks to.

The control socket (JSON lines), the signals, and any later frontend (an
XML-RPC or HTTP server) call these verbs and render their typed results;
none of them reaches into the master. A verb resolves names to instance
records, feeds the decision step one input (core/messages.py), and, when
asked to wait, waits until the states it asked for have settled. Nothing
here decides or changes a state: the step does.

    start(names)      up, `after` dependencies first   -> [Outcome]
    stop(names)       down, dependents first           -> [Outcome]
    restart(names)    stop, then start; rolling: one at a time
    scale(service, n) n instances from now on (core/scale.py)  -> [Outcome]
    signal(names, s)  to the main process, or (group) its whole process group
    send_stdin(name, data)  bytes to an instance's stdin pipe, never waiting -> int
    status(names)     -> [report.Status]      tree() -> the service tree
    briefs()          -> [report.Brief]: what changes only when an instance moves
    describe(names)   -> [report.Detail]: status, source, recent moves, last lines
    instance_names(service)  its instances now (a scale changes them)
    reload()          re-read the config, apply the difference (reload.py)
    preview()         the difference reload() would apply, applying nothing
    shutdown()        everything down, in reverse order; the master exits
    logs(name, n)     the last n lines      events(n) -> the last n moves
    subscribe(topic)  "logs" or "events": a Subscription, pushed to
    version(), reopen(), counters, shutting_down, config (the Config in force)
    usage(names)      -> {instance: TreeUsage}, one cached psutil pass (status too)
    log_counts()      -> {service: LogCount}   restarts_by_reason() -> {(inst, why): n}
    master_process()  -> MasterProcess         readiness(names) -> [Check]

Over 400 lines: it is the one verb table every frontend sees, kept in one
place on purpose (docs/architecture.md, "one Operations API"); the views it
returns live in report.py and the subscriptions in subscriptions.py.
"""

import asyncio
import collections
import fnmatch
import os
import re
import time
from dataclasses import asdict, dataclass, replace

import psutil

from corral.core import messages as m
from corral.core import scale as scale_rules
from corral.core.states import AT_REST, SIGNALLABLE, State
from corral import spec as spec_module
from corral import usercode
from corral.errors import (E_BAD_ARGUMENT, E_CONFIG, E_FAILED, E_NO_STDIN, E_NO_SUCH_SERVICE,
                           E_NOT_RUNNING, E_SHUTTING_DOWN, ControlError, CorralError)
from corral.supervisor import reload as reload_module
from corral.supervisor import report
from corral.supervisor.report import USAGE_MAX_AGE, TreeUsage  # noqa: F401 (the API's names)
from corral.supervisor.subscriptions import LogSubscription

SETTLED = frozenset({State.RUNNING, State.FATAL, State.EXITED, State.STOPPED})
RESTART_REASONS = ("crash", "health", "memory", "watchdog", "operator")


@dataclass(frozen=True)
class Outcome:
    """What one verb did to one instance."""

    name: str
    state: str
    ok: bool
    message: str

    def as_dict(self):
        return asdict(self)


@dataclass
class LogCount:
    """Lines and bytes a service wrote (its master lines too), since the start."""

    lines: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class MasterProcess:
    pid: int
    start_time: float  # wall time
    cpu_seconds: float
    rss: int
    open_fds: int


@dataclass(frozen=True)
class Check:
    """One line of /readyz?verbose: an instance and whether it counts as ready."""

    name: str
    state: str
    ok: bool


class Operations:
    def __init__(self, master):
        self.master = master
        self._usage = master.usage  # the master's one cache: max_memory reads it too
        self._me = None  # psutil.Process of the master (master_process)
        self._me_read = (None, None)  # (when, MasterProcess): kept USAGE_MAX_AGE s
        # Wall minus monotonic time, taken once: a start time given as wall
        # time reads the same at every call (briefs).
        self._epoch = time.time() - master.clock.now()
        self._restarts = collections.Counter()  # (instance, reason) -> count
        self._failing = {}  # instance -> "health" or "memory", while FAILING
        master.event_topic.subscribe(self._count_restart)

    def _count_restart(self, items):
        for item in items:
            name, new = item["name"], item["to"]
            record = self.master.records.get(name)
            if new == State.FAILING.value and record is not None:
                self._failing[name] = "memory" if "max_memory" in record.reason else "health"
            elif new == State.BACKOFF.value:
                why = self._failing.pop(name, None)
                if why is None:
                    killed = (record.killed or "") if record is not None else ""
                    why = "watchdog" if "watchdog" in killed else "crash"
                self._restarts[(name, why)] += 1
            elif item["from"] == State.FAILING.value:
                self._failing.pop(name, None)

    # -- names -----------------------------------------------------------------

    def resolve(self, names):
        """Instance records for names: instance, service, 'all' or glob."""
        records = self.master.records
        if not names:
            return list(records.values())
        chosen = {}
        for name in names:
            # re's own cache (512 patterns), not fnmatch's (32768, never emptied)
            match = re.compile(fnmatch.translate(name)).match if any(
                ch in name for ch in "*?[") else (lambda _: False)
            found = [r for r in records.values()
                     if name == "all" or name in (r.name, r.service)
                     or match(r.name) or match(r.service)]
            if not found:
                raise ControlError(E_NO_SUCH_SERVICE, f"no service matches {name!r}")
            for record in found:
                chosen[record.name] = record
        return list(chosen.values())

    def _remember(self, records, goal):
        """An operator's start or stop outlives the master (goals.py)."""
        if self.master.goals is not None:
            self.master.goals.remember([r.name for r in records], goal)

    def guard(self, verb):
        """The one check for verbs that would start something."""
        if self.master.shutting_down:
            raise ControlError(E_SHUTTING_DOWN, f"{verb}: the master is shutting down")

    # -- verbs that change states ------------------------------------------------

    async def start(self, names, wait=True):
        self.guard("start")
        records = self.resolve(names)
        self._remember(records, "up")
        self.master.feed(m.Start(tuple(r.name for r in records), fresh=True))
        if wait:
            await self.master.wait_for(lambda: all(r.state in SETTLED for r in records))
        return [_outcome(r, r.state is State.RUNNING or not wait) for r in records]

    async def stop(self, names, wait=True):
        records = self.resolve(names)
        self._remember(records, "down")
        await self._stop(records, wait)
        return [_outcome(r, True) for r in records]

    async def _stop(self, records, wait=True):
        self.master.feed(m.Stop(tuple(r.name for r in records)))
        if wait:
            await self.master.wait_for(lambda: all(r.state in AT_REST for r in records))

    async def restart(self, names, rolling=False, wait=True):
        self.guard("restart")
        records = self.resolve(names)
        for record in records:
            self._restarts[(record.name, "operator")] += 1
        stale = self._stale_code(records)
        if rolling:  # one at a time, each RUNNING before the next stops
            results = await self._roll(records)
        else:
            await self._stop(records)
            results = await self.start([r.name for r in records], wait=wait)
        return [replace(o, message="; ".join(filter(None, (o.message, stale[o.name]))))
                if o.name in stale else o for o in results]

    def _stale_code(self, records):
        """{instance: note} of Python services whose files changed on disk
        since the last load: a restart runs the code loaded then (a reload
        loads it afresh), and says so instead of running stale code silently."""
        notes, said = {}, {}
        for record in records:
            spec = record.spec
            if spec.name not in said:
                paths = usercode.changed_since(spec.code_files) if spec.code_files else []
                said[spec.name] = paths and (
                    f"runs the code of the last load: {', '.join(paths)} changed since "
                    "(`corral reload` runs the new code)")
                if said[spec.name]:
                    self.master.log(f"{spec.name}: restarted, but it {said[spec.name]}")
            if said[spec.name]:
                notes[record.name] = said[spec.name]
        return notes

    async def _roll(self, records):
        """Each is RUNNING again before the next one stops, so the others (and
        the held sockets' backlog) serve meanwhile. One that does not come up
        ends the roll: the rest are left as they are."""
        results = []
        for record in records:
            if self.master.shutting_down:
                failed = "not restarted: the master is shutting down"
            else:
                await self._stop([record])
                self.master.feed(m.Start((record.name,), fresh=True))
                await self.master.wait_for(lambda record=record: record.state in SETTLED)
                ok = record.state is State.RUNNING
                results.append(_outcome(record, ok))
                if ok:
                    continue
                failed = f"not restarted: {record.name} did not come up ({record.state})"
            results += [_outcome(rest, False, failed) for rest in records[len(results):]]
            break
        return results

    async def scale(self, service, count, wait=True):
        """count instances of service from now on: new ones start (when the
        service is wanted up), the surplus stop, highest index first, and go.
        Remembered across reloads that leave the service's config alone and
        across a master restart (goals.py). Refused, changing nothing: an
        unknown service, a count out of 1..MAX_NUMPROCS, a service that
        cannot be scaled."""
        self.guard("scale")
        async with self.master.reload_lock:  # never half-way through a reload
            master = self.master
            if not master.instances_of(service):
                hint = f" (an instance: scale its service, {service.split(':')[0]})" \
                    if ":" in service and master.instances_of(service.split(":")[0]) else ""
                raise ControlError(E_NO_SUCH_SERVICE, f"scale: no service named {service!r}{hint}")
            problem = scale_rules.refusal(master.sup, service, count)
            if problem is not None:
                raise ControlError(E_BAD_ARGUMENT, f"scale {service}: {problem}")
            before = [r for r in master.records.values() if r.service == service]
            master.feed(m.Scale(service, count))
            if master.goals is not None:
                configured = next(s.numprocs for s in master.config.services if s.name == service)
                master.goals.remember_count(service, count, configured)
            records = list(master.instances_of(service))
            removed = [r for r in before if r.retired]  # (dropped once at rest)
            # the new instances of a service that runs are up by the operator's word
            self._remember([r for r in records if r not in before and r.goal.value != "down"],
                           "up")
            if wait:
                await master.wait_for(lambda: all(r.state in SETTLED for r in records)
                                      and all(r.state in AT_REST for r in removed))
        results = [_outcome(r, r.state is State.RUNNING or r.goal.value == "down" or not wait)
                   for r in records]
        return results + [Outcome(r.name, r.state.value, r.state in AT_REST or not wait,
                                  f"removed ({service} scaled to {count})") for r in removed]

    def instance_names(self, service):
        """The names of service's instances now (its numprocs, or what a scale made)."""
        return [r.name for r in self.master.instances_of(service)]

    def signal(self, names, sig, group=False):
        """sig to each instance's main process, as supervisorctl's and
        `systemctl kill --kill-whom=main` do, or to its whole process group."""
        results = []
        for record in self.resolve(names):
            if record.state in SIGNALLABLE:
                ok = self.master.send_signal(record, sig, "group" if group else "main")
                results.append(_outcome(record, ok, f"sent {sig.name}"))
            else:
                results.append(_outcome(record, False, f"not running ({record.state})"))
        return results

    def send_stdin(self, name, data):
        """Write data (bytes) to the stdin pipe of the instance name's process
        now: the count written. The pipe is non-blocking and the master keeps
        no buffer: what does not fit in it now is refused, E_FAILED naming how
        much was written. E_NO_SUCH_SERVICE (no such instance), E_NOT_RUNNING
        (no process, or it is being stopped), E_NO_STDIN (stdin = "null", or
        the process closed its stdin)."""
        record = self.master.records.get(name)
        if record is None:
            raise ControlError(E_NO_SUCH_SERVICE, f"no instance named {name!r}")
        child = self.master.child_of(record)
        if record.state not in SIGNALLABLE or child is None:
            raise ControlError(E_NOT_RUNNING, f"{name}: not running ({record.state})")
        try:
            done = child.write_stdin(data)
        except ValueError:
            raise ControlError(E_NO_STDIN, f'{name}: its stdin is /dev/null (stdin = "pipe" '
                                           "gives it a pipe)") from None
        except BrokenPipeError:
            raise ControlError(E_NO_STDIN, f"{name}: its process closed its stdin") from None
        except OSError as exc:
            raise ControlError(E_FAILED, f"{name}: cannot write to its stdin: "
                                         f"{exc.strerror or exc}") from None
        if done < len(data):
            raise ControlError(E_FAILED, f"{name}: its stdin pipe is full: {done} of "
                                         f"{len(data)} bytes written, the rest refused "
                                         "(it is not reading)")
        return done

    async def reload(self):
        """Re-read the config and apply the difference (see reload.py)."""
        if self.master.shutting_down:  # SIGHUP comes here without a frontend's check
            self.master.log("reload refused: shutting down")
        self.guard("reload")
        async with self.master.reload_lock, self.master.notifier.reloading():
            return await reload_module.apply(self.master, self._stop)

    def preview(self):
        """What reload() would do now, without doing it: {"added", "removed",
        "changed", "scaled", "unchanged"} service names (spec.diff), and "config",
        the Config the file gives now. Raises ControlError(E_CONFIG)
        naming the error when the config does not load."""
        try:
            new = self.master.loader(self.master.config.path)
        except CorralError as exc:
            raise ControlError(E_CONFIG, str(exc)) from None
        result = dict(spec_module.diff(self.master.config.services, new.services), config=new)
        kept = reload_module.not_applied(self.master, new)
        if kept:
            result["not_applied"] = kept
        return result

    def shutdown(self):
        """Begin the ordered shutdown now; await the result to wait for its end."""
        self.master.begin_shutdown()
        return asyncio.shield(self.master.done)

    async def upgrade(self, python=None):
        """Re-execute the master in place (supervisor/upgrade.py): returns once
        the new image passed its dry run, and the exec follows. Raises
        ControlError(E_FAILED) naming why nothing was done."""
        self.guard("upgrade")
        if self.master.upgrader is None:
            raise ControlError(E_FAILED, "upgrade: this master cannot re-execute itself")
        try:
            return await self.master.upgrader.upgrade(python)
        except CorralError as exc:
            self.master.log(f"upgrade refused: {exc}")
            raise ControlError(E_FAILED, f"upgrade refused: {exc}") from None

    def kill_all(self):
        self.master.kill_all()

    def reopen(self):
        self.master.loghub.reopen()

    # -- views -----------------------------------------------------------------

    def status(self, names=(), usage=True):
        """usage=False: without cpu and rss (no usage pass: for one row per move)."""
        master = self.master
        records = self.resolve(names)
        if usage:
            self._usage.refresh(self.master.records.values(),
                                [r.pid for r in records if r.pid is not None])
        return report.status(records, self._usage if usage else _NO_USAGE, master.clock.now(),
                             master.loghub.service_errors())

    def briefs(self):
        """[report.Brief] of every instance, without building status rows."""
        return report.briefs(self.master.records.values(), self._epoch)

    def describe(self, names):
        """[report.Detail] of names' instances: `corral status NAME`."""
        master = self.master
        records = self.resolve(names)
        statuses = self.status([r.name for r in records])
        events = list(master.events)
        return [report.detail(record, row, master.config.path, events,
                              master.loghub.tail(record.name, report.DETAIL_LINES),
                              master.sup.groups)
                for record, row in zip(records, statuses)]

    def states(self, names=()):
        """{instance: state name}, without sampling /proc as status() does."""
        return {r.name: r.state.value for r in self.resolve(names)}

    async def wait_for(self, check):
        """Return once check() holds, tested again after every step."""
        await self.master.wait_for(check)

    def usage(self, names=()):
        """{instance: TreeUsage} of those with a process (cached USAGE_MAX_AGE s)."""
        records = [r for r in self.resolve(names) if r.pid is not None]
        found = self._usage.refresh(self.master.records.values(), [r.pid for r in records])
        return {r.name: found[r.pid] for r in records if r.pid in found}

    def log_counts(self):
        hub = self.master.loghub  # counted as it writes: no follower, no object per line
        return {service: LogCount(*c) for service, c in (hub.counts if hub else {}).items()}

    def log_lines_dropped(self):
        return self.master.counters.log_lines_dropped

    def events_dropped(self):
        return self.master.event_topic.dropped

    def restarts_by_reason(self):
        """{(instance, reason): count}, reasons from RESTART_REASONS."""
        return dict(self._restarts)

    def master_process(self):
        """The master's own pid, start (epoch s), CPU s, RSS and open fds,
        read at most once in USAGE_MAX_AGE s like the workers' usage: with
        500 workers the master holds 1,500 fds, and counting them was 2 ms
        of a 14 ms /metrics scrape (docs/benchmarks.md)."""
        now = self.master.clock.now()
        when, read = self._me_read
        me = self._me
        if me is None or me.pid != os.getpid():  # made once per master process
            me = self._me = psutil.Process()
            read = None
        if read is not None and now - when < USAGE_MAX_AGE:
            return read
        with me.oneshot():
            times = me.cpu_times()
            rss = me.memory_info().rss
            fds = me.num_fds()
            start = me.create_time()
        read = MasterProcess(me.pid, start, times.user + times.system, rss, fds)
        self._me_read = (now, read)
        return read

    def readiness(self, names=()):
        """[Check] of names' instances, or of every autostart one: ready when
        RUNNING, or EXITED with code 0 (a one-shot that did its job)."""
        records = self.resolve(names) if names else [  # (not those a scale retired)
            r for r in self.master.records.values() if r.spec.autostart and not r.retired]
        checks = []
        for r in records:
            done = r.state is State.EXITED and r.last_exit is not None \
                and r.last_exit.code == 0
            checks.append(Check(r.name, r.state.value, r.state is State.RUNNING or done))
        return checks

    def dependencies(self):
        """{service: its `after` services}, in the config's order."""
        return {spec.name: list(spec.after) for spec in self.master.config.services}

    def tree(self):
        master = self.master
        return report.tree(os.path.basename(master.config.path), master.config.services,
                           master.instances_of, master.sup.groups)

    def logs(self, name=None, lines=100, max_bytes=None, after=0):
        """The last lines of one service or instance (None: the merged log);
        with after, only those whose seq is greater (a follower resuming)."""
        if name is not None:
            self.resolve([name])  # raises no_such_service
        return self.master.loghub.tail(name, lines, max_bytes=max_bytes, after=after)

    def events(self, lines=100):
        return list(self.master.events)[-lines:] if lines else []

    def subscribe(self, topic, callback, name=None):
        """Push every new batch of `topic` ("logs" of name, or "events") to
        callback(items); the Subscription counts what the follower skipped."""
        if topic == "events":
            return self.master.event_topic.subscribe(callback)
        if name is not None:
            self.resolve([name])
        return LogSubscription(self.master.loghub, callback, name, self.master.counters)

    @property
    def counters(self):
        return self.master.counters

    @property
    def shutting_down(self):
        """True once the ordered shutdown has begun (verbs that start refuse)."""
        return self.master.shutting_down

    @property
    def config(self):
        """The Config in force (spec.Config): the specs as loaded or reloaded."""
        return self.master.config

    def version(self):
        from corral import __version__

        result = {"version": __version__, "pid": os.getpid(),
                  "containment": getattr(self.master, "containment", "") or None}
        run = self.master.upgrader.run if self.master.upgrader is not None else None
        if run is not None and run.image:  # execs by `upgrade`, and why the last fell back
            result["image"] = run.image
            if run.upgrade_error:
                result["upgrade_error"] = run.upgrade_error
        errors = self.master.loghub.errors if self.master.loghub else []
        if errors:  # only when some log output cannot be written (docs/protocol.md)
            result["errors"] = errors
        return result


class _NoUsage:
    def sample(self, pids):
        return {}


_NO_USAGE = _NoUsage()


def _outcome(record, ok, message=None):
    return Outcome(record.name, record.state.value, ok, message or record.reason)
