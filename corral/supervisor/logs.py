"""LogHub: worker pipes -> framed lines -> console, files, ring buffers, followers.

Invariant: lines are never split wrongly, reordered within a stream, or lost,
and the loop never blocks on a pipe, a slow console or a full disk.

Work is per read chunk, not per line: one timestamp, one bytes.replace that
puts the prefix before every line (_framed), one write per sink, and the
chunk kept whole in the rings (logring.py); no bytes object per line is made
unless a follower or a line longer than max_line needs it (those go out as
max_line pieces; a few finds per chunk rule them out). Files are raw
O_APPEND fds written with os.write, so data is in the OS when the callback
returns; they rotate by size between chunks, and a failing file is reported
once, listed in `errors`, retried on every write, and its recovery announced
(logfiles.py). The console is non-blocking with a bounded
pending buffer; beyond it whole chunks are dropped (files and rings keep them)
and one notice counts them. Rings hold whole chunks; lines and dicts are
built only by tail() and when someone follows, and then a line's dict only
once a follower takes it (Batch).

Over 400 lines: reading, framing and the console's non-blocking writer
share the hub's one pending buffer and notice queue; the pure parts are
already apart (loglines.py, logring.py, logfiles.py). The next cut: the
console writer into its own module.
"""

import contextlib
import errno
import itertools
import os
import time

from corral.supervisor.logfiles import FileSink, StreamFiles
from corral.supervisor.loglines import (  # noqa: F401 - Batch, color_of: the hub's API
    Batch, Widths, _as_dict, _framed, _Meta, _may_hold_long_line, _split_long, color_of,
    painted,
)
from corral.supervisor.logring import Ring

# A pipe holds 64 KiB: a read never gets more. Asking for more costs: each
# read allocates the size asked for, and a 256 KiB buffer made the heap grow
# and shrink on every read (page faults), twice the CPU per byte.
READ_SIZE = 64 * 1024
DRAIN_MAX_READS = 64            # drain() reads at most this many chunks per fd
READS_PER_WAKEUP = 8            # a readable pipe: this many reads (< 1 ms) before the
                                # loop turns; a flood costs one loop turn per 8 chunks,
LINES_PER_WAKEUP = 8192         # or fewer: 64 KiB of empty lines are 65,536 lines, and
                                # work per line, not per byte, is what delays a `status`
