"""Log files for the LogHub: raw append-only fds that rotate by size, never raise.

Invariant: every write is one chunk of whole lines and goes into one file
whole, so rotation never splits or loses a line. Rotation happens between
chunks: when a chunk would take the file past max_bytes, name.log.N-1 ->
name.log.N, ..., name.log -> name.log.1 (the oldest is dropped by the
rename over it), a fresh name.log is opened, and the chunk goes there. At
most one rename chain per write: a chunk larger than max_bytes fills a
fresh file on its own.

The size is what fstat said at open plus what we wrote; before rotating it
is checked with fstat again, so a copytruncate or another writer does not
make us rotate early. If logrotate moved the file away and nobody asked us
to reopen, rotating just opens a new file (no rename). Only regular files
rotate: never /dev/full, a FIFO or a tty. Those are written without
blocking: a FIFO nobody reads fails to open, one whose reader is behind
fails the write, and either counts as a failing file (below).

A file that cannot be written (full disk, a path that cannot be opened) is
reported once into the merged stream and listed in the hub's errors; every
write retries (opening at most once a second), bytes are counted while it
fails, and recovery is announced with the count. A rename that fails leaves
the file growing, is reported the same way and retried at most once a second.
"""

import contextlib
import errno
import os
import stat

# O_NONBLOCK changes nothing for a regular file; a FIFO or a tty with nobody
# reading would otherwise block the master in open() or write().
O_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
RETRY = 1.0  # s between attempts to open or rotate a failing file
WHY = {  # what the strerror means for a log file that is not a regular file
    errno.ENXIO: "nobody is reading it",
    errno.EAGAIN: "its reader is not keeping up",
}


class FileSink:
    """One log file. hub provides _loop, _errors (label -> text) and _notice()."""

    def __init__(self, hub, label, path, max_bytes=0, backups=0):
        self.hub, self.label, self.path = hub, label, path
        self.max_bytes, self.backups = max_bytes, backups   # max_bytes 0: never rotate
        self.fd, self.error, self.lost = None, None, 0   # error: strerror while failing
        self.partial = False       # a write stopped mid-chunk: the file ends mid-line
        self.next_open = 0.0
        self.size, self.regular = 0, False
        self.rotate_error, self.next_rotate = None, 0.0

    def open(self):
        self.next_open = self.hub._loop.time() + RETRY
        try:
            try:
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            except FileExistsError:
                pass                       # a file in the way: os.open says why
            # The master's, never the service user's (services may run as
            # another user): not writable, nor readable by others.
            self.fd = os.open(self.path, O_FLAGS, 0o640)
            st = os.fstat(self.fd)
        except OSError as e:
            self.close()
            self._fail(e)
            return False
        self.size, self.regular = st.st_size, stat.S_ISREG(st.st_mode)
        return True

    def close(self):
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd, self.partial = None, False

    def write(self, data, notice=False):
        if self.error is not None and notice:
            return                 # never report a sink's trouble into itself
        if self.fd is None and (self.hub._loop.time() < self.next_open or not self.open()):
            self.lost += len(data)
            return
        if self.max_bytes and self.regular and self.size \
                and self.size + len(data) > self.max_bytes and not self._rotate(len(data)):
            self.lost += len(data)         # rotated, but the new file did not open
            return
        if self.partial:
            data = b"\n" + data
        view = memoryview(data)
        try:
            while view:
                n = os.write(self.fd, view)
                self.size += n
                view = view[n:]
        except OSError as e:
            self.partial = len(view) < len(data) or self.partial
            self.lost += len(view)
            self._fail(e)
            return
        self.partial = False
        if self.error is not None:
            lost, self.error, self.lost = self.lost, None, 0
            self.hub._errors.pop(self.label, None)
            self.hub._notice(f"{self.label}: writing resumed ({lost} bytes lost)")

    def _rotate(self, incoming):
        """Rename the chain and open a fresh file; False if no file is open after."""
        now = self.hub._loop.time()
        if now < self.next_rotate:
            return True                    # failed a moment ago: keep growing
        try:
            mine = os.fstat(self.fd)
            self.size = mine.st_size
            if self.size + incoming <= self.max_bytes:
                return True                # truncated behind our back (copytruncate)
            try:
                there = os.stat(self.path)
                moved = (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino)
            except FileNotFoundError:
                moved = True               # logrotate took it: a new file is all we need
            if not moved and self.backups:
                for i in range(self.backups - 1, 0, -1):
                    with contextlib.suppress(FileNotFoundError):
                        os.rename(f"{self.path}.{i}", f"{self.path}.{i + 1}")
                os.rename(self.path, f"{self.path}.1")
            elif not moved:
                os.unlink(self.path)       # log_backups = 0: keep no old file
        except OSError as e:
            self.next_rotate = now + RETRY
            msg = e.strerror or str(e)
            if self.rotate_error != msg:
                self.rotate_error = msg
                self.hub._errors[self.label + " rotation"] = f"{self.label}: cannot rotate: {msg}"
                self.hub._notice(f"cannot rotate {self.label} {self.path}: {msg}; "
                                 "it keeps growing, will keep trying")
            return True
        if self.rotate_error is not None:
            self.rotate_error = None
            self.hub._errors.pop(self.label + " rotation", None)
            self.hub._notice(f"{self.label}: rotating again")
        self.close()
        return self.open()

    def _fail(self, e):
        msg = WHY.get(e.errno) or e.strerror or str(e)
        if self.error != msg:
            self.error = msg
            self.hub._errors[self.label] = f"{self.label}: {msg}"
            self.hub._notice(f"cannot write {self.label} {self.path}: {msg}; will keep trying")


class StreamFiles:
    """Raw per-stream files of services (supervisord's stdout_logfile and
    stderr_logfile): which FileSink gets the bytes of (service, stream).

    Files are shared by path, so stdout and stderr redirected into one file
    (redirect_stderr) are one fd and keep their order of arrival. A file
    opens at its first write; configure() again (a reload) keeps the files
    still named, applies new limits and closes the rest.
    """

    def __init__(self, hub):
        self.hub, self.routes, self.sinks = hub, {}, {}   # (service, stream) -> sink; path -> sink

    def configure(self, specs):
        routes, sinks = {}, {}
        for spec in specs:
            for file in getattr(spec, "stream_files", ()):
                sink = sinks.get(file.path) or self.sinks.get(file.path)
                if sink is None:
                    which = "stdout" if file.stream == "out" else "stderr"
                    sink = FileSink(self.hub, f"{spec.name}/{which}_logfile", file.path)
                sink.max_bytes, sink.backups = file.max_bytes, file.backups
                sinks[file.path] = routes[(spec.name, file.stream)] = sink
        for path, sink in self.sinks.items():
            if path not in sinks:
                sink.close()
                self.hub._errors.pop(sink.label, None)
        self.routes, self.sinks = routes, sinks

    def get(self, service, stream):
        return self.routes.get((service, stream))

    def of(self, service):
        return {sink for (name, _), sink in self.routes.items() if name == service}
