"""`corral upgrade`: the master re-executes itself, same pid, workers untouched.

This module is the old image's half (refuse, dry-run, snapshot, exec);
resume.py is the new image's (read, check, take over, or fall back).

What makes it possible: the workers are the master's children, and a
process keeps its children, its pid and its open files across execve(2).
Every worker is reaped by waitid on its pidfd (spawn.Child), never through
multiprocess's Process objects, which a new image would not have; the
supervision state is plain data (core/snapshot.py). What crosses the exec:

- fds, their close-on-exec flag cleared: each worker's pidfd, log pipes,
  notify pipe and stdin pipe's write end, the listening sockets the master holds (sockets.py), the
  control socket (clients that connect meanwhile wait in its backlog), the
  locked pidfile, and a memfd holding the snapshot (JSON: the records, the
  fd numbers, each pipe's partial last line, the recent events);
- what the kernel keeps anyway: the pid (so PR_SET_PDEATHSIG of the
  workers and the undertaker's pidfd still name this master), the
  subreaper flag, the blocked-signal mask, the cwd, stdout and stderr.

Nothing is read from a pipe between the snapshot and the exec, so a line
is never lost or read twice: what the old image had not read is still in
the pipe, what it had read but not ended with a newline is in the snapshot.
The stop and reload signals are blocked from the snapshot until the new
image has its handlers (a SIGTERM meanwhile would kill the master, and the
undertaker the workers): they wait in the kernel instead.

If the new image cannot start, nothing is lost. Three lines of defence:
1. Before the exec, a child runs the new image in dry-run mode with the
   snapshot and the fds (resume.check): it imports the new code, parses the
   command line, loads the config, and checks that the snapshot fits it
   (every instance there and here, every held socket's server). Any
   failure refuses the upgrade; the old master goes on as before. The
   config on disk must also equal the running one (a reload first).
2. The exec'd image runs the same check before it touches any carried
   fd; if it fails (the config or the code changed since the dry run, or
   the new interpreter cannot import corral at all: TRAMPOLINE catches
   that), it re-executes the old image (`fallback` in the snapshot: the
   old interpreter and command line) with the same snapshot. That one
   resumes and logs why the upgrade failed. With a new version installed
   in place, the "old image" is the same interpreter: the fallback then
   runs the code on disk again, which check() just passed in the dry run.
3. execve itself failing (no such interpreter) returns into the old image,
   which takes its pipes back and goes on (exec_now).
What is not covered: a new interpreter that crashes before running any
Python (then the master is gone, and the undertaker ends every worker, as
when a master dies), and a fallback image that fails check() too.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from corral.core import snapshot as core_snapshot
from corral.errors import CorralError
from corral.supervisor.spawn import flush_std_streams

SNAPSHOT_VAR = "CORRAL_UPGRADE_SNAPSHOT"  # the memfd's number, in the new image's environment
CHECK_VAR = "CORRAL_UPGRADE_CHECK"  # "1": only check (the dry run in a child)
# Held from the snapshot until the new image's handlers are in (serve.py).
HELD_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGCHLD, signal.SIGQUIT}
CHECK_TIMEOUT = 60.0  # s the dry run may take (a Python config may import a lot)

# The new image's first code: sys.argv as `corral` gets it, then main().
# If even `import corral` fails, the old image is exec'd again (stdlib only).
TRAMPOLINE = r"""
import json, os, sys
sys.argv = ["corral"] + sys.argv[1:]
fd = int(os.environ["CORRAL_UPGRADE_SNAPSHOT"])
data = json.loads(os.pread(fd, os.fstat(fd).st_size, 0))
os.chdir(data["launch_cwd"])  # where `corral run` was typed: its relative paths
try:
    from corral.cli.main import main
except BaseException as exc:
    if os.environ.get("CORRAL_UPGRADE_CHECK") == "1" or data["attempt"] != "upgrade":
        raise
    data["attempt"], data["error"] = "fallback", f"the new image cannot import corral: {exc!r}"
    blob = json.dumps(data).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, blob, 0)
    old = data["fallback"]
    os.execve(old["executable"], old["argv"], {**old["env"], "CORRAL_UPGRADE_SNAPSHOT": str(fd)})
