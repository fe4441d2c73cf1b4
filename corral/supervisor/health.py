"""Health probes: the I/O that core/watch.py decides on.

Invariant: nothing here blocks the loop, and nothing runs at all for
services without `health` or `max_memory`: the core asks for one probe at a
time (Probe effects, start to start every `interval`), and for one RSS
pass a second while a RUNNING instance has `max_memory`; what the answers
mean (N failures in a row, too much RSS: stopped as FAILING, then the
restart policy) is the core's. Probes:

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

Memory is not read here: the master's one report.UsageCache (one psutil
pass over the workers' trees, shared with status and /metrics) gives each
watched worker's whole process tree's RSS.
"""

import os
import signal
import subprocess

from corral import privileges, probes
from corral.supervisor import spawn


async def probe_target(target, timeout):
    """(ok, detail) of one tcp or http probe of target (probes.py's)."""
    probe = probes.probe_tcp if target.kind == "tcp" else probes.probe_http
    return await probe(target, timeout)


async def probe(master, record, check):
    """(healthy, detail) of one health probe of record, within check.timeout."""
    if check.kind == "exec":
        return await probes.bounded(check.timeout, _exec_probe(master, record, check))
    return await probe_target(check.target, check.timeout)


async def _exec_probe(master, record, check):
    spec = record.spec
    helpers = getattr(master.spawner, "helpers", set())
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
    watch = ProbeProcess(master.loop, popen, helpers)
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


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
