"""What an operator may ask of the master: start, stop, restart, signal,
status, reload (through the control socket, or a signal for some).

Each operation resolves names to instance records, asks the master's state
machine (master.py) to act, and waits until the states it asked for have
settled. Nothing here changes a state itself: only Master._set does.
"""

import asyncio
import fnmatch
import os
import re

from corral.errors import E_NO_SUCH_SERVICE, E_SHUTTING_DOWN, ControlError
from corral.supervisor import policy, report
from corral.supervisor import reload as reload_module
from corral.supervisor.sockets import rolling_restart
from corral.supervisor.states import AT_REST, HAS_PROCESS, State


class Operations:
    """Mixed into Master: these methods use its records and state machine."""

    def resolve(self, names):
        """Instance records for names: instance, service, 'all' or glob."""
        if not names:
            return list(self.records.values())
        chosen = {}
        for name in names:
            # re's own cache (512 patterns), not fnmatch's (32768, never emptied)
            match = re.compile(fnmatch.translate(name)).match if any(
                ch in name for ch in "*?[") else (lambda _: False)
            found = [r for r in self.records.values()
                     if name == "all" or name in (r.name, r.service)
                     or match(r.name) or match(r.service)]
            if not found:
                raise ControlError(E_NO_SUCH_SERVICE, f"no service matches {name!r}")
            for record in found:
                chosen[record.name] = record
        return list(chosen.values())

    async def start(self, names):
        records = self.resolve(names)
        for record in records:
            self.request_start(record, fresh=True)
        await self.wait_for(lambda: all(_start_settled(r) for r in records))
        return [_outcome(r, r.state is State.RUNNING) for r in records]

    async def stop(self, names):
        records = self.resolve(names)
        await self._stop_in_order(records)
        return [_outcome(r, True) for r in records]

    async def restart(self, names, rolling=False):
        records = self.resolve(names)
        if rolling:  # one at a time, each RUNNING before the next stops
            return await rolling_restart(self, records, _start_settled, _outcome)
        await self._stop_in_order(records)
        for record in records:
            self.request_start(record, fresh=True)  # starts once STOPPED
        await self.wait_for(lambda: all(_start_settled(r) for r in records))
        return [_outcome(r, r.state is State.RUNNING) for r in records]

    async def _stop_in_order(self, records):
        """Stop records in the reverse of the start order, as a shutdown does:
        one is stopped once those of records that run `after` it are at rest.
        (Only among records: a service left running is not waited for.)"""
        left = list(records)
        while left:
            layer = [r for r in left if not any(
                r.service in other.spec.after for other in left if other.service != r.service)]
            layer = layer or left  # (never empty: `after` has no cycles)
            for record in layer:
                self.stop_record(record)
            await self.wait_for(lambda layer=layer: all(r.state in AT_REST for r in layer))
            left = [r for r in left if r not in layer]

    def send_signal(self, names, sig):
        results = []
        for record in self.resolve(names):
            if record.state in HAS_PROCESS and record.child is not None:
                ok = record.child.signal_group(sig)
                results.append(_outcome(record, ok, f"sent {policy.signal_name(sig)}"))
            else:
                results.append(_outcome(record, False, f"not running ({record.state})"))
        return results


    def status(self, names):
        return report.status(self.resolve(names), self.usage, self.clock.now(), self.loop.time(),
                             self.loghub.service_errors())

    def tree(self):
        return report.tree(os.path.basename(self.config.path), self.config.services,
                           self.instances_of)

    async def shutdown(self):
        self.begin_shutdown()
        await asyncio.shield(self.done)

    async def reload(self):
        """Re-read the config and apply the difference (see reload.py)."""
        if self.shutting_down:  # SIGHUP comes here without control's check
            self.log("reload refused: shutting down")
            raise ControlError(E_SHUTTING_DOWN, "reload: the master is shutting down")
        async with self._reload_lock, self.notifier.reloading():
            return await reload_module.apply(self)


def _start_settled(record):
    if record.wanted:  # not started yet: FATAL or EXITED is the last run's state
        return False
    return record.state in (State.RUNNING, State.FATAL, State.EXITED, State.STOPPED)


def _outcome(record, ok, message=None):
    return {"name": record.name, "state": record.state.value, "ok": ok,
            "message": message or record.description}
