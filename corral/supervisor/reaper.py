"""No orphans, ever: a worker's family, the undertaker, and the subreaper.

PR_SET_PDEATHSIG (spawn.die_with_parent) kills a worker's *direct* process
when the master dies, and stops and kills go to the worker's process group.
That leaves three holes, closed here:

1. A worker's descendants (`sh -c 'sleep 1000 & wait'`: the sleep) outlive a
   master killed with SIGKILL: the death signal is not inherited.
2. A grandchild that daemonized itself (fork, setsid, fork) left the
   worker's group and session: a stop or a kill of the group misses it.
3. Orphans reparented to the master (as subreaper, or as PID 1 of a
   container) turn into zombies that nobody reaps.

The marker: a worker's family. spawn.child_env puts CORRAL_MASTER=<marker>
(this master's pid and a random token, so that a reused pid or another
master never matches) and CORRAL_INSTANCE=<name> in every worker's
environment, and whatever the worker starts inherits them. A worker's
family is its process group plus every live process whose
/proc/PID/environ carries both. Child.signal_family/family_alive use it for
the stop signal, the SIGKILL after stop_timeout, the kill after a crash and
the second Ctrl-C (`corral signal` still goes to the group only). Only the
environ of processes that started after the worker is read.

The undertaker: a master killed with SIGKILL can do nothing, so another
process must. run.py calls protect_master() first thing, before a socket is
bound or a worker started: it forks the undertaker (twice, with setsid, so
it is nobody's child in the master, outside its session, and a Ctrl-C or a
kill of the master's group does not reach it), then makes the master a
subreaper. The undertaker holds a pidfd of the master (opened while the
master was provably its parent), sleeps on it, and when the master is gone,
however it went, SIGKILLs every process carrying the marker, scans again
until none is left, and exits. It needs no state (the marker is all it
knows) and no help from workers or commands, so it covers both. A process,
not a thread: it has to outlive the master. The alternatives were weaker:
a subreaper per worker needs a shim for commands, and a chain of death
signals breaks at the first process that does not set one.

The subreaper: the master sets PR_SET_CHILD_SUBREAPER, so that orphaned
descendants of its workers are reparented to it instead of to init (and
stay findable as its children), and reaps them. Reaper.sweep runs on
SIGCHLD (the handler only posts): it lists the master's children in /proc
and waitpid(pid, WNOHANG)s each one that is not a worker the Spawner still
owns, never waitpid(-1), so no worker's exit status is taken from its pidfd
watcher. As PID 1 (a container's entrypoint) every orphan of the namespace
comes to the master anyway, and the same sweep reaps them; waitid(P_ALL,
WNOWAIT) would only show one zombie at a time, and a worker's zombie that
waits for its watcher would hide the others.

Limits. The marker is in the environment a process was exec'd with: a
descendant that drops it (env -i, a daemon that clears its environment, or
overwrites it with setproctitle) is reached only while it stays in the
worker's process group; so is a process that a Python worker forked without
exec'ing anything (its /proc environ is still the master's). Cgroups close
those gaps where the master may make them (cgroups.py): each worker then has
its own, Child._family reads it instead, and the undertaker kills it whole.

Over 400 lines: the three holes above share one marker, one scan of
/proc and one notion of family (near() and the shared scan); split, each
part would import the others' internals. The next cut, if it grows: the
undertaker process into its own module.
"""

import contextlib
import fcntl
import os
import secrets
import select
import signal
import time

from corral import libc, signalpost
from corral.errors import CorralError
from corral.supervisor import cgroups, procfs


MARKER_VAR = "CORRAL_MASTER"
INSTANCE_VAR = "CORRAL_INSTANCE"
UNDERTAKER_NAME = b"corral-undertaker"  # its comm (ps, top) is cut to 15 bytes
BURY_PAUSE = 0.01  # s between the undertaker's rounds
BURY_LIMIT = 10.0  # s the undertaker keeps killing what keeps forking

_marker = None


def marker():
    """This master's marker: made once, inherited by every fork of it."""
    global _marker
    if _marker is None:
        _marker = f"{os.getpid()}.{secrets.token_hex(6)}"
    return _marker


def adopt_marker(mark):
    """Take over the marker of the image before this one (corral upgrade):
    its workers and its undertaker know that one."""
    global _marker
    _marker = mark


# -- /proc ----------------------------------------------------------------------


def _stat(pid):
    """(state, ppid, pgrp, starttime) of pid, or None if it is gone."""
    # Not psutil: no pgrp call, start in boot ticks (procfs.py), 1.2 vs 2.6 ms per 100.
    fields = procfs.stat_fields(pid)
    try:
        return fields[0], int(fields[1]), int(fields[2]), int(fields[19])
    except (TypeError, IndexError, ValueError):
        return None


def start_ticks(pid):
    """When pid started, in clock ticks since boot (0 if it is gone)."""
    stat = _stat(pid)
    return 0 if stat is None else stat[3]


