"""The LogHub alone against a raw copy: what 100 MB of output costs corral's
log path, without a master, a control socket or a peer in the way.

    python benchmarks/loghub_flood.py [--lines 1000000] [--reps 10] [--src DIR]

For each repetition and each mode, in turn (so that the machine's noise hits
every mode alike), a fresh benchmarks/logwriter.py writes --lines lines of
100 bytes into a pipe once signalled, and this process reads the pipe on an
asyncio loop until the last line is in the file(s):

  raw     os.read 128 KiB, os.write to one file: what supervisord does
  merged  the LogHub writing the merged, timestamped log only
  dir     the LogHub writing the service's own file only
  both    the LogHub writing both (what `corral run --logfile F --log-dir D` does)

Printed: the median wall s and CPU s (user + sys of this process) per mode,
and each mode's median wall time over raw's. Files go to a fresh folder
under /tmp (ext4 here), removed at the end. --src measures the corral
package in another checkout (a baseline: git archive REV corral | tar -x -C DIR).
"""

import argparse
import asyncio
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("raw", "merged", "dir", "both")


def wait_for_handler(pid, sig, timeout=10.0):
    """Until pid catches sig (SigCgt in /proc/PID/status): the writer is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:") and int(line.split()[1], 16) >> (sig - 1) & 1:
                    return
        time.sleep(0.005)
    raise RuntimeError("the log writer never got ready")


def one_run(mode, lines, folder):
    from corral.supervisor.logs import LogHub
    for name in os.listdir(folder):
        os.unlink(os.path.join(folder, name))
    loop = asyncio.new_event_loop()
    writer = subprocess.Popen([sys.executable, os.path.join(HERE, "logwriter.py"),
                               "--lines", str(lines)], stdout=subprocess.PIPE)
    fd = os.dup(writer.stdout.fileno())
    writer.stdout.close()
    target = os.path.join(folder, "w.log" if mode == "dir" else "corral.log")
    hub = out = None
    try:
        wait_for_handler(writer.pid, signal.SIGUSR1)
        if mode == "raw":
            os.set_blocking(fd, False)
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

            def copy():
                try:
                    data = os.read(fd, 128 << 10)
                except BlockingIOError:
                    return
                if not data:
                    loop.remove_reader(fd)
                    return
                os.write(out, data)
            loop.add_reader(fd, copy)
        else:
            hub = LogHub(loop, logfile=target if mode in ("merged", "both") else None,
                         log_dir=folder if mode in ("dir", "both") else None)
            hub.attach(fd, "w", "w", writer.pid, "out")
        tail = b"L%09d " % (lines - 1)
        done = loop.create_future()

        def poll():
            try:
                size = os.path.getsize(target)
                with open(target, "rb") as f:
                    f.seek(max(0, size - 300))
                    if tail in f.read():
                        done.set_result(None)
                        return
            except FileNotFoundError:
                pass
            loop.call_later(0.002, poll)

        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        os.kill(writer.pid, signal.SIGUSR1)
        loop.call_later(0.002, poll)
        loop.run_until_complete(asyncio.wait_for(done, 60))
        t1, r1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        return t1 - t0, cpu
    finally:
        writer.kill()
        writer.wait()
        if hub is not None:
            hub.close()
        else:
            os.close(fd)
        if out is not None:
            os.close(out)
        loop.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--src", default=os.path.dirname(HERE), help="a checkout holding corral/")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.src))
    modes = args.modes.split(",")
    folder = tempfile.mkdtemp(prefix="corral-loghub-")
    results = {mode: [] for mode in modes}
    try:
        for _ in range(args.reps):
            for mode in modes:
                results[mode].append(one_run(mode, args.lines, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    raw = statistics.median(w for w, _ in results["raw"]) if "raw" in results else None
    print(f"{args.lines} lines of 100 bytes, {args.reps} repetitions, medians")
    for mode, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        ratio = f"  x{wall / raw:.2f} of raw" if raw else ""
        print(f"  {mode:7s} wall {wall:.3f} s  cpu {cpu:.3f} s{ratio}")


if __name__ == "__main__":
    main()
