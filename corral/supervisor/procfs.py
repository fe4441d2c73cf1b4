"""/proc/PID/stat, read one way for the family scans (reaper, spawn).

Usage and the master's own figures come from psutil (report.py, api.py).
The family scans stay here: they need the pgrp, which psutil has no call
for, and the start in clock ticks since boot, to compare exactly with
reaper.ticks_now() (psutil's create_time is epoch seconds from the whole
second of btime); and the stop path reads every worker's family, or every
process on the host: a psutil.Process per pid costs 2-8x a raw read
(docs/benchmarks.md, "psutil in the master").
"""

import os


def pids():
    """The pids /proc lists now."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def stat_fields(pid):
    """The fields of /proc/PID/stat after "(comm)", as bytes: [0] is the state,
    [1] the ppid, [2] the pgrp, [11]+[12] the CPU ticks, [19] the start time,
    [21] the RSS in pages (field N of proc(5) is [N - 3]). None if pid is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: count from the last ")"
    return data[data.rfind(b")") + 2:].split()
