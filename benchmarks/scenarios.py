"""The scenarios of issue 6, each run against one configured peer (peers.py).

Every function starts its own master(s) in a fresh folder, measures with
time.monotonic() and /proc, always stops what it started (peer.stop() in a
finally, which ends in SIGKILL by pid), and returns a dict of samples. Every
loop is bounded in count and in time. Connections go to 127.0.0.1 only.
"""

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time

import peers
import procs

HERE = os.path.dirname(os.path.abspath(__file__))
LOGWRITER = os.path.join(HERE, "logwriter.py")
START_WINDOW = 1.0  # s: corral's backoff_reset, supervisord's startsecs (defaults)
MAX_CONNECTS = 20_000   # client loop bound per restart measurement
SIGUSR1_BIT = 1 << (signal.SIGUSR1 - 1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echo_once(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"hello\n")
            return s.recv(64) == b"hello\n"
    except OSError:
        return False


def timed_command(argv, runs, limit=30.0):
    """Wall ms of each run of argv. The exit is awaited on a pidfd: Popen.wait
    with a timeout polls with sleeps of up to 50 ms, which would round every
    figure up to a step of 50 ms. A run longer than `limit` s is killed."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        fd = os.pidfd_open(proc.pid)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            if not poller.poll(limit * 1000):
                proc.kill()
        finally:
            os.close(fd)
        proc.wait()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _start_echo(peer):
    """Start peer with one echo server service; its port."""
    port = free_port()
    peer.start([peers.Svc("echo", kind="echo", port=port)])
    return port


def _await_echo(peer, port):
    """Until the echo server is RUNNING and answers, then a stable run past
    every master's start window (corral's backoff_reset and supervisord's
    startsecs, 1 s each): a crash inside it is a failed start, which waits
    out a backoff, and this scenario measures the restart after a good run."""
    peer.wait_api()
    ok, _ = peer.wait_running(1, timeout=20)
    if not ok or not procs.wait_until(lambda: echo_once(port), 10, pause=0.01)[0]:
        raise RuntimeError(f"{peer.label}: the echo server never answered")
    time.sleep(START_WINDOW + 0.2)


def _only_worker(peer, timeout=10):
    value, _ = procs.wait_until(lambda: (w := peer.workers()) and len(w) == 1 and w[0], timeout)
    if not value:
        raise RuntimeError(f"{peer.label}: expected one worker, found {peer.workers()}")
    return value


# -- 1, 2 (and 3 with one service): restart after SIGKILL --------------------------


def restart(peer, status_runs=0, timeout=12.0):
    """SIGKILL the echo worker; ms until a new pid exists, until the port accepts
    the connection that gets the first echo, and until that echo; connections
    refused (and reset by a dying listener) meanwhile."""
    port = _start_echo(peer)
    try:
        _await_echo(peer, port)
        status_ms = timed_command(peer.status_argv(), status_runs) if status_runs else []
        old = _only_worker(peer)
        result = _measure_restart(peer, old, port, timeout)
        result["status_1_ms"] = status_ms
        return result
    finally:
        peer.stop()


def _measure_restart(peer, old, port, timeout):
    t_pid = t_accept = t_echo = None
    refused = reset = attempts = 0
    sock = conn_at = None
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    end = t0 + timeout
    try:
        while True:
            now = time.monotonic()
            if now > end:
                break
            if t_pid is None and any(c != old for c in procs.live_children(peer.pid)):
                t_pid = now
            if t_echo is None:
                if sock is None:
                    if attempts >= MAX_CONNECTS:
                        time.sleep(0.001)
                        continue
                    attempts += 1
                    s = socket.socket()
                    s.settimeout(0.5)
                    try:
                        s.connect(("127.0.0.1", port))
                        conn_at = time.monotonic()
                        s.sendall(b"ping\n")
                        sock = s
                    except ConnectionRefusedError:
                        refused += 1
                        s.close()
                        time.sleep(0.001)
                    except OSError:
                        reset += 1
                        s.close()
                        time.sleep(0.001)
                else:
                    readable, _, _ = select.select([sock], [], [], 0.001)
                    if readable:
                        try:
                            data = sock.recv(64)
                        except OSError:
                            data = b""
                        if data.startswith(b"ping"):
                            t_echo, t_accept = time.monotonic(), conn_at
                        else:
                            reset += 1  # accepted by the dying listener, then reset
                        sock.close()
                        sock = None
            if t_pid is not None and t_echo is not None:
                break
    finally:
        if sock is not None:
            sock.close()

    def ms(t):
        return None if t is None else (t - t0) * 1000

    return {"new_pid_ms": ms(t_pid), "accept_ms": ms(t_accept), "echo_ms": ms(t_echo),
            "refused": refused, "reset": reset, "attempts": attempts}


# -- 3, 5: a fleet of sleeping services ---------------------------------------------


def fleet(peer, n=100, idle_s=3.0, status_runs=5, stop_timeout=15.0):
    """Start n sleeping services: s until all RUNNING (by the master's API), the
    master's RSS and idle CPU, `status` wall ms, s from SIGTERM until every
    service process is gone (and until the master exited)."""
    services = [peers.Svc(f"s{i}", ["/bin/sleep", "100000"]) for i in range(n)]
    peer.start(services)
    try:
        ok, t_running = peer.wait_running(n, timeout=60, pause=0.01)
        if not ok:
            raise RuntimeError(f"{peer.label}: {n} services not RUNNING in 60 s")
        result = {"running_s": t_running - peer.launched}
        if idle_s:
            time.sleep(1.0)  # let start-up settle
            cpu0, ctx0, t0 = procs.cpu_seconds(peer.pid), procs.ctx_switches(peer.pid), \
                time.monotonic()
            time.sleep(idle_s)
            cpu1, ctx1, t1 = procs.cpu_seconds(peer.pid), procs.ctx_switches(peer.pid), \
                time.monotonic()
            result["idle_cpu_pct"] = (cpu1 - cpu0) / (t1 - t0) * 100
            result["idle_wakeups_per_s"] = (ctx1 - ctx0) / (t1 - t0)
            result["rss_mb"] = procs.rss_bytes(peer.pid) / 2**20
        if status_runs:
            result["status_n_ms"] = timed_command(peer.status_argv(), status_runs)
        kids = procs.descendants(peer.pid)
        t0 = time.monotonic()
        os.kill(peer.pid, signal.SIGTERM)
        _, t_gone = procs.wait_until(lambda: procs.count_alive(kids) == 0, stop_timeout,
                                     pause=0.001)
        _, t_exit = procs.wait_until(lambda: peer.proc.poll() is not None, stop_timeout,
                                     pause=0.005)
        result["stop_s"] = None if t_gone is None else t_gone - t0
        result["master_exit_s"] = None if t_exit is None else t_exit - t0
        result["processes"] = len(kids)
        return result
    finally:
        peer.stop()


# -- 4: log throughput --------------------------------------------------------------


def _is_writer(pid):
    """pid has exec'd logwriter.py (not a fork of its master that has not exec'd
    yet, which may have a SIGUSR1 handler of its own) and catches SIGUSR1."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"logwriter.py" not in f.read():
                return False
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & SIGUSR1_BIT)
    except OSError:
        pass
    return False