del json, fd, data
raise SystemExit(main())
"""


# -- the old image: capture, dry run, exec ----------------------------------------


class Upgrader:
    """The verb: refuse what cannot work, dry-run the new image, then exec."""

    def __init__(self, master, run):
        self.master = master
        self.run = run  # serve.Run
        self.busy = False

    async def upgrade(self, python=None):
        """Return once the new image passed its dry run; the exec follows on
        the next turn of the loop (after this reply is written). Raises
        CorralError naming why nothing was done."""
        from corral import spec as spec_module

        master = self.master
        if self.busy:
            raise CorralError("an upgrade is under way")
        if master.shutting_down:
            raise CorralError("the master is shutting down")
        self.busy = True
        try:
            async with master.reload_lock:
                try:
                    new = master.loader(master.config.path)
                except CorralError as exc:
                    raise CorralError(f"the config does not load: {exc}") from None
                plan = spec_module.diff(master.config.services, new.services)
                differ = [f"{what}: {', '.join(plan[what])}"
                          for what in ("added", "removed", "changed", "scaled") if plan[what]]
                if differ:
                    raise CorralError("the config on disk is not the running one ("
                                      + "; ".join(differ) + "): `corral reload` first")
                pipes = [(s.fd, s.instance, s.service, s.pid, s.stream, s.buf)
                         for s in master.loghub._sources.values()]
                data = capture(master, self.run.control.listening_fd(), self.run.pidfile,
                               self.run, pipes)
                await dry_run(master, data, python, self.run)
                if master.shutting_down:
                    raise CorralError("the master began shutting down")
                executable, _ = command_line(python, self.run.argv)
                master.log(f"upgrade: {executable} passed its dry run")
                master.loop.call_soon(self._exec, python)
        except BaseException:
            self.busy = False
            raise
        return {"pid": os.getpid(), "version": _version(), "image": self.run.image,
                "python": executable}

    def _exec(self, python):
        try:
            if not self.master.shutting_down:
                exec_now(self.master, self.run, python)  # returns only if execve failed
        finally:
            self.busy = False


def capture(master, control_fd, pidfile, run, pipes):
    """The snapshot of master as a dict. pipes: the LogHub's (hand_over() for
    the exec; for the dry run, as they are). run: the Run of serve.py."""
    children = []
    for pid, child in master._children.items():
        if child.exit is None and child.pidfd is not None:
            children.append({"name": child.instance, "pid": pid, "kind": child.kind,
                             "pidfd": child.pidfd, "notify": child.notify_fd,
                             "stdin": child.stdin_fd, "since": child.since})
    return {
        "attempt": "upgrade", "error": None, "image": run.image + 1,
        "from_version": _version(),
        "fallback": {"executable": sys.executable,
                     "argv": [sys.executable, "-c", TRAMPOLINE, *run.argv],
                     "env": image_env(master)},
        "cwd": os.getcwd(), "launch_cwd": run.launch_cwd,
        "console": master.console, "color": master.color,
        "marker": master.spawner.marker, "undertaker": run.undertaker,
        "pidfile": None if pidfile is None else {"path": pidfile.path, "fd": pidfile.fd},
        "control": control_fd, "http_token": run.http_token,
        "core": core_snapshot.capture(master.sup),
        "children": children,
        "pipes": [{"fd": fd, "instance": i, "service": s, "pid": p, "stream": st,
                   "buf": base64.b64encode(buf).decode()} for fd, i, s, p, st, buf in pipes],
        "sockets": master.sockets.hand_over(),
        "notify_socket": master.notify.hand_over(),
        "probes": [[name, pid] for (name, pid) in master._probes],
        "events": list(master.events),
    }


def carried_fds(data):
    """Every fd the snapshot names."""
    fds = [data["control"]]
    if data["pidfile"] is not None:
        fds.append(data["pidfile"]["fd"])
    for child in data["children"]:
        fds += [child["pidfd"]] + [child[key] for key in ("notify", "stdin")
                                   if child.get(key) is not None]
    fds += [pipe["fd"] for pipe in data["pipes"]]
    for sockets in data["sockets"].values():
        fds += sockets
    if data["notify_socket"] is not None:
        fds.append(data["notify_socket"]["fd"])
    return fds


def image_env(master):
    """The environment a new image (or the fallback) starts with: the
    master's, with systemd's NOTIFY_SOCKET back (sdnotify.py took it out)."""
    env = {key: value for key, value in os.environ.items() if key not in (SNAPSHOT_VAR, CHECK_VAR)}
    if master.notifier.address is not None:
        env["NOTIFY_SOCKET"] = master.notifier.address
    return env


def write_memfd(data):
    fd = os.memfd_create("corral-upgrade", 0)  # no MFD_CLOEXEC: it crosses the exec
    os.write(fd, json.dumps(data).encode())
    return fd


def command_line(python, argv):
    """The new image: python (default: this interpreter, with whatever corral
    is installed for it now) running TRAMPOLINE with the same `corral` arguments."""
    python = python or sys.executable
    return python, [python, "-c", TRAMPOLINE, *argv]


async def dry_run(master, data, python, run):
    """Run the new image in check mode in a child; raise CorralError with its words."""
    from corral.supervisor.health import ProbeProcess

    executable, args = command_line(python, run.argv)
    fds = carried_fds(data)
    memfd = write_memfd(data)
    env = {**os.environ, SNAPSHOT_VAR: str(memfd), CHECK_VAR: "1"}
    with tempfile.TemporaryFile() as out:
        try:
            popen = subprocess.Popen(args, executable=executable, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT, env=env,
                                     pass_fds=[memfd, *fds], start_new_session=True,
                                     cwd=run.launch_cwd)
        except OSError as exc:
            raise CorralError(f"cannot run {executable}: {exc.strerror or exc}") from None
        finally:
            os.close(memfd)
        watch = ProbeProcess(master.loop, popen, master.spawner.helpers)
        timer = master.loop.call_later(CHECK_TIMEOUT, watch.kill)
        try:
            code = await watch.future
        finally:
            timer.cancel()
            if popen.returncode is None:
                watch.kill()
        out.seek(0)
        said = out.read(8192).decode("utf-8", "replace").strip()
    if code != 0:
        why = said.splitlines()[-1] if said else f"exit {code}"
        raise CorralError(f"the new image refused: {why}")


def exec_now(master, run, python):
    """Snapshot and exec, in one callback: nothing runs in between. Returns
    (the reason) only if that failed; the old image then takes everything
    back and goes on."""
    executable, args = command_line(python, run.argv)
    notifier = master.notifier  # systemd's: told as for a reload; READY=1 from the new image
    told = notifier.address is not None and notifier.ready
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    pipes = master.loghub.hand_over()  # from here on, nothing reads a pipe
    fds, memfd = [], None
    try:
        data = capture(master, run.control.listening_fd(), run.pidfile, run, pipes)
        fds = carried_fds(data)
        memfd = write_memfd(data)
        for fd in fds:
            os.set_inheritable(fd, True)
        env = {**image_env(master), SNAPSHOT_VAR: str(memfd)}
        if told:
            usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            notifier.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=upgrading")
        master.log(f"upgrade: re-executing {executable} (corral {_version()} -> the installed one)")
        flush_std_streams()  # the exec drops what Python buffered
        os.execve(executable, args, env)
    except Exception as exc:  # noqa: BLE001 - whatever it was, the old image goes on
        error = getattr(exc, "strerror", None) or str(exc) or repr(exc)
    if memfd is not None:
        os.close(memfd)
    for fd in fds:
        os.set_inheritable(fd, False)
    master.loghub.take_back(pipes)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    if told:
        notifier.send("READY=1", "STATUS=upgrade failed")
    master.log(f"upgrade failed: cannot exec {executable}: {error}; the running master goes on")
    return error


def _version():
    from corral import __version__

    return __version__
