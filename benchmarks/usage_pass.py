"""What psutil costs the master (issue 17 item 4), in-process.

    python benchmarks/usage_pass.py [--src DIR] [--reads]

Starts 100 `/bin/sleep` children and times 40 passes of
report.UsageCache.refresh over them (the clock moved past USAGE_MAX_AGE
each time), with the corral of DIR (default: this checkout). --reads also
times, per 100 processes, the reads the family scans make by hand against
psutil's calls for the same facts (the reason reaper.py and spawn.py keep
/proc: docs/benchmarks.md, "psutil in the master"). Kills its children by
pid at the end.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--src", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
parser.add_argument("--reads", action="store_true")
args = parser.parse_args()
sys.path.insert(0, os.path.abspath(args.src))

from types import SimpleNamespace  # noqa: E402

import psutil  # noqa: E402

from corral.supervisor import reaper, report  # noqa: E402


def median_ms(fn, n=30):
    fn()
    times = []
    for _ in range(n):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


kids = [subprocess.Popen(["/bin/sleep", "600"]) for _ in range(100)]
try:
    time.sleep(0.3)  # exec'd
    pids = [k.pid for k in kids]
    now = [0.0]
    cache = report.UsageCache(clock=lambda: now[0])
    records = [SimpleNamespace(pid=pid, started_at=1.0) for pid in pids]  # (a spawn time: 1.0)
    times = []
    for _ in range(41):
        now[0] += 2 * report.USAGE_MAX_AGE
        began = time.perf_counter()
        found = cache.refresh(records, [])
        times.append((time.perf_counter() - began) * 1000)
    assert len(found) == 100, found
    print(f"{report.__file__}: first pass {times[0]:.2f} ms, "
          f"then median {statistics.median(times[1:]):.2f} ms")
    if args.reads:
        rows = {
            "stat by hand (state, ppid, pgrp, start)": lambda: [reaper._stat(p) for p in pids],
            "psutil os.getpgid + Process.status": lambda: [(os.getpgid(p), psutil.Process(p).status())
                                                          for p in pids],
            "environ by hand": lambda: [reaper._environ(p) for p in pids],
            "psutil Process.environ": lambda: [psutil.Process(p).environ() for p in pids],
        }
        print(f"{sum(1 for _ in os.scandir('/proc') if _.name.isdigit())} processes on the host")
        for name, fn in rows.items():
            print(f"  {name}: {median_ms(fn):.2f} ms per 100")
finally:
    for kid in kids:
        kid.kill()
        kid.wait()
