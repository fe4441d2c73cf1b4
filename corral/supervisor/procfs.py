"""/proc/PID/stat, read one way for the whole master (reaper, report, spawn).

One read per process and no psutil objects: `status` and the stop path scan
every process on the host (docs/benchmarks.md).
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
