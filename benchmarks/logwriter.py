"""The log-throughput worker: waits for SIGUSR1 (it catches it:
the harness waits for that in /proc/PID/status SigCgt), then writes N numbered lines
of SIZE bytes (newline included) to stdout in 8000-byte writes (what a C
program's stdio buffer does), then sleeps until it is stopped.

    python logwriter.py --lines 1000000 --size 100

Line i is b"L%09d " % i, padded with "x" to SIZE-1 bytes, then b"\n": a
checker can tell every line lost, repeated, reordered or torn.
"""

import argparse
import os
import select
import signal
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    per_write = max(1, 8000 // args.size)
    pad = b"x" * (args.size - 12)
    # Made before the start: the timing measures the supervisor, not this loop.
    blocks = [b"".join(b"L%09d %s\n" % (i, pad)
                       for i in range(start, min(start + per_write, args.lines)))
              for start in range(0, args.lines, per_write)]
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w)  # a signal that comes before select() is not missed
    go = []
    signal.signal(signal.SIGUSR1, lambda *_: go.append(1))  # the harness sees it in SigCgt
    while not go:
        select.select([r], [], [], 1.0)
    for block in blocks:
        view = memoryview(block)
        while view:
            view = view[os.write(1, view):]
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
