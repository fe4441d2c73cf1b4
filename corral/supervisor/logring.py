"""The LogHub's history: the last N lines, kept as the chunks they came in.

A flood of output arrives in chunks of hundreds of lines; keeping each line
as its own object (and a tuple for it) cost more than framing and writing
the chunk. A Ring keeps (time, meta, block, start, end, count) per chunk,
block[start:end] being the chunk's count lines joined by b"\\n" (block is
the buffer the LogHub read, shared by the merged ring and the service's),
drops whole chunks once the newer ones hold N lines, and splits lines out
only when someone reads the history.

Each line has a sequence number (seq), its place in the master's merged
log since it started: the caller passes the first line's, and the lines of
a chunk follow on. Seqs only grow, so `logs --after SEQ` (a follower that
reconnects) gets exactly the lines it has not seen, while history holds them.

The view is exactly that of a deque of the last N lines: tail() never shows
a line older than the last N, even while the oldest chunk kept still holds
some.
"""

import collections


class Ring:
    __slots__ = ("size", "chunks", "count")

    def __init__(self, size):
        self.size = size
        self.chunks = collections.deque()  # (time, meta, block, start, end, count, seq), oldest first
        self.count = 0  # lines in chunks

    def add(self, t, m, block, count, start=0, end=None, seq=1):
        """Append count lines: block[start:end], joined by b"\\n"; the first is seq."""
        if self.size <= 0:
            return
        end = len(block) if end is None else end
        if count > self.size:  # only its last `size` lines can ever be seen
            lines = block[start:end].rsplit(b"\n", self.size)
            del lines[0]
            block, start, seq = b"\n".join(lines), 0, seq + count - self.size
            count, end = self.size, len(block)
        self.chunks.append((t, m, block, start, end, count, seq))
        self.count += count
        while self.count - self.chunks[0][5] >= self.size:
            self.count -= self.chunks.popleft()[5]

    def tail(self, n, instance=None, after=0):
        """[(time, meta, line, seq)], oldest first: the last n lines (of
        meta.instance == instance only, if given; with seq > after only)
        among the ring's last `size` lines."""
        picked = []  # lists of entries, newest chunk first
        window, want = self.size, n  # lines still visible; lines still wanted
        for t, m, block, start, end, count, seq in reversed(self.chunks):
            if window <= 0 or want <= 0 or seq + count - 1 <= after:
                break
            visible = min(count, window)
            window -= visible
            if instance is not None and m.instance != instance:
                continue
            take = min(visible, want, seq + count - 1 - after)
            lines = block[start:end].rsplit(b"\n", take)
            if len(lines) > take:
                del lines[0]
            first = seq + count - len(lines)
            picked.append([(t, m, line, first + i) for i, line in enumerate(lines)])
            want -= take
        return [entry for chunk in reversed(picked) for entry in chunk]
