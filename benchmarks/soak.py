"""Memory over a long life: restarts, control connections and reloads.

    python benchmarks/soak.py [--restarts 10000] [--connections 10000] [--reloads 100] [--src DIR]

One master with two services: `flap` (`sleep 0.02`, restarted at once
after each run: backoff_reset = 0.01, so every exit is a good run) and a
Python worker that crashes every 0.05 s the same way. Three phases, one
after the other: wait until the two have restarted --restarts times in
all; open --connections fresh connections to the control socket, one
`status` each; --reloads `reload`s of an unchanged config. The master's
RSS (MB) and open fds are printed every tenth of each phase, so a plateau
or a growth is visible. The master is ended by pid at the end.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import procs  # noqa: E402  (benchmarks/procs.py)
from scale import request  # noqa: E402  (one request on a fresh connection)

CRASHER = """
import asyncio, os
import corral

class Crash(corral.Service):
    def startService(self):
        super().startService()
        asyncio.get_running_loop().call_later(0.05, os._exit, 1)

application = corral.Application("soak")
Crash().supervise(backoff_reset=0.01).setServiceParent(application)
"""


def sample(pid):
    rss = procs.rss_bytes(pid) / 1e6
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return f"rss {rss:.1f} MB, fds {fds}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restarts", type=int, default=10000)
    parser.add_argument("--connections", type=int, default=10000)
    parser.add_argument("--reloads", type=int, default=100)
    parser.add_argument("--src", default=os.path.dirname(HERE))
    args = parser.parse_args()
    procs.become_subreaper()
    env = {**os.environ, "PYTHONPATH": os.path.abspath(args.src)}
    folder = tempfile.mkdtemp(prefix="corral-soak-", dir="/tmp")
    config = os.path.join(folder, "soak.py")
    with open(config, "w") as f:
        f.write(CRASHER)
        f.write('\ncorral.Command(["sleep", "0.02"], name="flap")'
                '.supervise(backoff_reset=0.01).setServiceParent(application)\n')
    sock = os.path.join(folder, "s.sock")
    master = subprocess.Popen([sys.executable, "-m", "corral", "run", config, "--socket", sock,
                               "--logfile", os.path.join(folder, "corral.log")],
                              env=env, cwd=folder, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        procs.wait_until(lambda: os.path.exists(sock), 30, pause=0.05)
        time.sleep(0.5)
        print(f"start: {sample(master.pid)}", flush=True)
        t0, step = time.monotonic(), max(1, args.restarts // 10)
        mark = step
        while True:
            total = sum(r["restarts"] for r in request(sock, "status"))
            if total >= mark:
                print(f"restarts {total} ({time.monotonic() - t0:.0f} s): {sample(master.pid)}",
                      flush=True)
                mark += step
            if total >= args.restarts:
                break
            time.sleep(0.5)
        request(sock, "stop", names=["all"])
        step = max(1, args.connections // 10)
        for i in range(1, args.connections + 1):
            request(sock, "status")
            if i % step == 0:
                print(f"connections {i}: {sample(master.pid)}", flush=True)
        step = max(1, args.reloads // 10)
        for i in range(1, args.reloads + 1):
            request(sock, "reload")
            if i % step == 0:
                print(f"reloads {i}: {sample(master.pid)}", flush=True)
    finally:
        if master.poll() is None:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(30)
            except subprocess.TimeoutExpired:
                procs.kill_tree(master.pid)
                master.kill()
                master.wait()
        procs.kill_tree(os.getpid())
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
