"""Health checks and memory limits of RUNNING instances.

Invariant: nothing here blocks the loop, and nothing runs at all for
services without `health` or `max_memory`. The master calls changed() from
_set(), the one place where states change; everything else is a task or a
timer on the master's loop.

Health: one asyncio task per RUNNING instance with `health`, created when
it becomes RUNNING and cancelled when it leaves RUNNING (a stop, a crash, a
reload), which also kills a probe still running. The task waits
`interval`, probes, waits for the probe to end (so two probes of one
instance never overlap), and so on; `failures` failed probes in a row
stop the instance gracefully (stop_signal, then SIGKILL after
stop_timeout) through master.fail_record, which then hands its exit to the
restart policy as a failure, as if it had crashed: it restarts after the
backoff, goes FATAL by max_restarts, and stays down with restart = "never".
Probes:

- http, tcp: probes.py's, as for `ready`: asyncio.open_connection to an
  IP address (no host names: asyncio resolves them in a thread pool),
  within `timeout`. http sends a minimal GET; a 2xx or 3xx status is healthy.
- exec: subprocess.Popen in a session of its own, with the service's
  environment, cwd and user, output to /dev/null; watched by a pidfd on the
  loop and reaped by its own pid only (Spawner.helpers keeps the
  subreaper's sweep off it); its process group is SIGKILLed after
  `timeout`. Exit 0 is healthy. It carries the master's marker under the
  instance `NAME/health`, so the undertaker kills it if the master dies,
  and it is never taken for a leftover of the worker itself.

Memory: while at least one RUNNING instance has `max_memory`, a timer runs
every MEMORY_PERIOD seconds: one pass over /proc/*/stat (parent and RSS of
every process, one read each) sums the RSS of each watched worker's whole
process tree; a tree over its limit is stopped as failed, like a failed
health check. When no RUNNING instance has `max_memory`, no timer is armed.
"""

import asyncio
import os
import signal
import subprocess

from corral import privileges, probes
from corral.healthspec import format_bytes
from corral.supervisor import report, spawn
from corral.supervisor.states import State

MEMORY_PERIOD = 1.0  # s between two RSS passes, while any instance needs one