def _ends_with(path, tail):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - len(tail) - 1))
            return f.read().endswith(tail)
    except OSError:
        return False


def expected_lines(n, size):
    pad = b"x" * (size - 12)
    return [b"L%09d %s" % (i, pad) for i in range(n)]


def check_log(path, expected, prefixed):
    """(lost, corrupted) lines of path against expected (payloads, no newline).
    prefixed: corral's 'date time name[pid] ' prefix (padded) precedes each payload."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return len(expected), 0
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if prefixed:
        payloads = []
        for line in lines:
            i = line.find(b" w[")
            j = line.find(b"] ", i) if i >= 0 else -1
            if j >= 0:
                payloads.append(line[j + 2:].lstrip(b" "))
            elif b" w[" in line:
                payloads.append(b"?corrupt")
    else:
        payloads = lines
    if payloads == expected:
        return 0, 0
    want = {p: i for i, p in enumerate(expected)}
    seen, corrupted = set(), 0
    for p in payloads:
        i = want.get(p)
        if i is None or i in seen:
            corrupted += 1
        else:
            seen.add(i)
    return len(expected) - len(seen), corrupted


def logs(peer, lines, size=100, timeout=120.0):
    """One worker writes `lines` lines of `size` bytes: s until every one is in
    each log file, master CPU s meanwhile, lines lost and corrupted."""
    svc = peers.Svc("w", [peer.python, LOGWRITER, "--lines", str(lines), "--size", str(size)],
                    log=True)
    peer.start([svc])
    try:
        writer, _ = procs.wait_until(
            lambda: (w := peer.workers()) and len(w) == 1 and _is_writer(w[0]) and w[0],
            20, pause=0.005)
        if not writer:
            raise RuntimeError(f"{peer.label}: the log writer did not start")
        files = peer.log_files("w")
        tail = b"L%09d " % (lines - 1) + b"x" * (size - 12) + b"\n"
        cpu0 = procs.cpu_seconds(peer.pid)
        t0 = time.monotonic()
        os.kill(writer, signal.SIGUSR1)
        done, t1 = procs.wait_until(lambda: all(_ends_with(p, tail) for p in files), timeout,
                                    pause=0.002)
        cpu1 = procs.cpu_seconds(peer.pid)
        result = {"log_s": None if not done else t1 - t0, "master_cpu_s": cpu1 - cpu0,
                  "files": len(files)}
        expected = expected_lines(lines, size)
        lost = corrupted = 0
        for path in files:
            lo, co = check_log(path, expected, prefixed=peer.key == "corral")
            lost, corrupted = max(lost, lo), max(corrupted, co)
        result["lost"], result["corrupted"] = lost, corrupted
        result["bytes"] = sum(os.path.getsize(p) for p in files if os.path.exists(p))
        return result
    finally:
        peer.stop()
        # Gone before the next repetition: the kernel drops a deleted file's
        # dirty pages instead of writing them back while the next flood runs.
        for path in peer.log_files("w"):
            with contextlib.suppress(OSError):
                os.unlink(path)


# -- 6: a crash loop ----------------------------------------------------------------


def crash_loop(peer, window=10.0):
    """A command that exits 1 at once: starts within `window` s of the first,
    master CPU s over the window, the state at its end."""
    counter = os.path.join(peer.workdir, "starts")
    svc = peers.Svc("crash", ["/bin/sh", "-c", f"echo x >> {counter}; exit 1"])
    peer.start([svc])
    try:
        ok, t_first = procs.wait_until(lambda: os.path.exists(counter), 20, pause=0.002)
        if not ok:
            raise RuntimeError(f"{peer.label}: the crashing service never started")
        cpu0 = procs.cpu_seconds(peer.pid)
        time.sleep(max(0.0, t_first + window - time.monotonic()))
        cpu1 = procs.cpu_seconds(peer.pid)
        with open(counter) as f:
            starts = len(f.read().split())
        try:
            state = peer.states().get("crash")
        except Exception as exc:  # noqa: BLE001 -- reported, not fatal
            state = f"? ({exc})"
        return {"starts": starts, "master_cpu_s": cpu1 - cpu0, "state": state}
    finally:
        peer.stop()


# -- 7: orphans after SIGKILL of the master ------------------------------------------


def orphans(peer, n=10, wait=2.0):
    """n services that each run a child of their own (sh -c 'sleep & wait'):
    processes left alive `wait` s after SIGKILL of the master (of how many)."""
    services = [peers.Svc(f"o{i}", ["/bin/sh", "-c", "/bin/sleep 100000 & wait"])
                for i in range(n)]
    peer.start(services)
    try:
        ok, _ = peer.wait_running(n, timeout=30)
        if not ok:
            raise RuntimeError(f"{peer.label}: {n} services not running")
        kids, _ = procs.wait_until(lambda: (d := procs.descendants(peer.pid))
                                   and len(d) >= 2 * n and d, 10, pause=0.01)
        kids = kids or procs.descendants(peer.pid)
        t0 = time.monotonic()
        os.kill(peer.pid, signal.SIGKILL)
        _, t_clear = procs.wait_until(lambda: procs.count_alive(kids) == 0, wait, pause=0.005)
        left = procs.count_alive(kids)
        for pid, start in kids:  # our own cleanup, by pid
            if procs.alive(pid, start):
                os.kill(pid, signal.SIGKILL)
        return {"orphans": left, "processes": len(kids),
                "clear_s": None if t_clear is None else t_clear - t0}
    finally:
        peer.kill()


# -- 8: SIGTERM right after a respawn ------------------------------------------------


def term_after_respawn(peer, timeout=10.0):
    """SIGKILL the echo worker; the moment a new worker pid exists, SIGTERM the
    master: s until the master and every process below it are gone (None: not
    within timeout -- the SIGTERM was dropped, or the stop signal the master
    sent did not reach the fresh worker and it waits, or it left orphans)."""
    port = _start_echo(peer)
    try:
        _await_echo(peer, port)
        old = _only_worker(peer)
        os.kill(old, signal.SIGKILL)
        new, _ = procs.wait_until(
            lambda: next((c for c in procs.live_children(peer.pid) if c != old), None), 12,
            pause=0.0005)
        if not new:
            raise RuntimeError(f"{peer.label}: no respawn within 12 s")
        kids = procs.descendants(peer.pid)
        t0 = time.monotonic()
        os.kill(peer.pid, signal.SIGTERM)

        def gone():
            return peer.proc.poll() is not None and procs.count_alive(kids) == 0 \
                and not procs.descendants(peer.pid)
        _, t_gone = procs.wait_until(gone, timeout, pause=0.001)
        # Not gone: is the master still there (it waits, or it dropped the
        # SIGTERM), and how many of its processes are alive (orphans, if it left)?
        return {"gone_s": None if t_gone is None else t_gone - t0,
                "lost": t_gone is None, "master_alive": peer.proc.poll() is None,
                "left": procs.count_alive(kids)}
    finally:
        peer.kill()


def python_version():
    return sys.version.split()[0]
