"""The log-throughput worker: waits for SIGUSR1, then writes N numbered lines
of SIZE bytes (newline included) to stdout in 8000-byte writes (what a C
program's stdio buffer does), then sleeps until it is stopped.

    python logwriter.py --lines 1000000 --size 100

Line i is b"L%09d " % i, padded with "x" to SIZE-1 bytes, then b"\n": a
checker can tell every line lost, repeated, reordered or torn.
"""

import argparse
import os
import signal
import time


def line(i, size):
    head = b"L%09d " % i
    return head + b"x" * (size - 1 - len(head)) + b"\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    signal.sigwait({signal.SIGUSR1})
    per_write = max(1, 8000 // args.size)
    pad = b"x" * (args.size - 12)
    for start in range(0, args.lines, per_write):
        block = b"".join(b"L%09d %s\n" % (i, pad)
                         for i in range(start, min(start + per_write, args.lines)))
        view = memoryview(block)
        while view:
            view = view[os.write(1, view):]
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
