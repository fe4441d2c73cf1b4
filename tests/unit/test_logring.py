"""The LogHub's chunked history (logring.py) and its chunk framing (logs.py),
checked against the obvious per-line versions."""

import collections
import random

import pytest

from corral.supervisor.logring import Ring
from corral.supervisor.logs import _framed, _may_hold_long_line


class M:
    def __init__(self, instance):
        self.instance = instance


def reference_tail(lines, size, n, instance=None, after=0):
    ring = collections.deque(lines, maxlen=size) if size > 0 else []
    picked = [e for e in ring if (instance is None or e[1].instance == instance) and e[3] > after]
    return picked[-n:] if n > 0 else []


@pytest.mark.parametrize("size", [0, 1, 7, 100])
def test_ring_shows_what_a_deque_of_the_last_lines_shows(size):
    rng = random.Random(size)
    metas = [M("a:0"), M("a:1")]
    ring, lines = Ring(size), []
    for chunk in range(60):
        m = rng.choice(metas)
        count = rng.choice([1, 1, 2, 5, 30, 150])
        new = [b"%d-%d" % (chunk, i) if rng.random() > 0.1 else b"" for i in range(count)]
        block = b"\n".join(new)
        seq = len(lines) + 1 + chunk  # seqs only grow; another ring may hold the ones between
        if rng.random() < 0.5:  # as the hub passes it: b"\n" first, a partial line after
            ring.add(chunk, m, b"\n" + block + b"\npartial", count, 1, len(block) + 1, seq)
        else:
            ring.add(chunk, m, block, count, seq=seq)
        lines.extend((chunk, m, line, seq + i) for i, line in enumerate(new))
        for n in (0, 1, 3, 50, 10**6):
            for instance in (None, "a:0", "a:1", "b"):
                assert ring.tail(n, instance) == reference_tail(lines, size, n, instance)
        newest = lines[-1][3]
        for after in (newest - 200, newest - 31, newest - 1, newest):
            for instance in (None, "a:1"):
                assert ring.tail(10**6, instance, after) == \
                    reference_tail(lines, size, 10**6, instance, after)
    assert ring.count < size + 150  # whole chunks are dropped once newer ones suffice


def test_framed_puts_the_prefix_before_each_line_and_counts_them():
    block = b"\none\n\nthree\npart"
    view, count = _framed(b"P:", block, block.rindex(b"\n"))
    assert bytes(view) == b"P:one\nP:\nP:three\n"
    assert count == 3
    view, count = _framed(b"P:", b"\nonly\n", 5)
    assert (bytes(view), count) == (b"P:only\n", 1)


def test_long_line_probe_never_misses_a_long_line():
    rng = random.Random(1)
    for _ in range(300):
        ml = rng.choice([1, 2, 3, 10, 17, 64])
        lengths = [rng.choice([0, 1, ml // 2, ml - 1, ml, ml + 1, 3 * ml]) for _ in range(rng.randint(1, 20))]
        block = b"\n" + b"\n".join(b"x" * k for k in lengths) + b"\n"
        if max(lengths) > ml:
            assert _may_hold_long_line(block, ml, 1, len(block) - 1)
    assert not _may_hold_long_line(b"\n" + b"ab\n" * 1000, 64, 1, 3001)
