"""/proc helpers for the benchmarks: children, liveness, CPU, RSS, cleanup.

Only the standard library: the harness reads what the kernel says about a
process and never trusts a supervisor's own report for timing. Processes are
named by (pid, start time) so that a reused pid is never mistaken for one of
ours, and everything is killed by pid, never by name.
"""

import ctypes
import os
import signal
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Orphans of what we start come back to us (not to init): the cleanup finds
    them as our descendants, and nothing started here outlives the run."""
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def stat(pid):
    """(state, ppid, pgrp, utime+stime ticks, starttime, rss pages) or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return (fields[0], int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]),
                int(fields[19]), int(fields[21]))
    except (IndexError, ValueError):
        return None


def children(pid):
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                    found.extend(int(p) for p in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return found


def live_children(pid):
    """Children that are not zombies."""
    out = []
    for child in children(pid):
        st = stat(child)
        if st is not None and st[0] not in (b"Z", b"X"):
            out.append(child)
    return out


def descendants(pid):
    """[(pid, starttime)] of every process below pid (zombies left out)."""
    out, todo, seen = [], [pid], {pid}
    while todo:
        for child in children(todo.pop()):
            if child in seen:
                continue
            seen.add(child)
            st = stat(child)
            if st is not None and st[0] not in (b"Z", b"X"):
                out.append((child, st[4]))
            todo.append(child)
    return out


def alive(pid, starttime=None):
    st = stat(pid)
    if st is None or st[0] in (b"Z", b"X"):
        return False
    return starttime is None or st[4] == starttime


def count_alive(procs):
    return sum(1 for pid, start in procs if alive(pid, start))


def cpu_seconds(pid):
    """CPU time (user+system) of pid and all its threads, in seconds: the
    scheduler's nanoseconds when available, clock ticks otherwise."""
    total, ok = 0, False
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as f:
                    total += int(f.read().split()[0])
                    ok = True
            except (OSError, ValueError, IndexError):
                pass
    except OSError:
        pass
    if ok:
        return total / 1e9
    st = stat(pid)
    return None if st is None else st[3] / CLK_TCK


def rss_bytes(pid):
    st = stat(pid)
    return None if st is None else st[5] * PAGE


def ctx_switches(pid):
    """Voluntary context switches of all threads: how often the process slept
    and woke up."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            total += int(line.split()[1])
            except OSError:
                pass
    except OSError:
        return None
    return total


def reap():
    """Reap our own exited children that nobody waits for (adopted orphans)."""
    n = 0
    for child in children(os.getpid()):
        st = stat(child)
        if st is not None and st[0] == b"Z":
            try:
                if os.waitpid(child, os.WNOHANG)[0]:
                    n += 1
            except ChildProcessError:
                pass
    return n


def kill_tree(pid, limit=5.0):
    """SIGKILL pid (if given and alive) and everything below it, by pid, until
    nothing below is left (bounded). For the final cleanup."""
    end = time.monotonic() + limit
    while True:
        procs = descendants(pid)
        if pid != os.getpid() and alive(pid):
            procs.append((pid, stat(pid)[4]))
        for p, start in procs:
            if alive(p, start):
                try:
                    os.kill(p, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        reap()
        if not procs or time.monotonic() > end:
            return
        time.sleep(0.02)


def wait_until(check, timeout, pause=0.002):
    """Poll check() until it returns something true; (value, monotonic time) or
    (None, None) after timeout."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        now = time.monotonic()
        if value:
            return value, now
        if now > end:
            return None, None
        time.sleep(pause)