class LogHub:
    def __init__(self, loop, *, console=None, color=False, logfile=None, log_dir=None,
                 ring_lines=1000, wallclock=time.time, max_line=65536,
                 console_limit=4 << 20, max_bytes=0, backups=0):
        self._loop, self._color, self._wall = loop, color, wallclock
        self._max_line, self._ring_lines = max_line, ring_lines
        self._errors, self._closed = {}, False
        self._notices, self._depth, self._flushing = [], 0, False
        self._sources, self._by_pid = {}, {}          # fd -> source, pid -> [source]
        self._merged = Ring(ring_lines)
        self._rings, self._inst_service = {}, {}      # service -> Ring, instance -> service
        self._followers, self._tokens = {}, itertools.count(1)
        self.counts = {}  # service -> [lines, bytes with their newlines], since the start
        self.seq = 0  # the seq of the newest line (logring.py): lines dispatched so far
        self._sec, self._sec_text = None, b""
        self._widths = Widths()
        self._corral = _Meta("corral", "corral", None, "log")
        self._corral.frame(self._widths.current)
        # console
        self._con, self._con_limit = console, console_limit
        self._con_pending, self._con_dropped, self._con_writing = bytearray(), 0, False
        self._con_error, self._con_blocking = None, None
        if console is not None:
            # O_NONBLOCK belongs to the open file description, which a tty shares
            # with stdin/stderr and the shell: close() restores it.
            try:
                self._con_blocking = os.get_blocking(console)
                os.set_blocking(console, False)
            except OSError as e:
                self._con = None
                self._errors["console"] = f"console: {e.strerror or e}"
        # files
        self._rotation, self._svc_rotation = (max_bytes, backups), {}   # service -> (mb, b)
        self._logfile = FileSink(self, "logfile", os.fspath(logfile), max_bytes, backups) \
            if logfile else None
        self._log_dir = os.fspath(log_dir) if log_dir else None
        self._svc_files = {}                          # service -> FileSink
        self._streams = StreamFiles(self)             # raw stdout/stderr files (supervisord's)
        if self._logfile:
            self._logfile.open()
        if self._log_dir:
            with contextlib.suppress(OSError):        # reported when the first file opens
                os.makedirs(self._log_dir, exist_ok=True)

    # ----- public API -----

    @property
    def errors(self):
        return [self._errors[k] for k in sorted(self._errors)]

    def service_errors(self):
        """{service: text} for each service whose own log files are failing."""
        found = {}
        sinks = [*self._svc_files.items(),
                 *((service, sink) for (service, _), sink in self._streams.routes.items())]
        for service, sink in dict.fromkeys(sinks):     # redirect_stderr: one sink, twice
            what = "log" if sink in self._svc_files.values() else sink.label.partition("/")[2]
            problems = [f"{what}: {sink.error}"] if sink.error else []
            if sink.rotate_error:
                problems.append(f"{what}: cannot rotate: {sink.rotate_error}")
            if problems:
                found[service] = "; ".join(filter(None, [found.get(service), *problems]))
        return found

    def set_rotation(self, specs):
        """Per-service log files from ServiceSpecs: log_max_bytes/log_backups
        (None: the hub's), and the raw stream_files (StreamFiles)."""
        self._streams.configure(specs)
        mb, b = self._rotation
        self._svc_rotation = {
            spec.name: (mb if spec.log_max_bytes is None else spec.log_max_bytes,
                        b if spec.log_backups is None else spec.log_backups) for spec in specs}
        for service, sink in self._svc_files.items():
            sink.max_bytes, sink.backups = self._svc_rotation.get(service, self._rotation)

    def names(self, names):
        """The instances the config has: the console pads to the widest from
        the first line on (Widths)."""
        self._widths.names(names)

    def attach(self, fd, instance, service, pid, stream, buf=b""):
        """Read a worker's pipe; buf: its partial last line (a pipe handed over)."""
        os.set_blocking(fd, False)
        src = _Meta(instance, service, pid, stream, fd)
        src.buf = buf
        self._widths.see(src)
        self._sources[fd] = src
        self._by_pid.setdefault(pid, []).append(src)
        self._inst_service[instance] = service
        self._loop.add_reader(fd, self._drain, src, READS_PER_WAKEUP, LINES_PER_WAKEUP)

    def hand_over(self):
        """For `corral upgrade`: stop reading the pipes, left open with what they
        hold unread; [(fd, instance, service, pid, stream, partial line)] for
        the next image's attach(). Pending console output is written, blocking."""
        pipes = [(src.fd, src.instance, src.service, src.pid, src.stream, src.buf)
                 for src in self._sources.values()]
        for fd in self._sources:
            self._loop.remove_reader(fd)
        self._sources.clear()
        self._by_pid.clear()
        if self._con is not None:
            with contextlib.suppress(OSError):
                os.set_blocking(self._con, True)
                os.write(self._con, self._con_pending)
                self._con_pending.clear()
            with contextlib.suppress(OSError):  # as the next image should find it
                os.set_blocking(self._con, self._con_blocking)
        return pipes

    def take_back(self, pipes):
        """Undo hand_over() (the exec failed): read the pipes again."""
        for pipe in pipes:
            self.attach(*pipe)
        if self._con is not None:
            with contextlib.suppress(OSError):
                os.set_blocking(self._con, False)

    def drain(self, pid):
        for src in list(self._by_pid.get(pid, ())):
            self._drain(src)

    def emit(self, text, instance="corral", service="corral", pid=None, stream="log"):
        text = text.encode("utf-8", "replace") if isinstance(text, str) else text
        text = text[:-1] if text.endswith(b"\n") else text
        m = self._corral if (instance, service, pid, stream) == ("corral", "corral", None, "log") \
            else _Meta(instance, service, pid, stream)
        self._widths.see(m)
        if instance != "corral":  # the master's lines about a service keep its name
            self._inst_service.setdefault(instance, service)
        self._dispatch(m, self._wall(), _split_long(text.split(b"\n"), self._max_line))

    def tail(self, name=None, n=100, max_bytes=None, after=0):
        """The last n lines as dicts, newest last (of those with seq > after);
        with max_bytes, only the newest of them whose text adds up to at most
        that (one at least)."""
        if n <= 0:
            return []
        if name is None:
            entries = self._merged.tail(n, after=after)
        elif name in self._rings:
            entries = self._rings[name].tail(n, after=after)
        else:
            ring = self._rings.get(self._inst_service.get(name), self._merged)
            entries = ring.tail(n, instance=name, after=after)
        if max_bytes is not None and entries:
            first, total = len(entries) - 1, len(entries[-1][2])  # the newest, always
            while first > 0 and total + len(entries[first - 1][2]) <= max_bytes:
                first -= 1
                total += len(entries[first][2])
            entries = entries[first:]
        return [_as_dict(*e) for e in entries]

    def follow(self, callback, name=None):
        """callback(batch) gets each new Batch of matching lines (a sequence of
        dicts, made as they are read: take only what you can use)."""
        self._followers[token := next(self._tokens)] = (callback, name)
        return token

    def unfollow(self, token):
        self._followers.pop(token, None)

    def reopen(self):
        for sink in self._files():
            sink.close()
            sink.open()
        self._flush_notices()

    def close(self):
        if self._closed:
            return
        for src in list(self._sources.values()):
            self._drain(src)
            self._eof(src)
        self._flush_notices()
        self._closed = True
        for sink in self._files():
            sink.close()
        if self._con is not None:
            self._loop.remove_writer(self._con)
            with contextlib.suppress(OSError):         # one last try, never blocking
                if self._con_pending:
                    os.write(self._con, self._con_pending)
            with contextlib.suppress(OSError):
                os.set_blocking(self._con, self._con_blocking)
            self._con = None

    # ----- reading and framing -----

    def _drain(self, src, reads=DRAIN_MAX_READS, lines=None):
        """Read up to `reads` chunks (bounded: a flooding writer cannot hold
        us), and with `lines`, stop once that many lines have come."""
        for _ in range(reads):
            got = self._read(src)
            if got is None:
                break
            if lines is not None:
                lines -= got
                if lines <= 0:
                    break

    def _read(self, src):
        """Read one chunk: the count of lines it completed, or None when
        nothing more is available now (or at EOF)."""
        try:
            data = os.read(src.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as e:
            self._eof(src, close=e.errno != errno.EBADF)
            return None
        if not data:
            self._eof(src)
            return None
        # b"\n" first, as _framed wants: then the chunk is framed as it is.
        data = b"".join((b"\n", src.buf, data))
        if b"\r" in data and b"\r\n" in data:  # memchr first: a 2-byte search is slow
            data = data.replace(b"\r\n", b"\n")
        nl = data.rfind(b"\n")             # the end of the complete lines
        ml = self._max_line
        lines, buf = None, data[nl + 1:]   # lines None: the complete ones stay in data
        if nl == 0:
            lines = []
        elif nl - 1 > ml and _may_hold_long_line(data, ml, 1, nl):
            lines = data[1:nl].split(b"\n")
            if max(map(len, lines)) > ml:
                lines = _split_long(lines, ml)
        if len(buf) > ml:                  # keep 1..max_line bytes: same pieces as if whole
            k = (len(buf) - 1) // ml
            if lines is None:
                lines = data[1:nl].split(b"\n")
            lines.extend(buf[i * ml:(i + 1) * ml] for i in range(k))
            buf = buf[k * ml:]
        src.buf = buf
        if lines is None:
            return self._dispatch(src, self._wall(), None, block=data, end=nl)
        if lines:
            return self._dispatch(src, self._wall(), lines)
        return 0

    def _eof(self, src, close=True):
        if self._sources.pop(src.fd, None) is None:
            return
        self._loop.remove_reader(src.fd)
        peers = [p for p in self._by_pid.pop(src.pid, ()) if p is not src]
        if peers:
            self._by_pid[src.pid] = peers
        if src.buf:
            buf, src.buf = src.buf, b""
            self._dispatch(src, self._wall(), [buf])
        if close:
            with contextlib.suppress(OSError):
                os.close(src.fd)

    # ----- sinks -----

    def _stamp(self, t):
        sec = int(t)
        if sec != self._sec:
            self._sec, self._sec_text = sec, time.strftime(
                "%Y-%m-%d %H:%M:%S", time.localtime(sec)).encode()
        return b"%s.%03d" % (self._sec_text, int((t - sec) * 1000))

    def _files(self):
        sinks = list(self._svc_files.values()) + list(self._streams.sinks.values())
        return [self._logfile] + sinks if self._logfile else sinks

    def _svc_sink(self, service):
        sink = self._svc_files.get(service)
        if sink is None:
            fname = service.replace(os.sep, "_") + ".log"
            sink = FileSink(self, f"log_dir/{fname}", os.path.join(self._log_dir, fname),
                            *self._svc_rotation.get(service, self._rotation))
            self._svc_files[service] = sink
        return sink

    def _dispatch(self, m, t, lines, notice=False, block=None, end=None):
        """lines: a list; or None, and block, end as _framed takes them: then
        no bytes object per line is made, but for the ring's last ring_lines
        lines when they are read, and for followers. Returns the count of lines."""
        self._depth += 1
        try:
            stamp = self._stamp(t)
            if block is None:
                block = b"".join((b"\n", b"\n".join(lines), b"\n"))
                end = len(block) - 1
            count = len(lines) if lines is not None else None
            if m.widths is not self._widths.current:  # a wider name came: pad again
                m.frame(self._widths.current)
            if not self._closed:
                data, count = _framed(stamp + m.tag, block, end)
                if self._logfile:
                    self._logfile.write(data, notice)
                if self._log_dir:
                    self._svc_sink(m.service).write(data, notice)
                raw = self._streams.get(m.service, m.stream) if self._streams.routes else None
                if raw is not None:                    # as the program wrote it: no prefix
                    raw.write(memoryview(block)[1:end + 1], notice)
                if self._con is not None:
                    if self._color:  # a terminal: short, as `corral logs` (time, name)
                        data, _ = _framed(stamp[11:] + m.ctag, *painted(block, end))
                    self._console_write(data, notice)  # else the file's lines, as they are
            if count is None:
                count = block.count(b"\n", 0, end)
            counted = self.counts.get(m.service)  # for /metrics: two adds a read
            if counted is None:
                counted = self.counts[m.service] = [0, 0]
            counted[0] += count
            counted[1] += end
            ring = self._rings.get(m.service)
            if ring is None:
                ring = self._rings[m.service] = Ring(self._ring_lines)
            seq = self.seq + 1
            self.seq += count
            self._merged.add(t, m, block, count, 1, end, seq)
            ring.add(t, m, block, count, 1, end, seq)
            if self._followers:
                self._tell_followers(m, t, lines, block[1:end], seq)
        finally:
            self._depth -= 1
        if self._notices:
            self._flush_notices()
        return count

    def _tell_followers(self, m, t, lines, block, seq):
        batch = None
        for token, (callback, name) in list(self._followers.items()):
            if not m.matches(name):
                continue
            if batch is None:
                batch = Batch(t, m, block.split(b"\n") if lines is None else lines, seq)
            try:
                callback(batch)
            except Exception as e:
                self._followers.pop(token, None)
                self._notice(f"follower {callback!r} removed after an error: {e!r}")

    def _notice(self, text):
        self._notices.append(text)
        self._flush_notices()

    def _flush_notices(self):
        # Notices skip failing sinks, so each round can only add failures: it ends.
        if self._flushing or self._depth:
            return
        self._flushing = True
        try:
            while self._notices:
                text = self._notices.pop(0).encode("utf-8", "replace")
                self._dispatch(self._corral, self._wall(), text.split(b"\n"), notice=True)
        finally:
            self._flushing = False

    def _console_write(self, data, notice=False):
        if self._con_error is not None and notice:
            return
        if self._con_pending or self._con_dropped:
            if self._con_dropped or len(self._con_pending) + len(data) > self._con_limit:
                self._con_dropped += len(data)     # whole chunks: no torn lines
            else:
                self._con_pending += data
            return
        try:
            n = os.write(self._con, data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            self._console_failed(e)
            return
        if self._con_error is not None:
            self._con_error = None
            self._errors.pop("console", None)
            self._notice("console: writing resumed")
        if n < len(data):
            self._con_pending += memoryview(data)[n:]
            if not self._con_writing:
                self._loop.add_writer(self._con, self._on_console_writable)
                self._con_writing = True

    def _on_console_writable(self):
        try:
            n = os.write(self._con, self._con_pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:                       # give up on what was pending
            self._con_pending.clear()
            self._con_dropped = 0
            self._console_failed(e)
            n = 0
        del self._con_pending[:n]
        if self._con_pending:
            return
        if self._con_dropped:
            dropped, self._con_dropped = self._con_dropped, 0
            line = f"[corral: {dropped} bytes of console output dropped]".encode()
            stamp = self._stamp(self._wall())
            if self._color:
                stamp, tag = stamp[11:], self._corral.ctag
            else:
                tag = self._corral.tag
            self._con_pending += stamp + tag + line + b"\n"
            return                                 # stay registered to write the notice
        self._loop.remove_writer(self._con)
        self._con_writing = False

    def _console_failed(self, e):
        if self._con_error is None:
            self._con_error = msg = e.strerror or str(e)
            self._errors["console"] = f"console: {msg}"
            self._notice(f"cannot write to the console: {msg}; will keep trying")
