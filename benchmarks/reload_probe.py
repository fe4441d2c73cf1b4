"""How long a reload of a .tac keeps the master from answering.

    python benchmarks/reload_probe.py [--reloads 5] [--src DIR]

A master runs examples/twisted/fastpoetry.tac. Each reload loads the file
again in a throwaway child (the probe, a Twisted import). Meanwhile a client
asks `version` every 10 ms; printed: the slowest answer during the reloads,
and the median of the reloads themselves. --src runs the corral of another
checkout (a baseline: git worktree add DIR REV); Twisted comes from this
interpreter. Everything listens on a unix socket in a fresh folder under
/tmp; the master is ended by pid.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from follow_stall import ask  # noqa: E402 (one request on a fresh connection)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--src", default=os.path.dirname(HERE))
    args = parser.parse_args()
    src = os.path.abspath(args.src)
    env = {**os.environ, "PYTHONPATH": src, "POETRY_PORT": "0"}
    folder = tempfile.mkdtemp(prefix="corral-reload-", dir="/tmp")
    sock = os.path.join(folder, "s")
    tac = os.path.join(src, "examples", "twisted", "fastpoetry.tac")
    master = subprocess.Popen(
        [sys.executable, "-m", "corral", "run", tac, "--socket", sock,
         "--logfile", os.path.join(folder, "corral.log")],
        env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                ask(sock, "version")
                break
            except OSError:
                if time.monotonic() > deadline or master.poll() is not None:
                    raise SystemExit("the master did not answer")
                time.sleep(0.05)
        slowest, done = [0.0], threading.Event()

        def client():
            while not done.is_set():
                began = time.monotonic()
                ask(sock, "version")
                slowest[0] = max(slowest[0], time.monotonic() - began)
                time.sleep(0.01)

        asker = threading.Thread(target=client)
        asker.start()
        took = []
        for _ in range(args.reloads):
            began = time.monotonic()
            ask(sock, "reload")
            took.append(time.monotonic() - began)
        done.set()
        asker.join()
        print(f"src {src}: {args.reloads} reloads, median {statistics.median(took) * 1000:.0f} ms;"
              f" slowest `version` meanwhile {slowest[0] * 1000:.0f} ms")
    finally:
        master.terminate()
        master.wait(30)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
