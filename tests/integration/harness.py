"""Run a real master in a real process and watch it with deadlines.

Each master gets its own session (so cleanup can kill everything it left),
a short socket path under /tmp (unix socket paths are limited to 107
bytes), and a log file that every failed wait prints, so a red test shows
what the master saw.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

from corral.cli.client import Client
# DEADLINE, WaitTimeout, pid_alive and wait_until live in tests/helpers.py (the
# unit tests use them too); the integration tests have always had them from here.
from tests.helpers import DEADLINE, WaitTimeout, pid_alive, wait_until  # noqa: F401


class Master:
    """A `corral run` process on a config written into a fresh folder."""

    def __init__(self, config_text, suffix=".toml", files=None, args=()):
        self.dir = tempfile.mkdtemp(prefix="corral-", dir="/tmp")
        self.config = os.path.join(self.dir, "config" + suffix)
        with open(self.config, "w") as f:
            f.write(config_text)
        for name, text in (files or {}).items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        self.socket = os.path.join(self.dir, "c.sock")
        self.logfile = os.path.join(self.dir, "corral.log")
        self.stdout_path = os.path.join(self.dir, "stdout.txt")
        self.args = list(args)
        self.proc = None

    # -- life --------------------------------------------------------------

    def start(self, wait=True, env=None):
        """env: variables added to (or, with None values, removed from) the test's own."""
        child_env = None
        if env:
            child_env = {**os.environ, **env}
            child_env = {k: v for k, v in child_env.items() if v is not None}
        with open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "corral", "run", self.config,
                 "--socket", self.socket, "--logfile", self.logfile, *self.args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.dir, start_new_session=True, env=child_env,
            )
        if wait:
            wait_until(self._answers, message="the master to answer", dump=self.output)
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"master exited with {self.proc.returncode}:\n{self.output()}")
        try:
            self.call("version")
            return True
        except Exception:
            return False

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=DEADLINE):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"master still running after {timeout} s\n{self.output()}") from None

    def close(self):
        """Stop the master if it still runs; kill whatever its session left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            if self.proc.poll() is None:
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- looking -----------------------------------------------------------

    def output(self):
        text = ""
        for path in (self.stdout_path, self.logfile):
            try:
                with open(path, "rb") as f:
                    text += f"[{os.path.basename(path)}]\n" + f.read()[-20000:].decode("utf-8", "replace")
            except OSError:
                pass
        return text

    def log_text(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=DEADLINE, count=1):
        regex = re.compile(pattern)
        return wait_until(lambda: len(regex.findall(self.log_text())) >= count, timeout,
                          message=f"{count} log line(s) matching {pattern!r}", dump=self.output)

    def call(self, cmd, **args):
        with Client(self.socket) as client:
            return client.call(cmd, **args)

    def status(self, name=None):
        rows = self.call("status", names=[name] if name else [])
        return {row["name"]: row for row in rows} if name is None else rows[0]

    def wait_state(self, name, state, timeout=DEADLINE):
        states = (state,) if isinstance(state, str) else tuple(state)
        return wait_until(lambda: (row := self.status(name))["state"] in states and row,
                          timeout, message=f"{name} in {states}", dump=self.output)

    def cli(self, *args, timeout=30, input=None):
        return subprocess.run(
            [sys.executable, "-m", "corral", *args, "--socket", self.socket],
            capture_output=True, text=True, timeout=timeout, input=input,
        )

    def events(self):
        return self.call("events", lines=1000)


def write_script(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def dumps(obj):
    return json.dumps(obj, indent=1)


def argv(*args):
    """A TOML array of strings (JSON strings are valid TOML basic strings)."""
    return json.dumps(list(args))


def running_pid(m, name, other_than=None):
    """Wait for name RUNNING with a pid other than other_than; return the pid."""
    row = wait_until(lambda: (r := m.status(name))["state"] == "RUNNING"
                     and r["pid"] not in (None, other_than) and r,
                     message=f"{name} RUNNING with a new pid", dump=m.output)
    return row["pid"]


def ask(port, line=b"ping", timeout=5.0):
    """One connection to 127.0.0.1:port: send a line, return the reply line (str, stripped)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(line + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed after {data!r}")
            data += chunk
    return data.decode().strip()