class HealthMonitor:
    def __init__(self, master):
        self.master = master
        self.tasks = {}  # Record -> the asyncio.Task probing it
        self.watched = set()  # RUNNING Records with max_memory
        self._timer = None  # the next RSS pass, armed only while watched
        self.passes = 0  # RSS passes made, for tests

    # -- the master's hook ---------------------------------------------------

    def changed(self, record, old):
        """record moved from state old to record.state."""
        running = record.state is State.RUNNING
        if running and old is not State.RUNNING:
            self._begin(record)
        elif old is State.RUNNING and not running:
            self._end(record)

    def _begin(self, record):
        spec = record.spec
        loop = self.master.loop
        if getattr(spec, "health", None) is not None:
            self.tasks[record] = loop.create_task(self._probe_loop(record, spec.health))
        if getattr(spec, "max_memory", None) is not None:
            self.watched.add(record)
            if self._timer is None:
                self._timer = loop.call_later(MEMORY_PERIOD, self._sample)

    def _end(self, record):
        record.health_note = None
        task = self.tasks.pop(record, None)
        if task is not None:
            task.cancel()
        self.watched.discard(record)
        if not self.watched and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fail(self, record, why):
        master = self.master
        if master.shutting_down or record.state is not State.RUNNING:
            return
        master.log(f"{why}: stopping it as failed", record)
        master.fail_record(record, why)

    # -- health ------------------------------------------------------------

    async def _probe_loop(self, record, check):
        loop = self.master.loop
        failures = 0
        try:
            next_at = loop.time() + check.interval
            while True:
                await asyncio.sleep(max(0.0, next_at - loop.time()))
                next_at = loop.time() + check.interval  # start to start
                ok, detail = await self.probe(record, check)
                if ok:
                    if failures:
                        self.master.log("health check passed again", record)
                    failures = 0
                    record.health_note = None
                    continue
                failures += 1
                plural = "s" if failures > 1 else ""
                record.health_note = f"health: {failures} failure{plural} ({detail})"
                if failures < check.failures:
                    self.master.log(f"health check failed "
                                    f"({failures}/{check.failures}): {check.describe()}: {detail}", record)
                    continue
                times = "once" if failures == 1 else f"{failures} times in a row"
                self.tasks.pop(record, None)  # this task ends with the stop
                self._fail(record, f"health check failed {times} "
                                      f"({check.describe()}: {detail})")
                return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not go unseen, nor stop supervision
            self.master.log(f"health checks stopped: internal error: {exc!r}", record)

    async def probe(self, record, check):
        """(healthy, detail) of one probe, within check.timeout."""
        if check.kind == "exec":
            return await probes.bounded(check.timeout, self._exec_probe(record, check))
        probe = probes.probe_http if check.kind == "http" else probes.probe_tcp
        return await probe(check.target, check.timeout)

    async def _exec_probe(self, record, check):
        spec = record.spec
        helpers = getattr(self.master.spawner, "helpers", set())
        drop = privileges.CommandDrop(spec)  # the service's user, as its command gets
        try:
            popen = subprocess.Popen(
                check.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, cwd=None if drop.cwd else spec.cwd,
                env=spawn.child_env(spec, f"{record.name}/health", record.index),
                start_new_session=True, preexec_fn=drop if drop.plan else None,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return False, drop.why() or f"cannot run {check.argv[0]}: {probes.os_error_text(exc)}"
        finally:
            drop.close()
        watch = ProbeProcess(self.master.loop, popen, helpers)
        try:
            code = await watch.future
        finally:
            if popen.returncode is None:  # timed out or cancelled: its watcher reaps it
                watch.kill()
        if code is None:
            return False, "exit status lost"
        if code < 0:
            return False, f"killed by {_signal_name(-code)}"
        return code == 0, f"exit {code}"

    # -- memory ------------------------------------------------------------

    def _sample(self):
        self._timer = None
        records = [r for r in self.watched if r.state is State.RUNNING and r.pid is not None]
        if records:
            self.passes += 1
            sizes = tree_rss([r.pid for r in records])
            for record in records:
                size, limit = sizes.get(record.pid), record.spec.max_memory
                if size is not None and size > limit:
                    self._fail(record, f"rss {format_bytes(size)} over max_memory "
                                          f"{format_bytes(limit)}")
        if self.watched and self._timer is None:
            self._timer = self.master.loop.call_later(MEMORY_PERIOD, self._sample)


class ProbeProcess:
    """An exec probe's process: a pidfd on the loop, reaped by its own pid."""

    def __init__(self, loop, popen, helpers):
        self.loop = loop
        self.popen = popen
        self.helpers = helpers
        helpers.add(popen.pid)  # before the loop runs again: the sweep must not reap it
        self.pidfd = os.pidfd_open(popen.pid)
        self.future = loop.create_future()
        loop.add_reader(self.pidfd, self._on_exit)

    def _on_exit(self):
        pid = self.popen.pid
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not ours any more: cannot happen, but never spin
            done, status = pid, None
        if done == 0:
            return
        self.loop.remove_reader(self.pidfd)
        os.close(self.pidfd)
        self.helpers.discard(pid)
        code = None if status is None else os.waitstatus_to_exitcode(status)
        self.popen.returncode = -1 if code is None else code  # Popen must never wait() it
        if not self.future.done():
            self.future.set_result(code)

    def kill(self):
        """SIGKILL its group (or it, before its setsid); _on_exit reaps it."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
            return
        except ProcessLookupError:
            pass
        except PermissionError:
            return
        try:
            os.kill(self.popen.pid, signal.SIGKILL)
        except OSError:
            pass


def tree_rss(pids):
    """{pid: RSS bytes of pid and all its descendants} for the pids alive
    (report.Usage's one pass over /proc; the CPU figures are not needed)."""
    sample = report.Usage().sample(pids)
    return {pid: rss for pid, (_cpu, rss) in sample.items() if rss is not None}


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
