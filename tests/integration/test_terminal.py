"""`corral top` and `corral shell` in a real terminal: a pty, a real master.

The client runs on the pty's slave side as it would in xterm (its size
set with TIOCSWINSZ); the test types keys into the master side and reads
what the program drew, with the escape sequences taken out, waiting for
each thing with a deadline. The rendering itself is tested without
processes in tests/unit/test_top.py.
"""

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from tests.integration.harness import DEADLINE, Master, argv, running_pid

CONFIG = f"""
[services.db]
command = {argv("sh", "-c", "while :; do echo db tick; sleep 0.2; done")}
[services.web]
command = {argv("sh", "-c", "while :; do echo web tick $$; sleep 0.2; done")}
"""

_ESCAPES = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\r|\x07")


class Terminal:
    """A program on a pty: send() keys, expect() what it shows."""

    def __init__(self, args, env=None, size=(100, 30)):
        self.master_fd, slave = os.openpty()
        columns, lines = size
        self.resize(columns, lines, slave)
        child_env = {**os.environ, "TERM": "xterm", **(env or {})}
        child_env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "corral", *args], stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True, env=child_env)
        os.close(slave)
        self.raw = b""

    def resize(self, columns, lines, fd=None):
        fcntl.ioctl(self.master_fd if fd is None else fd, termios.TIOCSWINSZ,
                    struct.pack("HHHH", lines, columns, 0, 0))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master_fd)

    def text(self, since=0):
        return _ESCAPES.sub(b"", self.raw[since:]).decode("utf-8", "replace")

    def mark(self):
        return len(self.raw)

    def _read(self, timeout):
        ready, _, _ = select.select([self.master_fd], [], [], timeout)
        if ready:
            try:
                self.raw += os.read(self.master_fd, 65536)
            except OSError:  # EIO: the program closed the terminal
                return False
        return True

    def expect(self, pattern, since=0, timeout=DEADLINE):
        """Wait until what was shown after `since` matches; the match."""
        regex = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            found = regex.search(self.text(since))
            if found:
                return found
            left = end - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)) and self.proc.poll() is not None:
                raise AssertionError(f"{pattern!r} not shown within {timeout} s; the screen had:\n"
                                     f"{self.text(since)[-3000:]}")

    def send(self, data):
        os.write(self.master_fd, data)

    def wait(self, timeout=DEADLINE):
        """The exit code, reading meanwhile so the program never blocks on output."""
        end = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < end:
            self._read(0.1)
        return self.proc.wait(max(0.1, end - time.monotonic()))


@pytest.fixture(scope="module")
def master():
    """One master for the module (its start is most of each test's time); a
    test that restarts a service waits until it is RUNNING again."""
    m = Master(CONFIG).start()
    try:
        m.wait_state("db", "RUNNING")
        m.wait_state("web", "RUNNING")
        yield m
    finally:
        m.close()


def test_top_shows_the_services_and_restarts_the_selected_one(master):
    old_pid = running_pid(master, "web")
    with Terminal(["top", "--socket", master.socket, "--interval", "0.5"]) as term:
        term.expect(r"db\s+RUNNING")
        term.expect(rf"web\s+RUNNING\s+{old_pid}")
        term.expect(r"logs: db \(following\)")
        term.expect(r"db tick")
        mark = term.mark()
        term.send(b"\x1b[B")  # down: web is selected, its log follows
        term.expect(rf"> web\s+RUNNING\s+{old_pid}", since=mark)
        term.expect(rf"logs: web \(following\)[\s\S]*web tick {old_pid}", since=mark)
        mark = term.mark()
        term.send(b"r")
        new_pid = running_pid(master, "web", other_than=old_pid)
        term.expect(rf"> web\s+RUNNING\s+{new_pid}", since=mark)
        term.expect(r"web: RUNNING", since=mark)  # the restart's answer, in the footer
        term.expect(rf"web tick {new_pid}", since=mark)
        assert master.status("db")["restarts"] == 0  # the selected one only
        mark = term.mark()
        term.resize(60, 12)
        term.proc.send_signal(signal.SIGWINCH)  # as the terminal would: the next frame fits
        term.expect(r"(?m)^corral top [^\n]{48}\n", since=mark)  # the header, cut to 59 columns
        term.send(b"q")
        assert term.wait() == 0
        assert term.raw.endswith(b"\x1b[?25h\x1b[?1049l")  # the screen and cursor given back
        assert b"\x1b[2J" not in term.raw  # never cleared: drawn over, without flicker


def test_top_prints_one_plain_snapshot_when_piped(master):
    done = master.cli("top", "--sort", "name")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    lines = done.stdout.splitlines()
    assert lines[0] == "2 instances: 2 RUNNING"
    assert re.match(r"  db\s+RUNNING\s+\d+", lines[2]) and re.match(r"  web\s+RUNNING", lines[3])
    assert lines[4] == "-- logs: db" and "db tick" in done.stdout
    done = master.cli("top", "--json", "--filter", "WEB")
    snapshot = json.loads(done.stdout)
    assert [row["name"] for row in snapshot["status"]] == ["web"]
    assert snapshot["logs"] and all(line["service"] == "web" for line in snapshot["logs"])


def test_shell_runs_status_completes_a_name_and_keeps_history(master, tmp_path):
    env = {"XDG_STATE_HOME": str(tmp_path)}
    with Terminal(["shell", "--socket", master.socket], env) as term:
        term.expect(r"corral> ")
        mark = term.mark()
        term.send(b"status\r")
        shown = term.expect(r"db\s+RUNNING[\s\S]*web\s+RUNNING[\s\S]*corral> ", since=mark)
        assert "NAME" in shown.string
        mark = term.mark()
        term.send(b"status w\t")  # TAB: the only name starting with w, from the master
        term.expect(r"status web $", since=mark)
        term.send(b"\r")
        shown = term.expect(r"web\s+RUNNING[^\n]*\n[\s\S]*corral> ", since=mark)
        assert not re.search(r"\bdb\s+RUNNING", shown.string)
        mark = term.mark()
        term.send(b"quit\r")
        assert term.wait() == 0
    with open(tmp_path / "corral" / "shell_history") as f:
        assert f.read().splitlines()[-3:] == ["status", "status web ", "quit"]
    with Terminal(["shell", "--socket", master.socket], env) as term:
        term.expect(r"corral> ")
        mark = term.mark()
        term.send(b"\x1b[A\x1b[A")  # up, up: the history of the last session
        term.expect(r"status web", since=mark)
        term.send(b"\r")
        term.expect(r"web\s+RUNNING[\s\S]*corral> ", since=mark)
        term.send(b"\x04")  # Ctrl-D: EOF leaves
        assert term.wait() == 0
