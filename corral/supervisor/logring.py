"""The LogHub's history: the last N lines, kept as the chunks they came in.

A flood of output arrives in chunks of hundreds of lines; keeping each line
as its own object (and a tuple for it) cost more than framing and writing
the chunk. A Ring keeps (time, meta, block, start, end, count) per chunk,
block[start:end] being the chunk's count lines joined by b"\\n" (block is
the buffer the LogHub read, shared by the merged ring and the service's),
drops whole chunks once the newer ones hold N lines, and splits lines out
only when someone reads the history.

The view is exactly that of a deque of the last N lines: tail() never shows
a line older than the last N, even while the oldest chunk kept still holds
some.
"""

import collections


class Ring:
    __slots__ = ("size", "chunks", "count")

    def __init__(self, size):
        self.size = size
        self.chunks = collections.deque()  # (time, meta, block, start, end, count), oldest first
        self.count = 0  # lines in chunks

    def add(self, t, m, block, count, start=0, end=None):
        """Append count lines: block[start:end], joined by b"\\n"."""
        if self.size <= 0:
            return
        end = len(block) if end is None else end
        if count > self.size:  # only its last `size` lines can ever be seen
            lines = block[start:end].rsplit(b"\n", self.size)
            del lines[0]
            block, start, count = b"\n".join(lines), 0, self.size
            end = len(block)
        self.chunks.append((t, m, block, start, end, count))
        self.count += count
        while self.count - self.chunks[0][5] >= self.size:
            self.count -= self.chunks.popleft()[5]

    def tail(self, n, instance=None):
        """[(time, meta, line)], oldest first: the last n lines (of meta.instance
        == instance only, if given) among the ring's last `size` lines."""
        picked = []  # lists of entries, newest chunk first
        window, want = self.size, n  # lines still visible; lines still wanted
        for t, m, block, start, end, count in reversed(self.chunks):
            if window <= 0 or want <= 0:
                break
            visible = min(count, window)
            window -= visible
            if instance is not None and m.instance != instance:
                continue
            take = min(visible, want)
            lines = block[start:end].rsplit(b"\n", take)
            if len(lines) > take:
                del lines[0]
            picked.append([(t, m, line) for line in lines])
            want -= take
        return [entry for chunk in reversed(picked) for entry in chunk]
