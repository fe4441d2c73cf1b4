"""Cost as the work grows: N `/bin/sleep` services, N = 100, 500, 1000, 2000.

    python benchmarks/scale.py [--counts 100,500,1000,2000] [--runs 5] [--idle 5] [--src DIR ...]
                               [--setting 'cgroups = "off"' ...]

For each N, one fresh master (`python -m corral run`, stdout to /dev/null,
its console to a file) and:
- start: s from launching the master until its last move to RUNNING (the
  master's own event times, wall clock, against the launch's), the whole
  master start-up included; completion is seen by polling `tree` every 0.1 s;
- status: wall ms of the whole `python -m corral status` command (median of
  --runs, exit awaited), with cpu and rss of every instance;
- reload: wall ms of a `reload` request with the config unchanged (median);
- RSS: the master's, in MB, and per service (kB, RSS / N);
- idle: the master's CPU % and voluntary context switches (wake-ups) per s
  over --idle s with nothing happening;
- stop: s from SIGTERM to the master until every one of its N processes is
  gone (by pid and start time, from /proc), and until the master exited.

--src runs the corral of another checkout (a baseline: git worktree add DIR
REV, or git archive REV corral | tar -x -C DIR); given more than once, the
checkouts take turns at each N, so that before and after share the load of
the moment. The harness is a child subreaper and kills what is left by pid.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import procs  # noqa: E402  (benchmarks/procs.py: /proc helpers)


def request(path, cmd, **args):
    """One request on a fresh connection; the result (raises on ok=false)."""
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(path)
        s.sendall(json.dumps({"id": 1, "cmd": cmd, "args": args}).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("the master closed the connection")
            reply += chunk
    answer = json.loads(reply)
    if not answer.get("ok"):
        raise RuntimeError(f"{cmd}: {answer.get('error')}")
    return answer["result"]


def all_running(path, n):
    try:
        tree = request(path, "tree")
    except (OSError, RuntimeError):
        return False
    states = [i["state"] for c in tree["children"] for i in c["instances"]]
    return len(states) == n and all(s == "RUNNING" for s in states)


def measure(n, args, env, folder):
    config = os.path.join(folder, f"n{n}.toml")
    with open(config, "w") as f:
        if args.setting:
            f.write("[corral]\n" + "".join(line + "\n" for line in args.setting) + "\n")
        for i in range(n):
            f.write(f'[services.s{i}]\ncommand = ["/bin/sleep", "100000"]\n\n')
    sock = os.path.join(folder, f"n{n}.sock")
    console = open(os.path.join(folder, f"n{n}.console"), "wb")
    launched = time.time()
    master = subprocess.Popen([sys.executable, "-m", "corral", "run", config, "--socket", sock],
                              env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=console,
                              start_new_session=True)
    row = {"n": n}
    try:
        ok, _ = procs.wait_until(lambda: all_running(sock, n), 120, pause=0.1)
        if not ok:
            raise SystemExit(f"{n}: not all RUNNING within 120 s")
        events = request(sock, "events", lines=1000)
        row["start"] = max(e["time"] for e in events if e["to"] == "RUNNING") - launched

        status = [sys.executable, "-m", "corral", "status", "--socket", sock]
        samples = []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run(status, env=env, stdout=subprocess.DEVNULL, check=True)
            samples.append((time.perf_counter() - t) * 1000)
        row["status"] = statistics.median(samples)

        samples = []
        for _ in range(args.runs):
            t = time.perf_counter()
            request(sock, "reload")
            samples.append((time.perf_counter() - t) * 1000)
        row["reload"] = statistics.median(samples)

        time.sleep(0.5)  # let the reloads' work end before the idle window
        rss = procs.rss_bytes(master.pid)
        row["rss"] = rss / 1e6
        row["rss_per"] = rss / n / 1e3
        cpu0, ctx0, t0 = procs.cpu_seconds(master.pid), procs.ctx_switches(master.pid), time.monotonic()
        time.sleep(args.idle)
        cpu1, ctx1, t1 = procs.cpu_seconds(master.pid), procs.ctx_switches(master.pid), time.monotonic()
        row["idle_cpu"] = (cpu1 - cpu0) / (t1 - t0) * 100
        row["wakeups"] = (ctx1 - ctx0) / (t1 - t0)

        family = procs.descendants(master.pid)
        workers = [(p, s) for p, s in family if procs.stat(p)[1] == master.pid]
        t = time.monotonic()
        master.send_signal(signal.SIGTERM)
        _, gone = procs.wait_until(lambda: procs.count_alive(workers) == 0, 60)
        master.wait(60)
        exited = time.monotonic()
        row["gone"] = (gone - t) if gone else float("nan")
        row["exited"] = exited - t
        row["workers"] = len(workers)
    finally:
        if master.poll() is None:
            procs.kill_tree(master.pid)
            master.kill()
            master.wait()
        procs.kill_tree(os.getpid())
        console.close()
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="100,500,1000,2000")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--setting", action="append", metavar="'KEY = VALUE'",
                        help="a line of the configs' [corral] table (TOML); repeatable")
    parser.add_argument("--src", action="append",
                        help="a checkout whose corral to run (default: this one); repeatable")
    args = parser.parse_args()
    procs.become_subreaper()
    sources = [os.path.abspath(src) for src in args.src or [os.path.dirname(HERE)]]
    envs = []
    for src in sources:
        env = {**os.environ, "PYTHONPATH": src}
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # compiled once, as an installed package is
        subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(src, "corral")],
                       env=env, check=True)
        envs.append(env)
    folder = tempfile.mkdtemp(prefix="corral-scale-", dir="/tmp")
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores", flush=True)
    print("| corral | N | start to all RUNNING, s | `status` CLI, ms | reload unchanged, ms | "
          "master RSS, MB | RSS per service, kB | idle CPU, % | wake-ups/s | "
          "SIGTERM to all gone, s | to master exited, s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    try:
        for n in (int(c) for c in args.counts.split(",")):
            for src, env in zip(sources, envs):
                r = measure(n, args, env, folder)
                print(f"| {src} | {n} | {r['start']:.2f} | {r['status']:.0f} | {r['reload']:.0f} | "
                      f"{r['rss']:.1f} | {r['rss_per']:.1f} | {r['idle_cpu']:.2f} | "
                      f"{r['wakeups']:.1f} | {r['gone']:.2f} | {r['exited']:.2f} |", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
