"""supervisord's log methods, over the master's rings.

Logs come from the rings Operations.logs reads (the last lines of each
service), not from files: an instance's stdout or stderr "file" is the text
of its kept lines of that stream, one per line, and byte offsets count
within it; the main log is every kept line, as corral's log file writes
them. Clearing a log hides what came before from this interface only:
corral's own files and rings keep every line (no data is lost).
"""

import time

from corral.frontends.xmlrpc_structs import read_slice, rpc, tail_slice, xml_text

RING_LINES = 100_000  # asked of Operations.logs: the ring holds fewer


def main_line(line):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(line["time"]))
    who = line["name"] if line["pid"] is None else f"{line['name']}[{line['pid']}]"
    return f"{stamp}.{int(line['time'] * 1000) % 1000:03d} {who} {line['stream']}: {line['line']}\n"


class LogMethods:
    """find(namespec) -> Status or RPCError(BAD_NAME); statuses() -> all, sorted;
    result(status) -> its entry in a group verb's array."""

    def __init__(self, ops, find, statuses, result):
        self.ops, self.find, self.statuses, self.result = ops, find, statuses, result
        self.cleared = {}  # instance, or None for the main log -> time of the last line hidden

    # -- supervisor: logs ------------------------------------------------------

    def log_bytes(self, name, channel):
        """The kept lines of one instance's stream (None: the main log), as bytes."""
        cutoff = self.cleared.get(name, float("-inf"))
        lines = self.ops.logs(name, RING_LINES)
        if name is None:
            return "".join(main_line(line) for line in lines if line["time"] > cutoff).encode()
        return "".join(line["line"] + "\n" for line in lines
                       if line["stream"] == channel and line["time"] > cutoff).encode()

    def _clear(self, name):
        lines = self.ops.logs(name, 1)
        self.cleared[name] = lines[-1]["time"] if lines else float("-inf")

    @rpc("string", "int", "int")
    def supervisor_readLog(self, offset, length):
        """Read length bytes from the main log starting at offset (< 0: from the end)."""
        data = read_slice(self.log_bytes(None, None), offset, length)
        return xml_text(data.decode("utf-8", "replace"))

    supervisor_readMainLog = supervisor_readLog

    @rpc("boolean")
    def supervisor_clearLog(self):
        """Hide the main log's lines so far from this interface (files keep them)."""
        self._clear(None)
        return True

    def _read(self, name, offset, length, channel):
        status = self.find(name)
        data = read_slice(self.log_bytes(status.name, channel), offset, length)
        return xml_text(data.decode("utf-8", "replace"))

    @rpc("string", "string", "int", "int")
    def supervisor_readProcessStdoutLog(self, name, offset, length):
        """Read length bytes from name's stdout log starting at offset."""
        return self._read(name, offset, length, "out")

    supervisor_readProcessLog = supervisor_readProcessStdoutLog

    @rpc("string", "string", "int", "int")
    def supervisor_readProcessStderrLog(self, name, offset, length):
        """Read length bytes from name's stderr log starting at offset."""
        return self._read(name, offset, length, "err")

    @rpc("array", "string", "int", "int")
    def supervisor_tailProcessStdoutLog(self, name, offset, length):
        """[text, offset, overflow]: length bytes from offset, or the newest ones."""
        return tail_slice(self.log_bytes(self.find(name).name, "out"), offset, length)

    supervisor_tailProcessLog = supervisor_tailProcessStdoutLog

    @rpc("array", "string", "int", "int")
    def supervisor_tailProcessStderrLog(self, name, offset, length):
        """[text, offset, overflow] of name's stderr."""
        return tail_slice(self.log_bytes(self.find(name).name, "err"), offset, length)

    @rpc("boolean", "string")
    def supervisor_clearProcessLogs(self, name):
        """Hide name's lines so far from this interface (corral's files keep them)."""
        self._clear(self.find(name).name)
        return True

    supervisor_clearProcessLog = supervisor_clearProcessLogs

    @rpc("array")
    def supervisor_clearAllProcessLogs(self):
        """clearProcessLogs for every process."""
        statuses = self.statuses()
        for status in statuses:
            self._clear(status.name)
        return [self.result(s) for s in statuses]
