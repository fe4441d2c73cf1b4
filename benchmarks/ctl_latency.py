"""How long `corral status` takes, against a bare interpreter.

Starts a master with N sleeping command services (default 50), then times
whole commands, each run R times (default 30): `python -c pass`, `python -m
corral status`, and the installed `corral status` script. Prints median,
p10 and p90 in ms and the ratio to the bare interpreter.

    python benchmarks/ctl_latency.py [--services 50] [--runs 30]

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
import time


def timed(argv, runs):
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[len(samples) // 10], samples[-1 - len(samples) // 10]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="corral-bench-", dir="/tmp")
    config = os.path.join(folder, "bench.toml")
    sock = os.path.join(folder, "c.sock")
    with open(config, "w") as f:
        for i in range(args.services):
            f.write(f'[services.s{i}]\ncommand = ["sleep", "1000"]\n\n')
    master = subprocess.Popen([sys.executable, "-m", "corral", "run", config, "--socket", sock],
                              stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([sys.executable, "-m", "corral", "status", "--check", "--socket", sock],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("the master did not get every service RUNNING in 30 s")
            time.sleep(0.1)
        rows = [("python -c pass", [sys.executable, "-c", "pass"]),
                ("python -m corral status", [sys.executable, "-m", "corral", "status", "--socket", sock])]
        script = shutil.which("corral")
        if script:
            rows.append(("corral status", [script, "status", "--socket", sock]))
        base = None
        print(f"{args.services} services, {args.runs} runs each, wall ms per command")
        for label, argv in rows:
            median, p10, p90 = timed(argv, args.runs)
            base = base or median
            print(f"  {label:26s} median {median:6.1f}  p10 {p10:6.1f}  p90 {p90:6.1f}  x{median / base:.2f}")
    finally:
        os.killpg(master.pid, signal.SIGTERM)
        master.wait(15)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