_TICKS = os.sysconf("SC_CLK_TCK")


def ticks_now():
    """Now, in the clock of start_ticks(): a process started after this call
    has a start time >= it. No /proc read (which would wait for an exec under
    way in the process read)."""
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) * _TICKS // 1_000_000_000


def children(pid):
    """The pids whose parent is pid (zombies included); [] once pid is gone."""
    # Not psutil: its children() reads every process on the host per call.
    if not children_files():
        return [p for p in procfs.pids() if (stat := _stat(p)) is not None and stat[1] == pid]
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                found.extend(int(p) for p in f.read().split())
        except OSError:
            pass  # a thread that ended meanwhile
    return found


_has_children_files = None


def children_files():
    """True where the kernel has /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)."""
    global _has_children_files
    if _has_children_files is None:
        _has_children_files = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
    return _has_children_files


# -- where a worker's family can be ------------------------------------------------
#
# Once the master is a subreaper (protect_master), whatever a worker leaves
# behind is in that worker's subtree or, orphaned, in the subtree of a child
# the master adopted: reparenting goes to the nearest subreaper above, and
# that is the master or a process of the same subtree. So the master looks
# there (near()), a few reads per worker, instead of reading every process
# on the host per stop and per exit, which made a shutdown of 2,000 workers
# quadratic. Without a subreaper (a Master in a test, no children files) it
# scans the host as the undertaker does.

_adopting = False


def adopting():
    """True once this process is a subreaper that finds families by near()."""
    return _adopting and children_files()


def near(roots):
    """roots and every process below them (zombies included), by the children files."""
    seen, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children(pid))
    return seen


def adopted(owns):
    """The master's children that owns(pid) does not claim (not a worker, not
    a helper): orphans it adopted. One read of its children per loop
    iteration, filtered then: a worker reaped later in the iteration is not
    taken for an orphan."""
    global _orphans
    if _sharing() and _orphans is not None:
        return _orphans
    found = [pid for pid in children(os.getpid()) if not owns(pid)]
    if _sharing():
        _orphans = found
        _drop_soon()
    return found


def _needles(mark, instance):
    needles = [os.fsencode(f"\0{MARKER_VAR}={mark}\0")]
    if instance is not None:
        needles.append(os.fsencode(f"\0{INSTANCE_VAR}={instance}\0"))
    return needles


def _environ(pid):
    # Not psutil's Process(pid).environ(): 0.8 vs 3.7 ms per 100 processes, per stop.
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return b"\0" + f.read() + b"\0"
    except OSError:
        return b""


def _carries(pid, needles):
    environ = _environ(pid)
    return all(needle in environ for needle in needles)


# One pass over /proc per iteration of the master's loop (share_scans): a
# shutdown that stops a hundred workers in one callback, or a batch of exits
# handled in one iteration, reads /proc once, not once per worker.
_shared_loop = None
_scan = None  # ([(pid, stat)], {pid: environ}) of this iteration
_orphans = None  # adopted(), this iteration
_drop_armed = False


def share_scans(loop):
    """Let the family() calls made inside one callback batch of loop share a
    scan. A process that the scan saw is read again before it is returned
    (still alive, same start); one born after the scan is missed, as it
    would be by a scan that had just ended."""
    global _shared_loop, _scan, _orphans, _drop_armed
    _shared_loop, _scan, _orphans, _drop_armed = loop, None, None, False


def _sharing():
    return _shared_loop is not None and _shared_loop.is_running() \
        and not _shared_loop.is_closed()


def _drop_soon():
    global _drop_armed
    if not _drop_armed:
        _drop_armed = True
        _shared_loop.call_soon(_drop_scan)  # runs after the callbacks already due


def _drop_scan():
    global _scan, _orphans, _drop_armed
    _scan, _orphans, _drop_armed = None, None, False


def _shared_scan():
    global _scan
    if _scan is None:
        _scan = ([(pid, _stat(pid)) for pid in procfs.pids()], {})
        _drop_soon()
    return _scan


def family(mark, instance=None, since=0, among=None):
    """[(pid, pgrp)] of the live processes (not zombies) that carry the marker
    (and CORRAL_INSTANCE=instance, if given) and started at or after `since`
    (clock ticks since boot). among: the pids to look at (near()); None:
    every process on the host."""
    needles = _needles(mark, instance)
    me = os.getpid()
    found = []
    if among is not None:
        rows, environs = ((pid, _stat(pid)) for pid in among), None
    elif _sharing():
        rows, environs = _shared_scan()
    else:
        rows, environs = ((pid, _stat(pid)) for pid in procfs.pids()), None
    for pid, stat in rows:
        if pid == me:
            continue
        if stat is None or stat[0] in (b"Z", b"X") or stat[3] < since:
            continue
        if environs is None:
            if _carries(pid, needles):
                found.append((pid, stat[2]))
            continue
        environ = environs.get(pid)
        if environ is None:
            environ = environs[pid] = _environ(pid)
        if all(needle in environ for needle in needles):
            now = _stat(pid)  # the scan is from earlier in this iteration
            if now is not None and now[0] not in (b"Z", b"X") and now[3] == stat[3]:
                found.append((pid, now[2]))
    return found


