"""How the LogHub frames lines: prefixes, followers' batches, long lines (pure).

Split out of logs.py: these work on bytes only, with no fd, loop or sink,
so the framing can be read and tested apart from the plumbing. The trick
that keeps a flood cheap is _framed: one bytes.replace puts the prefix
before every line of a chunk, with no object per line.
"""

import bisect
import collections.abc
import json
import re
import zlib

from corral import protocol

_json_string = json.JSONEncoder(ensure_ascii=False).encode  # as protocol.encode writes a str

COLORS = (31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96)


def color_of(name):
    """A stable ANSI colour code for a name."""
    return COLORS[zlib.crc32(name.encode("utf-8", "replace")) % len(COLORS)]


class _Meta:
    """Who a line belongs to, its pre-rendered prefixes (after the time), and
    for a pipe its fd and the partial line read so far.

    No stream tag: Python's logging writes INFO to stderr, so "err:" told
    nothing but alarmed (the stream is in `corral logs --json`). Files say
    `web:0[4242]`, the console `web:0` (as `corral logs`); both padded to the
    widest seen (Widths), framed again only when that grows."""

    __slots__ = ("instance", "service", "pid", "stream", "tag", "ctag", "fd", "buf",
                 "widths")

    def __init__(self, instance, service, pid, stream, fd=None):
        self.instance, self.service, self.pid, self.stream = instance, service, pid, stream
        self.fd, self.buf = fd, b""
        self.widths = None

    @property
    def who(self):
        return self.instance if self.pid is None else f"{self.instance}[{self.pid}]"

    def frame(self, widths):
        """The prefixes for widths (a Widths' current (name, who) pair)."""
        self.widths = widths
        name_width, who_width = widths
        who, name = self.who, self.instance
        self.tag = f" {who.ljust(who_width)} ".encode("utf-8", "replace")
        pad = " " * max(0, name_width - len(name))
        self.ctag = f" \x1b[{color_of(name)}m{name}\x1b[0m{pad} ".encode("utf-8", "replace")

    def matches(self, name):
        return name is None or name == self.service or name == self.instance


class Widths:
    """The widest name and name[pid] seen: the prefixes' padding. It only
    grows, so a line is framed again only when a wider name comes."""

    def __init__(self):
        self.current = (len("corral"), len("corral"))

    def see(self, meta):
        """Fit meta's names (the pair is replaced only when it grows)."""
        name, who = self.current
        if len(meta.instance) > name or len(meta.who) > who:
            self.current = (max(name, len(meta.instance)), max(who, len(meta.who)))

    def names(self, names):
        """Fit names known ahead (the config's instances), for the console."""
        name, who = self.current
        widest = max([name, *map(len, names)])
        if widest > name:
            self.current = (widest, who)


# What a line says about itself, on a terminal: red for a problem, yellow
# for a warning, whichever stream it came on (cli/render.py's _SEVERE and
# _WARNING, which `corral logs` uses). One search of the chunk first: a
# chunk with none of the words (nearly all) is framed as it is. That search
# costs ~0.35 ms per 64 KiB where the framing costs ~0.015 ms, so a chunk
# longer than PAINT_MAX (a flood, which nobody reads on a terminal) is not
# searched: its names are coloured, its lines not.
PAINT_MAX = 16 * 1024
_ALARM = re.compile(rb"ERROR|CRITICAL|FATAL|Traceback|Exception|panic|WARN")
_SEVERE_LINE = re.compile(rb"^.*\b(?:ERROR|CRITICAL|FATAL|Traceback|Exception|panic)\b.*$",
                          re.MULTILINE)
_WARNING_LINE = re.compile(rb"^(?!\x1b\[31m).*\b(?:WARNING|WARN)\b.*$", re.MULTILINE)


def painted(block, end):
    """(block, end) as _framed takes them, each complete line that says ERROR
    or Traceback red, WARNING yellow; the same block when none does."""
    if end > PAINT_MAX or _ALARM.search(block, 0, end) is None:
        return block, end
    head = bytes(block[:end])
    head = _SEVERE_LINE.sub(b"\x1b[31m\\g<0>\x1b[0m", head)
    head = _WARNING_LINE.sub(b"\x1b[33m\\g<0>\x1b[0m", head)
    return head + b"\n", len(head)


