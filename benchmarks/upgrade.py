"""How long `corral upgrade` takes, and how long the master does not answer.

Starts a master with N sleeping command services (default 50), then runs
R upgrades (default 5) through the control socket. For each: the time until
the reply (the config loaded in the master, then the dry run in a child),
the time from the reply until the new image answers `version`, and the
longest gap between two answered `version` requests of a client that asks
in a loop meanwhile (what an operator's `corral status` would wait), and
how many of its connections were refused (none should be: the control
socket crosses the exec) or cut (a request under way at the exec). The
workers' pids are checked to be the same after every upgrade.

    python benchmarks/upgrade.py [--services 50] [--runs 5]

Run by hand; the figures go into docs/benchmarks.md with the command.
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from corral.cli.client import Client, NoMaster


def ask(path, cmd, **args):
    with Client(path) as client:
        return client.call(cmd, **args)


def wait_answer(path, check, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            result = ask(path, "version")
            if check(result):
                return result
        except (NoMaster, OSError):
            pass
        time.sleep(0.002)
    raise SystemExit("no answer from the master")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="corral-bench-", dir="/tmp")
    config = os.path.join(folder, "bench.toml")
    with open(config, "w") as f:
        for i in range(args.services):
            f.write(f'[services.s{i}]\ncommand = ["sleep", "100000"]\n\n')
    sock = os.path.join(folder, "c.sock")
    master = subprocess.Popen([sys.executable, "-m", "corral", "run", config, "--socket", sock],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_answer(sock, lambda r: True)
        end = time.monotonic() + 30
        while any(row["state"] != "RUNNING" for row in ask(sock, "status")):
            if time.monotonic() > end:
                raise SystemExit("the services did not start")
            time.sleep(0.05)
        pids = {row["name"]: row["pid"] for row in ask(sock, "status")}
        replies, execs, gaps, outcomes = [], [], [], {}
        for run in range(args.runs):
            stop, longest = threading.Event(), [0.0]

            def poll():
                last = time.monotonic()
                while not stop.is_set():
                    try:
                        ask(sock, "version")
                    except (NoMaster, OSError) as exc:
                        reason = getattr(exc, "reason", repr(exc))
                        outcomes[reason] = outcomes.get(reason, 0) + 1
                        continue
                    now = time.monotonic()
                    longest[0] = max(longest[0], now - last)
                    last = now

            poller = threading.Thread(target=poll)
            poller.start()
            start = time.monotonic()
            ask(sock, "upgrade")
            replied = time.monotonic()
            wait_answer(sock, lambda r: r.get("image", 0) == run + 1)
            answered = time.monotonic()
            stop.set()
            poller.join()
            replies.append((replied - start) * 1000)
            execs.append((answered - replied) * 1000)
            gaps.append(longest[0] * 1000)
            after = {row["name"]: row["pid"] for row in ask(sock, "status")}
            if after != pids:
                raise SystemExit("a worker changed across the upgrade")
        for label, values in (("request -> reply (dry run), ms", replies),
                              ("reply -> new image answers, ms", execs),
                              ("longest unanswered gap, ms", gaps)):
            print(f"{label:34} median {statistics.median(values):7.0f}   "
                  f"min {min(values):7.0f}   max {max(values):7.0f}")
        print(f"{args.services} workers, the same pids after {args.runs} upgrades; "
              f"the looping client's failures: {outcomes or 'none'}")
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(master.pid, signal.SIGKILL)
            master.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