def kill(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


# -- the undertaker ---------------------------------------------------------------


def protect_master(cgroup_root=None):
    """Start the undertaker, then become a subreaper; return the undertaker's pid.
    cgroup_root: the master's cgroups (cgroups.py), killed too when it dies.

    In this order: a subreaper would adopt the undertaker when its first fork
    exits. Call it once, in the master's final process (after -d detached),
    before any socket is bound or worker started, with no event loop running.
    """
    try:
        undertaker = start_undertaker(marker(), cgroup_root)
    except OSError as exc:
        raise CorralError(f"Unable to start the undertaker: {exc}") from exc
    try:
        libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)
    except OSError as exc:
        raise CorralError(f"Unable to become a child subreaper: {exc}") from exc
    global _adopting
    _adopting = True
    return undertaker


def start_undertaker(mark, cgroup_root=None):
    master = os.getpid()
    since = start_ticks(master)
    r, w = os.pipe()  # the undertaker's pid comes back on it
    # Every signal blocked: none reaches the undertaker before it ignores them.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(r)
        os.close(w)
        raise
    if pid == 0:  # never returns
        code = 0
        try:
            os.close(r)
            pidfd = os.pidfd_open(master)
            if os.getppid() != master:  # already gone: the pidfd may name another
                os.close(pidfd)
                pidfd = None
            os.setsid()
            if os.fork() == 0:
                os.write(w, str(os.getpid()).encode())
                _undertake(pidfd, mark, since, keep=w, cgroup_root=cgroup_root)
        except BaseException:  # the child never returns into the master's code
            code = 1
        finally:
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    os.close(w)
    try:
        os.waitpid(pid, 0)  # the first fork exits at once
        data = os.read(r, 32)
    finally:
        os.close(r)
    if not data:
        raise OSError("the undertaker did not start")
    return int(data)


def _undertake(pidfd, mark, since, keep, cgroup_root=None):
    """The undertaker's whole life: wait for the master's death, then bury
    its marked processes. Imports nothing (it may be a fork of a process with
    threads), writes nowhere, ignores the signals that would end it early."""
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGUSR2, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        with contextlib.suppress(OSError):   # best effort
            libc.prctl(libc.PR_SET_NAME, UNDERTAKER_NAME)
        os.close(keep)
        if pidfd is not None and pidfd < 3:  # the master ran without stdin, say
            pidfd = fcntl.fcntl(pidfd, fcntl.F_DUPFD, 3)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        _close_fds_except(pidfd)
        os.chdir("/")
        if pidfd is not None:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            while not poller.poll():
                pass
        if cgroup_root is not None:  # all of it at once, whatever left the marker
            cgroups.kill_tree(cgroup_root)
        bury(mark, since)
        if cgroup_root is not None:
            _remove_when_empty(cgroup_root)
    finally:
        os._exit(0)


def _remove_when_empty(root, limit=BURY_LIMIT):
    """rmdir the master's cgroups once the killed processes have left them."""
    end = time.monotonic() + limit
    while os.path.exists(root) and time.monotonic() < end:
        cgroups.remove_tree(root)
        time.sleep(BURY_PAUSE)


def bury(mark, since=0, limit=BURY_LIMIT):
    """SIGKILL every live process that carries the marker, until none is left."""
    end = time.monotonic() + limit
    while True:
        found = family(mark, since=since)
        for pid, _ in found:
            kill(pid, signal.SIGKILL)
        if not found or time.monotonic() > end:
            return
        time.sleep(BURY_PAUSE)


def _close_fds_except(fd):
    top = os.sysconf("SC_OPEN_MAX")
    if fd is None or fd < 3:
        os.closerange(3, top)
    else:
        os.closerange(3, fd)
        os.closerange(fd + 1, top)


# -- the subreaper's sweep ---------------------------------------------------------


class Reaper:
    """Reap the master's children that are not its workers (adopted orphans).

    owns(pid) says whether pid is a worker that its own watcher will reap.
    """

    def __init__(self, loop, owns, log=None):
        self.loop = loop
        self.owns = owns
        self.log = log
        self.reaped = 0
        self._posted = False

    def install(self):
        signalpost.add(self.loop, signal.SIGCHLD, self._post)
        if self.log is not None and os.getpid() == 1:
            self.log("running as PID 1: reaping every orphan of the namespace")
        self.sweep()  # anything that ended before the handler was there

    def uninstall(self):
        signalpost.remove(self.loop, signal.SIGCHLD)

    def _post(self):
        if not self._posted:
            self._posted = True
            self.loop.call_soon(self.sweep)

    def sweep(self):
        self._posted = False
        for pid in children(os.getpid()):
            if self.owns(pid):
                continue
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if done:
                self.reaped += 1