def _as_dict(t, m, line, seq):
    return {"time": t, "name": m.instance, "service": m.service, "pid": m.pid,
            "stream": m.stream, "line": line.decode("utf-8", "replace"), "seq": seq}


class Batch(collections.abc.Sequence):
    """One chunk's lines for followers, each made a dict only when a follower
    first takes it, once for all of them: a follower that has room for a few
    (control.py) costs a few dicts, not one per line of a flood."""

    __slots__ = ("_t", "_m", "_lines", "_seq", "_dicts", "_json", "_head", "_streams")

    def __init__(self, t, m, lines, seq):
        self._t, self._m, self._lines, self._seq = t, m, lines, seq  # seq: of lines[0]
        self._dicts, self._json, self._head = [], [], None
        self._streams = {}  # request id (JSON) -> [joined stream items, their end offsets]

    def __len__(self):
        return len(self._lines)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self._lines)
        while len(self._dicts) <= index < len(self._lines):
            i = len(self._dicts)
            self._dicts.append(_as_dict(self._t, self._m, self._lines[i], self._seq + i))
        return self._dicts[index]

    def encoded(self, index):
        """Line index as JSON bytes, encoded once for every follower, and the
        same bytes as protocol.encode_value(self[index]) but with no dict:
        the fields every line of the chunk shares are encoded once (the
        head), then each line's text and seq. In a flood of short lines that
        is a tenth of the cost, and it is the work a live follower does per
        line (benchmarks/follow_stall.py)."""
        if self._head is None:
            m = self._m
            self._head = b'{"time":%s,"name":%s,"service":%s,"pid":%s,"stream":%s,"line":' % tuple(
                protocol.encode_value(v) for v in (self._t, m.instance, m.service, m.pid, m.stream))
        json_list, lines, head, seq = self._json, self._lines, self._head, self._seq
        while len(json_list) <= index:
            i = len(json_list)
            # decode("replace") leaves no lone surrogate: the text is always UTF-8
            text = _json_string(lines[i].decode("utf-8", "replace")).encode()
            json_list.append(b'%s%s,"seq":%d}' % (head, text, seq + i))
        return json_list[index]

    def stream_items(self, id_json, room):
        """(data, count): the first count lines as the control protocol's
        stream items of request id_json, as many as fit in room bytes (one at
        least, when room > 0), joined once for all the followers that asked
        with that id (the CLI's is always 1): fifty followers of a flood cost
        one join and fifty writes, not fifty joins of thousands of items."""
        if room <= 0 or not self._lines:
            return b"", 0
        joined = self._streams.get(id_json)
        if joined is None:
            joined = self._streams[id_json] = [b"", [0]]
        data, ends = joined
        if ends[-1] < room and len(ends) <= len(self._lines):  # more would fit: wrap more
            parts, end = [data], ends[-1]
            while end < room and len(ends) <= len(self._lines):
                item = protocol.stream_item(id_json, self.encoded(len(ends) - 1))
                parts.append(item)
                end += len(item)
                ends.append(end)
            data = joined[0] = b"".join(parts)
        count = max(1, bisect.bisect_right(ends, room) - 1)
        return (data if count == len(ends) - 1 else memoryview(data)[:ends[count]]), count


def _split_long(lines, ml):
    return [line[i:i + ml] for line in lines for i in range(0, len(line) or 1, ml)]


def _framed(prefix, block, end):
    """(framed, count): each of the count lines in block with prefix before it
    and b"\\n" after it, as a memoryview: one replace, no object per line.

    block is b"\\n", then the lines joined by b"\\n", then b"\\n" at block[end]
    (a partial line without b"\\n" may follow)."""
    rep = block.replace(b"\n", b"\n" + prefix)
    count = (len(rep) - len(block)) // len(prefix) - 1  # every b"\n" grew by prefix
    return memoryview(rep)[1:end + count * len(prefix) + 1], count


def _may_hold_long_line(block, ml, start, end):
    """False when no line of block[start:end] is longer than ml (a few finds).

    Every window [start + k*w, start + k*w + w) with w = ml // 2 inside it
    must hold a b"\\n": a line longer than ml covers a whole one. True means
    "look closer" (a line of w bytes or more)."""
    w = max(1, ml // 2)
    for i in range(start, end - w + 1, w):
        if block.find(b"\n", i, i + w) < 0:
            return True
    return False
