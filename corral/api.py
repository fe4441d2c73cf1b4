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
    signal(names, s)  to the main process, or (group) its whole process group
    status(names)     -> [report.Status]      tree() -> the service tree
    reload()          re-read the config, apply the difference (reload.py)
    preview()         the difference reload() would apply, applying nothing
    shutdown()        everything down, in reverse order; the master exits
    logs(name, n)     the last n lines      events(n) -> the last n moves
    subscribe(topic)  "logs" or "events": a Subscription, pushed to
    version(), reopen(), counters, shutting_down, config (the Config in force)
"""

import asyncio
import fnmatch
import os
import re
from dataclasses import asdict, dataclass

from corral.core import messages as m
from corral.core.states import AT_REST, SIGNALLABLE, State
from corral import spec as spec_module
from corral.errors import E_CONFIG, E_NO_SUCH_SERVICE, E_SHUTTING_DOWN, ControlError, CorralError
from corral.supervisor import reload as reload_module
from corral.supervisor import report
from corral.supervisor.subscriptions import LogSubscription

SETTLED = frozenset({State.RUNNING, State.FATAL, State.EXITED, State.STOPPED})


@dataclass(frozen=True)
class Outcome:
    """What one verb did to one instance."""

    name: str
    state: str
    ok: bool
    message: str

    def as_dict(self):
        return asdict(self)


class Operations:
    def __init__(self, master):
        self.master = master

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

    def guard(self, verb):
        """The one check for verbs that would start something."""
        if self.master.shutting_down:
            raise ControlError(E_SHUTTING_DOWN, f"{verb}: the master is shutting down")

    # -- verbs that change states ------------------------------------------------

    async def start(self, names, wait=True):
        self.guard("start")
        records = self.resolve(names)
        self.master.feed(m.Start(tuple(r.name for r in records), fresh=True))
        if wait:
            await self.master.wait_for(lambda: all(r.state in SETTLED for r in records))
        return [_outcome(r, r.state is State.RUNNING or not wait) for r in records]

    async def stop(self, names, wait=True):
        records = self.resolve(names)
        await self._stop(records, wait)
        return [_outcome(r, True) for r in records]

    async def _stop(self, records, wait=True):
        self.master.feed(m.Stop(tuple(r.name for r in records)))
        if wait:
            await self.master.wait_for(lambda: all(r.state in AT_REST for r in records))

    async def restart(self, names, rolling=False, wait=True):
        self.guard("restart")
        records = self.resolve(names)
        if rolling:  # one at a time, each RUNNING before the next stops
            return await self._roll(records)
        await self._stop(records)
        return await self.start([r.name for r in records], wait=wait)

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

    async def reload(self):
        """Re-read the config and apply the difference (see reload.py)."""
        if self.master.shutting_down:  # SIGHUP comes here without a frontend's check
            self.master.log("reload refused: shutting down")
        self.guard("reload")
        async with self.master.reload_lock, self.master.notifier.reloading():
            return await reload_module.apply(self.master, self._stop)

    def preview(self):
        """What reload() would do now, without doing it: {"added", "removed",
        "changed", "unchanged"} service names. Raises ControlError(E_CONFIG)
        naming the error when the config does not load."""
        try:
            new = self.master.loader(self.master.config.path)
        except CorralError as exc:
            raise ControlError(E_CONFIG, str(exc)) from None
        added, removed, changed, unchanged = spec_module.diff(
            self.master.config.services, new.services)
        return {"added": added, "removed": removed, "changed": changed, "unchanged": unchanged}

    def shutdown(self):
        """Begin the ordered shutdown now; await the result to wait for its end."""
        self.master.begin_shutdown()
        return asyncio.shield(self.master.done)

    def kill_all(self):
        self.master.kill_all()

    def reopen(self):
        self.master.loghub.reopen()

    # -- views -----------------------------------------------------------------

    def status(self, names=(), usage=True):
        """usage=False: cpu_percent and rss stay None, and the /proc scan
        they cost is saved (for frontends that do not show them)."""
        master = self.master
        return report.status(self.resolve(names), master.usage if usage else _NO_USAGE,
                             master.clock.now(), master.loghub.service_errors())

    def states(self, names=()):
        """{instance: state name}, without sampling /proc as status() does."""
        return {r.name: r.state.value for r in self.resolve(names)}

    async def wait_for(self, check):
        """Return once check() holds, tested again after every step."""
        await self.master.wait_for(check)

    def tree(self):
        master = self.master
        return report.tree(os.path.basename(master.config.path), master.config.services,
                           master.instances_of, master.sup.groups)

    def logs(self, name=None, lines=100, max_bytes=None):
        """The last lines of one service or instance (None: the merged log)."""
        if name is not None:
            self.resolve([name])  # raises no_such_service
        return self.master.loghub.tail(name, lines, max_bytes=max_bytes)

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

        result = {"version": __version__, "pid": os.getpid()}
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
