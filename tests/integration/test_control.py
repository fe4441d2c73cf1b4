"""The control socket, spoken raw: every command and every error of
docs/protocol.md against a real master, plus the socket's safety (mode,
stale and live sockets, other uids) and robustness (garbage, huge lines,
thousands of connections, followers that never read).

The CLI's view of the same commands is in test_cli_integration.py.
"""

import json
import os
import pwd
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import time

import psutil
import pytest

import corral
from corral.cli.client import NoMaster
from corral.errors import ControlError
from corral.protocol import MAX_REQUEST
from corral.frontends.control import MAX_CLIENTS
from tests.integration.harness import DEADLINE, pid_alive, wait_until

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "control"))
WORKER = os.path.join(FIXTURES, "worker.py")
FLOOD = os.path.join(FIXTURES, "flood.py")
PY = sys.executable

STATUS_KEYS = {"name", "service", "state", "pid", "uptime", "restarts", "last_exit",
               "cpu_percent", "rss", "description", "reason", "since", "exit_code",
               "exit_signal", "spawn_error"}
EVENT_KEYS = {"time", "name", "service", "from", "to", "pid", "exit", "reason"}
LOG_KEYS = {"time", "name", "service", "pid", "stream", "line", "seq"}


def command(*args):
    """A TOML array running a Python script (JSON strings are TOML strings)."""
    return json.dumps([PY, "-u", *args])


def worker(*args):
    return command(WORKER, *args)


def app_config():
    with open(os.path.join(FIXTURES, "app.py")) as f:
        return f.read()


class Conn:
    """One raw connection: bytes out, JSON lines in, every read with a deadline."""

    def __init__(self, path, timeout=DEADLINE):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 1

    def send(self, data):
        self.sock.sendall(data)

    def request(self, cmd, request_id=None, **args):
        if request_id is None:
            request_id = self.next_id
            self.next_id += 1
        self.send(json.dumps({"id": request_id, "cmd": cmd, "args": args}).encode() + b"\n")
        return request_id

    def read(self):
        """The next message, or None once the master closed the connection."""
        while b"\n" not in self.buf:
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, cmd, **args):
        request_id = self.request(cmd, **args)
        reply = self.read()
        assert reply is not None and reply["id"] == request_id, reply
        return reply

    def close(self):
        self.sock.close()


def ok(reply):
    assert reply["ok"] is True, reply
    return reply["result"]


def error_code(reply):
    assert reply["ok"] is False, reply
    assert set(reply["error"]) == {"code", "message"} and reply["error"]["message"], reply
    return reply["error"]["code"]


def call_error(m, cmd, **args):
    with pytest.raises(ControlError) as info:
        m.call(cmd, **args)
    return info.value.code


def up(m, name, count=1):
    """Wait until worker.py in `name` has said it is up (its signal handlers are set)."""
    m.wait_log(rf"\] +{re.escape(name)} up \d+", count=count)


def read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def pids(m):
    return {name: row["pid"] for name, row in m.status().items()}


def no_internal_errors(m):
    text = m.log_text()
    assert "internal error" not in text and "control: " not in text, text[-3000:]


# -- the socket --------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_socket_is_private_and_version_names_the_master(master):
    m = master(f"[services.a]\ncommand = {worker()}\n")
    assert stat.S_IMODE(os.stat(m.socket).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(m.socket).st_mode)
    version = m.call("version")
    assert version == {"version": corral.__version__, "pid": m.proc.pid,
                       "containment": version["containment"]} and version["containment"]


@pytest.mark.timeout(30)
def test_stale_socket_of_a_killed_master_is_replaced(master):
    first = master(f"[services.a]\ncommand = {worker()}\n")
    first.wait_state("a", "RUNNING")
    first.signal(signal.SIGKILL)
    first.wait_exit()
    assert os.path.exists(first.socket)  # left behind: nobody listens on it now
    with pytest.raises(NoMaster):
        first.call("version")
    second = master(f"[services.b]\ncommand = {worker()}\n", start=False)
    second.socket = first.socket
    second.start()
    assert second.call("version")["pid"] == second.proc.pid
    assert set(second.status()) == {"b"}
    assert stat.S_IMODE(os.stat(second.socket).st_mode) == 0o600


@pytest.mark.timeout(30)
def test_second_master_on_a_live_socket_is_refused_and_the_first_unharmed(master):
    first = master(f"[services.a]\ncommand = {worker()}\n")
    row = first.wait_state("a", "RUNNING")
    marker = os.path.join(first.dir, "second-started-something")
    second = master(f"[services.b]\ncommand = {json.dumps(['touch', marker])}\n", start=False)
    second.socket = first.socket
    second.start(wait=False)
    assert second.wait_exit() != 0
    with open(second.stdout_path) as f:
        out = f.read()
    assert f"corral: error: another corral master is already running on {first.socket}" in out
    assert "Traceback" not in out
    assert not os.path.exists(marker)  # it refused before it spawned anything
    assert first.proc.poll() is None
    assert first.status("a")["pid"] == row["pid"] and pid_alive(row["pid"])
    assert first.call("version")["pid"] == first.proc.pid
    assert stat.S_IMODE(os.stat(first.socket).st_mode) == 0o600


def _as_nobody(path, payload):
    """Fork; the child drops to `nobody` and tries `payload` on the socket.

    Returns {"connect": errno or 0, "data": everything the master sent}.
    """
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            result = {"connect": 0, "data": ""}
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            try:
                sock.connect(path)
            except OSError as exc:
                result["connect"] = exc.errno
            else:
                try:
                    sock.sendall(payload)
                except OSError:
                    pass
                data = b""
                try:
                    while chunk := sock.recv(65536):
                        data += chunk
                except OSError:
                    pass
                result["data"] = data.decode("utf-8", "replace")
            os.write(write_end, json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(b"".join(chunks))


@pytest.mark.timeout(30)
@pytest.mark.skipif(os.getuid() != 0, reason="needs root to become nobody")
def test_another_uid_is_refused(master):
    m = master(f"[services.a]\ncommand = {worker()}\n")
    row = m.wait_state("a", "RUNNING")
    request = b'{"id": 1, "cmd": "stop", "args": {"names": ["all"]}}\n'
    # Mode 0600 (and a private folder): nobody cannot even connect.
    os.chmod(m.dir, 0o711)
    result = _as_nobody(m.socket, request)
    assert result["connect"] != 0 and result["data"] == ""
    # With the mode opened up, SO_PEERCRED still turns it away.
    os.chmod(m.socket, 0o777)
    result = _as_nobody(m.socket, request)
    assert result["connect"] == 0
    replies = [json.loads(line) for line in result["data"].splitlines()]
    assert replies == [{"id": None, "ok": False,
                        "error": {"code": "failed", "message": "permission denied"}}]
    # Nothing was done, and root is still served.
    assert m.status("a")["state"] == "RUNNING" and m.status("a")["pid"] == row["pid"]
    assert m.call("version")["pid"] == m.proc.pid


# -- status ---------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_status_fields_names_globs_and_unknown(master):
    m = master(f"""
[services.big]
command = {worker("--child-mb", "40")}
start_seconds = 0

[services.web]
command = {worker()}
numprocs = 2
start_seconds = 0

[services.crash]
command = {json.dumps(["sh", "-c", "exit 1"])}
start_seconds = 0
backoff_initial = 1.7
backoff_jitter = 0
""")
    m.wait_log(r"big child ready \d+")
    m.wait_state("web:1", "RUNNING")
    rows = m.call("status")
    assert [r["name"] for r in rows] == ["big", "web:0", "web:1", "crash"]  # config order
    assert all(set(r) == STATUS_KEYS for r in rows)

    big = m.status("big")
    assert big["service"] == "big" and big["state"] == "RUNNING"
    assert isinstance(big["pid"], int) and pid_alive(big["pid"])
    assert isinstance(big["uptime"], float) and 0 < big["uptime"] < 60
    assert big["restarts"] == 0 and big["last_exit"] is None
    assert isinstance(big["cpu_percent"], float) and big["cpu_percent"] >= 0
    # The worker itself is a small Python; its child holds 40 MB.
    own = psutil.Process(big["pid"]).memory_info().rss
    assert own < 40 << 20
    assert big["rss"] > 40 << 20 and big["rss"] > own

    web0 = m.status("web:0")
    assert web0["service"] == "web" and web0["rss"] > 0 and web0["pid"] != big["pid"]

    def names(*wanted):
        return [r["name"] for r in m.call("status", names=list(wanted))]

    assert names("web") == ["web:0", "web:1"]
    assert names("web:1") == ["web:1"]
    assert names("w*") == ["web:0", "web:1"]
    assert names("web:*") == ["web:0", "web:1"]
    assert names("?ig") == ["big"]
    assert names("web", "web:0", "w*") == ["web:0", "web:1"]  # each instance once
    assert names("all") == ["big", "web:0", "web:1", "crash"]
    assert names() == names("all")
    assert call_error(m, "status", names=["nope"]) == "no_such_service"
    assert call_error(m, "status", names=["web", "nope"]) == "no_such_service"
    assert call_error(m, "status", names=["x*"]) == "no_such_service"

    # A crashing service waits out its backoff, and says for how long.
    crash = m.wait_state("crash", "BACKOFF")
    found = re.fullmatch(r"exit 1; restarting in (\d+\.\d) s", crash["description"])
    assert found, crash
    assert 0 <= float(found[1]) <= 1.7
    assert crash["pid"] is None and crash["uptime"] is None
    assert crash["cpu_percent"] is None and crash["rss"] is None
    assert crash["last_exit"] == "exit 1" and crash["restarts"] >= 1


# -- start, stop, restart ------------------------------------------------------------------


@pytest.mark.timeout(40)
def test_start_stop_restart_instances_services_all_and_globs(master):
    m = master(f"""
[services.web]
command = {worker("--stop-delay", "0.4")}
numprocs = 2

[services.db]
command = {worker()}
""")
    for name in ("web:0", "web:1", "db"):
        up(m, name)
    before = pids(m)

    # stop one instance: the reply comes once it has stopped, its process gone.
    started = time.monotonic()
    result = m.call("stop", names=["web:1"])
    assert time.monotonic() - started >= 0.35  # it waited out the worker's slow stop
    assert result == [{"name": "web:1", "state": "STOPPED", "ok": True, "message": result[0]["message"]}]
    assert not pid_alive(before["web:1"])
    assert m.status("web:1")["pid"] is None
    assert pids(m)["web:0"] == before["web:0"] and pids(m)["db"] == before["db"]

    # start it: the reply comes once it runs.
    result = m.call("start", names=["web:1"])
    assert [(r["name"], r["state"], r["ok"]) for r in result] == [("web:1", "RUNNING", True)]
    after = pids(m)
    assert after["web:1"] not in (None, before["web:1"]) and pid_alive(after["web:1"])
    up(m, "web:1", count=2)

    # A service: all its instances.
    result = m.call("stop", names=["web"])
    assert [(r["name"], r["state"], r["ok"]) for r in result] == [
        ("web:0", "STOPPED", True), ("web:1", "STOPPED", True)]
    assert not pid_alive(after["web:0"]) and not pid_alive(after["web:1"])
    assert m.status("db")["pid"] == before["db"]

    # A glob.
    result = m.call("start", names=["web:*"])
    assert [(r["name"], r["state"], r["ok"]) for r in result] == [
        ("web:0", "RUNNING", True), ("web:1", "RUNNING", True)]

    # restart all: every pid is new; already-running or not does not matter.
    before = pids(m)
    result = m.call("restart", names=["all"])
    assert [(r["name"], r["state"], r["ok"]) for r in result] == [
        ("web:0", "RUNNING", True), ("web:1", "RUNNING", True), ("db", "RUNNING", True)]
    after = pids(m)
    for name, pid in before.items():
        assert after[name] != pid and not pid_alive(pid) and pid_alive(after[name])

    # Starting what runs changes nothing; stopping what is stopped neither.
    assert [r["ok"] for r in m.call("start", names=["db"])] == [True]
    assert pids(m)["db"] == after["db"]
    m.call("stop", names=["d?"])
    assert [(r["state"], r["ok"]) for r in m.call("stop", names=["db"])] == [("STOPPED", True)]

    # Unknown names: nothing is done at all.
    assert call_error(m, "stop", names=["web", "nope"]) == "no_such_service"
    assert call_error(m, "restart", names=["nope"]) == "no_such_service"
    assert call_error(m, "start", names=["db", "nope*"]) == "no_such_service"
    assert m.status("db")["state"] == "STOPPED"
    assert pids(m)["web:0"] == after["web:0"]
    # An empty list names nothing: it is not "everything".
    for cmd in ("start", "stop", "restart"):
        assert call_error(m, cmd, names=[]) == "bad_argument"
    assert m.status("web:0")["state"] == "RUNNING"
    no_internal_errors(m)


@pytest.mark.timeout(30)
def test_restart_one_service_leaves_the_others_alone(master):
    """The 3 a.m. operator: restart `api`, and nothing else so much as blinks."""
    m = master(f"""
[services.db]
command = {worker()}

[services.api]
command = {worker()}
after = ["db"]

[services.cache]
command = {worker()}
numprocs = 2
""")
    for name in ("db", "api", "cache:0", "cache:1"):
        m.wait_state(name, "RUNNING")
    before = m.status()
    seen = len(m.events())
    result = m.call("restart", names=["api"])
    assert [(r["name"], r["state"], r["ok"]) for r in result] == [("api", "RUNNING", True)]
    after = m.status()
    assert after["api"]["pid"] != before["api"]["pid"] and not pid_alive(before["api"]["pid"])
    for name in ("db", "cache:0", "cache:1"):
        assert after[name]["pid"] == before[name]["pid"] and pid_alive(after[name]["pid"])
        assert after[name]["restarts"] == before[name]["restarts"]
        assert after[name]["uptime"] >= before[name]["uptime"]
    changes = m.events()[seen:]
    assert {e["name"] for e in changes} == {"api"}
    assert [(e["from"], e["to"]) for e in changes] == [
        ("RUNNING", "STOPPING"), ("STOPPING", "STOPPED"), ("STOPPED", "STARTING"), ("STARTING", "RUNNING")]


@pytest.mark.timeout(30)
def test_start_starts_stopped_dependencies_first(master):
    m = master(f"""
[services.db]
command = {worker()}

[services.queue]
command = {worker()}
after = ["db"]

[services.web]
command = {worker()}
after = ["queue"]
""")
    m.wait_state("web", "RUNNING")
    m.call("stop", names=["web", "queue", "db"])
    assert {r["state"] for r in m.call("status")} == {"STOPPED"}
    seen = len(m.events())
    result = m.call("start", names=["web"])
    assert [(r["name"], r["state"], r["ok"]) for r in result] == [("web", "RUNNING", True)]
    assert {r["state"] for r in m.call("status")} == {"RUNNING"}
    starts = [e["name"] for e in m.events()[seen:] if e["to"] == "STARTING"]
    running = [e["name"] for e in m.events()[seen:] if e["to"] == "RUNNING"]
    assert starts == ["db", "queue", "web"] and running == ["db", "queue", "web"]


@pytest.mark.timeout(30)
def test_start_waits_for_ready_and_says_when_it_failed(master):
    m = master(app_config(), suffix=".py")
    m.wait_state("web", "RUNNING")
    assert m.status("slow")["state"] == "STOPPED"
    started = time.monotonic()
    result = m.call("start", names=["slow"])
    assert time.monotonic() - started >= 0.5  # startService takes 0.6 s
    assert [(r["name"], r["state"], r["ok"]) for r in result] == [("slow", "RUNNING", True)]
    assert "slow ready" in m.log_text()

    result = m.call("start", names=["boom", "slow"])
    assert [(r["name"], r["state"], r["ok"]) for r in result] == [
        ("boom", "FATAL", False), ("slow", "RUNNING", True)]
    assert result[0]["message"]  # why it failed


# -- signal ---------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_signal_by_name_and_number_and_bad_signals(master):
    m = master(f"""
[services.a]
command = {worker()}

[services.b]
command = {worker()}
numprocs = 2
autostart = false
""")
    row = m.wait_state("a", "RUNNING")
    up(m, "a")
    result = m.call("signal", names=["a"], signal="USR1")
    assert result == [{"name": "a", "state": "RUNNING", "ok": True, "message": "sent SIGUSR1"}]
    m.wait_log(r"a\[\d+\] +a got SIGUSR1")
    m.call("signal", names=["a"], signal="sighup")
    m.wait_log(r"a got SIGHUP")
    m.call("signal", names=["a"], signal=int(signal.SIGUSR1))
    m.wait_log(r"a got SIGUSR1", count=2)
    assert m.status("a")["pid"] == row["pid"]

    for bad in ("BOGUS", "SIG", "", 0, 999, -9):
        c = Conn(m.socket)
        assert error_code(c.call("signal", names=["a"], signal=bad)) == "bad_argument", bad
        c.close()
    assert call_error(m, "signal", names=["nope"], signal="HUP") == "no_such_service"
    # Stopped instances: ok false each, and the rest still gets it.
    result = m.call("signal", names=["b", "a"], signal="USR1")
    assert [(r["name"], r["ok"]) for r in result] == [("b:0", False), ("b:1", False), ("a", True)]
    assert "not running" in result[0]["message"]
    m.wait_log(r"a got SIGUSR1", count=3)
    assert m.status("a")["pid"] == row["pid"]


# -- logs and events ------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_logs_history_merged_and_follow(master):
    m = master(f"""
[services.a]
command = {worker("--lines", "5")}
start_seconds = 0

[services.b]
command = {worker("--lines", "2")}
numprocs = 2
start_seconds = 0
""")
    pid_a = m.wait_state("a", "RUNNING")["pid"]
    up(m, "a")
    up(m, "b:0")
    up(m, "b:1")
    lines = m.call("logs", name="a", lines=3)
    assert all(set(item) == LOG_KEYS for item in lines)
    assert [item["line"] for item in lines] == ["a line 3", "a line 4", f"a up {pid_a}"]
    assert {(item["name"], item["service"], item["pid"], item["stream"]) for item in lines} == {
        ("a", "a", pid_a, "out")}
    assert lines[0]["time"] <= lines[1]["time"] <= lines[2]["time"] <= time.time()
    history = m.call("logs", name="a", lines=100)
    assert [item["line"] for item in history if item["stream"] == "out"][:2] == \
        ["a line 0", "a line 1"]
    assert history[0]["line"] == f"a: spawned, pid {pid_a}"  # the master's, about a
    assert m.call("logs", name="a", lines=0) == []
    # A service: its instances; an instance: only it.
    assert {item["name"] for item in m.call("logs", name="b")} == {"b:0", "b:1", "corral"}
    assert {item["name"] for item in m.call("logs", name="b:1")} == {"b:1"}
    # The merged stream has every worker and the master's own lines.
    merged = m.call("logs", lines=1000)
    assert {"a", "b:0", "b:1", "corral"} <= {item["name"] for item in merged}
    assert any(item["stream"] == "log" and "spawned" in item["line"] for item in merged)
    assert m.call("logs", name="all", lines=5) == m.call("logs", lines=5)
    assert len(m.call("logs", lines=4)) == 4
    assert call_error(m, "logs", name="nope") == "no_such_service"
    assert call_error(m, "logs", name="b:*") == "bad_argument"
    assert call_error(m, "logs", name="x*") == "bad_argument"

    # follow: the history, then each new line as a stream item.
    c = Conn(m.socket)
    request_id = c.request("logs", name="a", lines=1, follow=True)
    first = c.read()
    assert first["id"] == request_id and [i["line"] for i in ok(first)] == [f"a up {pid_a}"]
    everything = Conn(m.socket)
    everything.request("logs", lines=0, follow=True)
    assert ok(everything.read()) == []
    m.call("signal", names=["b:0"], signal="USR1")  # not a's: not in a's stream
    m.call("signal", names=["a"], signal="USR1")
    item = c.read()
    assert item == {"id": request_id, "stream": item["stream"]}
    assert item["stream"]["line"] == "a got SIGUSR1" and item["stream"]["name"] == "a"
    assert set(item["stream"]) == LOG_KEYS
    got = set()
    while not {"a got SIGUSR1", "b:0 got SIGUSR1"} <= got:
        got.add(everything.read()["stream"]["line"])
    # What the client sends on a stream is ignored; closing ends it.
    c.send(b'{"id": 9, "cmd": "version"}\n')
    m.call("signal", names=["a"], signal="HUP")
    assert c.read()["stream"]["line"] == "a got SIGHUP"
    c.close()
    everything.close()
    m.call("signal", names=["a"], signal="HUP")
    m.wait_log(r"a got SIGHUP", count=2)
    assert m.call("version")["pid"] == m.proc.pid
    no_internal_errors(m)


@pytest.mark.timeout(30)
def test_events_history_and_follow(master):
    m = master(f"[services.a]\ncommand = {worker()}\n\n[services.b]\ncommand = {worker()}\n")
    pid_a = m.wait_state("a", "RUNNING")["pid"]
    m.wait_state("b", "RUNNING")
    up(m, "a")
    events = m.call("events")
    assert all(set(e) == EVENT_KEYS for e in events)
    mine = [e for e in events if e["name"] == "a"]
    assert [(e["from"], e["to"]) for e in mine] == [("STOPPED", "STARTING"), ("STARTING", "RUNNING")]
    assert mine[1]["pid"] == pid_a and mine[1]["service"] == "a" and mine[1]["exit"] is None
    assert mine[0]["time"] <= mine[1]["time"] <= time.time()
    assert m.call("events", lines=1) == events[-1:]
    assert m.call("events", lines=0) == []
    # More than there are, by less than twice as many: all of them.
    assert m.call("events", lines=len(events) + 1) == events

    c = Conn(m.socket)
    request_id = c.request("events", lines=1, follow=True)
    assert ok(c.read()) == events[-1:]
    m.call("stop", names=["a"])
    first, second = c.read(), c.read()
    assert first["id"] == second["id"] == request_id
    assert (first["stream"]["name"], first["stream"]["from"], first["stream"]["to"]) == (
        "a", "RUNNING", "STOPPING")
    assert first["stream"]["pid"] == pid_a
    assert (second["stream"]["from"], second["stream"]["to"]) == ("STOPPING", "STOPPED")
    assert second["stream"]["pid"] is None and second["stream"]["exit"] == "exit 0"
    # A crash: the exit is named.
    os.kill(m.status("b")["pid"], 9)
    item = c.read()["stream"]
    assert (item["name"], item["from"], item["exit"]) == ("b", "RUNNING", "SIGKILL")
    c.close()


# -- tree, reload, reopen, shutdown --------------------------------------------------------


@pytest.mark.timeout(30)
def test_tree_includes_python_children(master):
    m = master(app_config(), suffix=".py")
    pid = m.wait_state("web", "RUNNING")["pid"]
    tree = m.call("tree")
    assert tree["name"] == "shop"
    top = {node["name"]: node for node in tree["children"]}
    assert list(top) == ["web", "slow", "boom"]
    web = top["web"]
    assert web["kind"] == "python" and web["state"] == "RUNNING" and web["pid"] == pid
    assert web["class"] == "corral.service.MultiService"
    assert web["children"] == [
        {"name": "http", "class": "Leaf", "children": []},
        {"name": "admin", "class": "Leaf", "children": []}]
    assert web["instances"] == [{"name": "web", "state": "RUNNING", "pid": pid}]
    assert top["slow"]["state"] == "STOPPED" and top["slow"]["pid"] is None
    assert top["slow"]["class"] == "Slow" and top["slow"]["children"] == []

    m2 = master(f"[services.cmd]\ncommand = {worker()}\nnumprocs = 2\n")
    m2.wait_state("cmd:1", "RUNNING")
    tree = m2.call("tree")
    assert tree["name"] == "config.toml"
    [node] = tree["children"]
    assert (node["name"], node["kind"], node["class"], node["children"]) == ("cmd", "command", None, [])
    assert [i["name"] for i in node["instances"]] == ["cmd:0", "cmd:1"]
    assert all(isinstance(i["pid"], int) for i in node["instances"])


@pytest.mark.timeout(30)
def test_reload_applies_the_difference_and_refuses_a_broken_config(master):
    m = master(f"""
[services.keep]
command = {worker()}

[services.change]
command = {worker()}

[services.drop]
command = {worker()}
""")
    for name in ("keep", "change", "drop"):
        m.wait_state(name, "RUNNING")
    before = pids(m)
    with open(m.config, "w") as f:
        f.write(f"""
[services.keep]
command = {worker()}

[services.change]
command = {worker("--lines", "1")}

[services.new]
command = {worker()}
""")
    assert m.call("reload") == {"added": ["new"], "removed": ["drop"], "changed": ["change"],
                                "scaled": [], "unchanged": ["keep"]}
    after = m.status()
    assert list(after) == ["keep", "change", "new"]
    assert after["keep"]["pid"] == before["keep"]
    assert after["change"]["pid"] != before["change"]
    assert not pid_alive(before["drop"]) and not pid_alive(before["change"])
    m.wait_state("new", "RUNNING")
    m.wait_state("change", "RUNNING")
    current = pids(m)
    assert call_error(m, "status", names=["drop"]) == "no_such_service"
    # Nothing changed: nothing touched.
    assert m.call("reload") == {"added": [], "removed": [], "changed": [],
                                "scaled": [], "unchanged": ["keep", "change", "new"]}

    with open(m.config, "w") as f:
        f.write(f"[services.keep]\ncommand = {worker()}\ncolour = 'red'\n")
    with pytest.raises(ControlError) as info:
        m.call("reload")
    assert info.value.code == "config_error"
    assert m.config in info.value.message and "'keep'" in info.value.message
    assert "'colour'" in info.value.message
    assert list(m.status()) == ["keep", "change", "new"]
    assert pids(m) == current


@pytest.mark.timeout(30)
def test_reopen_after_rotation(master):
    m = master(f"[services.a]\ncommand = {worker()}\n")
    up(m, "a")
    os.rename(m.logfile, m.logfile + ".1")
    m.call("signal", names=["a"], signal="USR1")
    wait_until(lambda: "a got SIGUSR1" in read_text(m.logfile + ".1"), dump=m.output)
    assert not os.path.exists(m.logfile)
    assert m.call("reopen") is None
    m.call("signal", names=["a"], signal="HUP")
    m.wait_log(r"a got SIGHUP")
    assert "a got SIGHUP" not in read_text(m.logfile + ".1")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("cmd", ["stop", "restart"])
def test_stop_and_restart_of_several_stop_dependents_first(master, cmd):
    m = master(f"""
[services.db]
command = {worker()}

[services.web]
command = {worker("--stop-delay", "0.5")}
after = ["db"]
""")
    up(m, "db")
    up(m, "web")
    follower = Conn(m.socket)
    follower.request("events", lines=0, follow=True)
    assert ok(follower.read()) == []
    assert all(row["ok"] for row in m.call(cmd, names=["all"]))
    seen = []
    want = ("db", "STOPPED")
    while want not in seen:
        item = follower.read()["stream"]
        seen.append((item["name"], item["to"]))
    # db's stop began only once web (0.5 s to stop) had stopped.
    assert seen.index(("web", "STOPPED")) < seen.index(("db", "STOPPING")), seen
    follower.close()
    if cmd == "restart":
        assert {row["state"] for row in m.call("status")} == {"RUNNING"}


@pytest.mark.timeout(30)
def test_shutdown_answers_once_the_master_is_done(master):
    m = master(f"""
[services.db]
command = {worker("--stop-delay", "1.0")}

[services.web]
command = {worker()}
after = ["db"]
numprocs = 2
""")
    for name in ("db", "web:0", "web:1"):
        up(m, name)
    workers = pids(m)
    follower = Conn(m.socket)
    follower.request("events", lines=0, follow=True)
    assert ok(follower.read()) == []
    c = Conn(m.socket)
    request_id = c.request("shutdown")
    # While it stops (db takes 1 s), no new actions, but questions are answered.
    other = Conn(m.socket)
    wait_until(lambda: ok(other.call("status", names=["db"]))[0]["state"] == "STOPPING", dump=m.output)
    assert error_code(other.call("start", names=["web"])) == "shutting_down"
    assert error_code(other.call("restart", names=["db"])) == "shutting_down"
    assert error_code(other.call("reload")) == "shutting_down"
    assert ok(other.call("version"))["pid"] == m.proc.pid
    other.close()

    reply = c.read()
    assert reply == {"id": request_id, "ok": True, "result": None}
    for pid in workers.values():
        assert not pid_alive(pid)  # everything stopped before the answer
    assert "all services stopped" in m.log_text()
    assert m.wait_exit() == 0
    assert not os.path.exists(m.socket)
    assert c.read() is None
    # The follower saw the stops, then the master closed its stream.
    seen = []
    while (message := follower.read()) is not None:
        seen.append((message["stream"]["name"], message["stream"]["to"]))
    assert ("db", "STOPPED") in seen and seen.index(("web:0", "STOPPED")) < seen.index(("db", "STOPPED"))


# -- robustness ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_garbage_gets_error_replies_and_the_connection_keeps_working(master):
    m = master(f"[services.a]\ncommand = {worker()}\n")
    row = m.wait_state("a", "RUNNING")
    c = Conn(m.socket)
    cases = [
        (b"hello", None, "bad_request"),
        (b"\xff\xfe\x00", None, "bad_request"),
        (b"[1, 2]", None, "bad_request"),
        (b'"a string"', None, "bad_request"),
        (b"[" * 200000, None, "bad_request"),  # deeper than the parser goes
        (b'{"cmd": "status"}', None, "bad_request"),
        (b'{"id": true, "cmd": "status"}', None, "bad_request"),
        (b'{"id": 1.5, "cmd": "status"}', None, "bad_request"),
        (b'{"id": [1], "cmd": "status"}', None, "bad_request"),
        (b'{"id": 1}', 1, "bad_request"),
        (b'{"id": 2, "cmd": 7}', 2, "bad_request"),
        (b'{"id": 3, "cmd": "frobnicate"}', 3, "unknown_command"),
        (b'{"id": 4, "cmd": "status", "args": []}', 4, "bad_request"),
        (b'{"id": 5, "cmd": "status", "args": {"names": "a"}}', 5, "bad_argument"),
        (b'{"id": 6, "cmd": "status", "args": {"names": [1]}}', 6, "bad_argument"),
        (b'{"id": 7, "cmd": "status", "args": {"bogus": 1}}', 7, "bad_argument"),
        (b'{"id": 8, "cmd": "logs", "args": {"lines": -1}}', 8, "bad_argument"),
        (b'{"id": 9, "cmd": "logs", "args": {"lines": "10"}}', 9, "bad_argument"),
        (b'{"id": 10, "cmd": "logs", "args": {"lines": 1.0}}', 10, "bad_argument"),
        (b'{"id": 11, "cmd": "logs", "args": {"lines": true}}', 11, "bad_argument"),
        (b'{"id": 12, "cmd": "logs", "args": {"follow": 1}}', 12, "bad_argument"),
        (b'{"id": 13, "cmd": "logs", "args": {"name": 5}}', 13, "bad_argument"),
        (b'{"id": 14, "cmd": "stop"}', 14, "bad_argument"),
        (b'{"id": 15, "cmd": "stop", "args": {"names": []}}', 15, "bad_argument"),
        (b'{"id": 16, "cmd": "signal", "args": {"names": ["a"]}}', 16, "bad_argument"),
        (b'{"id": 17, "cmd": "signal", "args": {"names": ["a"], "signal": true}}', 17, "bad_argument"),
        (b'{"id": 18, "cmd": "signal", "args": {"names": ["a"], "signal": 1e3}}', 18, "bad_argument"),
        (b'{"id": 19, "cmd": "version", "args": {"x": 1}}', 19, "bad_argument"),
        (b'{"id": "s", "cmd": "stop", "args": {"names": ["nope"]}}', "s", "no_such_service"),
        (b'{"id": 20, "cmd": "logs", "args": {"lines": 1' + b"0" * 5000 + b"}}", None, "bad_request"),
        # UTF-8 only: json.loads of bytes would take these two
        ('{"id": 21, "cmd": "version"}'.encode("utf-16-be"), None, "bad_request"),
        (b'\xef\xbb\xbf{"id": 22, "cmd": "version"}', None, "bad_request"),
        # a name or pattern is at most 256 characters (compiling a huge glob blocked the loop)
        (b'{"id": 23, "cmd": "status", "args": {"names": ["' + b"*a" * 129 + b'"]}}', 23,
         "bad_argument"),
    ]
    for line, request_id, code in cases:
        c.send(line + b"\n")
        reply = c.read()
        assert reply is not None, line[:80]
        assert reply["id"] == request_id and error_code(reply) == code, (line[:80], reply)
        assert ok(c.call("version"))["pid"] == m.proc.pid  # the same connection still works
    # Blank lines are skipped; several requests in one write are answered in order.
    c.send(b'\n  \n{"id": "x", "cmd": "version"}\n{"id": "y", "cmd": "status", "args": {"names": ["a"]}}\n'
           b'{"id": "z", "cmd": "events", "args": {"lines": 1}}\n')
    assert [c.read()["id"] for _ in range(3)] == ["x", "y", "z"]
    # Odd but valid: a lone surrogate as id, a huge `lines`.
    c.send(b'{"id": "\\ud800", "cmd": "version"}\n')
    assert c.read()["id"] == "\ud800"
    assert len(ok(c.call("logs", lines=10 ** 30))) >= 1
    assert ok(c.call("events", lines=10 ** 30))
    c.close()
    big = Conn(m.socket)
    big.request("logs", lines=10 ** 30, follow=True)
    assert ok(big.read())
    big.close()
    assert m.status("a")["pid"] == row["pid"]
    no_internal_errors(m)


@pytest.mark.timeout(30)
def test_half_a_line_then_close_and_clients_that_vanish(master):
    m = master(f"[services.a]\ncommand = {worker('--stop-delay', '0.3')}\n")
    up(m, "a")
    for data in (b'{"id": 1, "cmd": "sta', b"x" * 100000, b""):
        c = Conn(m.socket)
        if data:
            c.send(data)
        c.close()
    # A client that asks for a slow action and leaves before the answer.
    c = Conn(m.socket)
    c.request("stop", names=["a"])
    c.close()
    m.wait_state("a", "STOPPED")
    assert m.call("start", names=["a"])[0]["state"] == "RUNNING"
    assert m.call("version")["pid"] == m.proc.pid
    no_internal_errors(m)


@pytest.mark.timeout(30)
def test_too_long_lines_are_refused_and_the_connection_closed(master):
    m = master(f"[services.a]\ncommand = {worker()}\n")
    m.wait_state("a", "RUNNING")
    rss_before = psutil.Process(m.proc.pid).memory_info().rss
    # A line of exactly MAX_REQUEST bytes, newline included: fine (JSON
    # allows the spaces).
    c = Conn(m.socket)
    c.send(b'{"id": 1, "cmd": "version"}' + b" " * (MAX_REQUEST - 28) + b"\n")
    assert ok(c.read())["pid"] == m.proc.pid
    assert ok(c.call("version"))  # and the connection stays
    c.close()
    # Over it, at the border or far beyond: too_long, and closed.
    for size in (MAX_REQUEST + 1, MAX_REQUEST + 2, MAX_REQUEST + 100, 10 << 20):
        c = Conn(m.socket)
        try:
            c.send(b'{"id": 1, "cmd": "version"}' + b" " * (size - 28) + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the master stopped reading and closed, as it should
        reply = c.read()
        assert reply is not None and reply["id"] is None and error_code(reply) == "too_long", size
        assert c.read() is None, size
        c.close()
    assert m.call("version")["pid"] == m.proc.pid
    assert psutil.Process(m.proc.pid).memory_info().rss < rss_before + (50 << 20)
    no_internal_errors(m)


@pytest.mark.timeout(60)
def test_thousands_of_connections_do_not_lock_out_the_operator(master):
    m = master(f"[services.a]\ncommand = {worker()}\n")
    m.wait_state("a", "RUNNING")
    fds_before = psutil.Process(m.proc.pid).num_fds()
    socks = []
    try:
        end = time.monotonic() + 20
        for _ in range(2000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            socks.append(s)
            s.settimeout(DEADLINE)
            while True:  # a full listen backlog says EAGAIN: the master is behind
                try:
                    s.connect(m.socket)
                    break
                except BlockingIOError:
                    assert time.monotonic() < end, "the master stopped accepting"
                    time.sleep(0.001)
        # Every connection is open on our side; the master keeps MAX_CLIENTS.
        started = time.monotonic()
        rows = m.call("status")
        assert time.monotonic() - started < 2.0
        assert rows[0]["name"] == "a" and rows[0]["state"] == "RUNNING"
        # The newest connections are kept and serve requests.
        s = socks[-1]
        s.sendall(b'{"id": 1, "cmd": "version"}\n')
        reply = json.loads(s.makefile("rb").readline())
        assert reply["result"]["pid"] == m.proc.pid
        # The oldest idle ones made room, and were told why.
        s = socks[0]
        notice = s.makefile("rb").readline()
        assert json.loads(notice) == {"id": None, "ok": False, "error": {
            "code": "failed", "message": "too many clients: closing the connection idle longest"}}
        wait_until(lambda: psutil.Process(m.proc.pid).num_fds() <= fds_before + MAX_CLIENTS + 5,
                   dump=m.output)
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: psutil.Process(m.proc.pid).num_fds() <= fds_before + 2, dump=m.output)
    assert m.status("a")["state"] == "RUNNING"
    no_internal_errors(m)


@pytest.mark.timeout(60)
def test_forgotten_followers_do_not_lock_out_the_operator(master):
    m = master(f"[services.a]\ncommand = {worker()}\n")
    m.wait_state("a", "RUNNING")
    followers = []
    try:
        for _ in range(MAX_CLIENTS):
            c = Conn(m.socket)
            c.request("events", lines=0, follow=True)
            assert ok(c.read()) == []  # following from now on
            followers.append(c)
        assert m.status("a")["state"] == "RUNNING"  # one more: the oldest follower made room
        assert followers[0].read() == {"id": None, "ok": False, "error": {
            "code": "failed", "message": "too many clients: closing the follower connected longest"}}
        assert followers[0].read() is None
        # The others still follow.
        m.call("signal", names=["a"], signal="KILL")
        assert followers[-1].read()["stream"]["name"] == "a"
    finally:
        for c in followers:
            c.close()


@pytest.mark.timeout(60)
def test_a_follower_that_fell_behind_is_told_even_when_the_output_stops(master):
    total = 100_000  # 10 MB: far more than the follower's buffers hold
    m = master(f"[services.flood]\ncommand = {command(FLOOD, str(total))}\nautostart = false\n"
               "start_seconds = 0\n")  # no "ready" line of the master's among the counted
    follower = Conn(m.socket)
    follower.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request_id = follower.request("logs", name="flood", lines=0, follow=True)
    m.call("start", names=["flood"])
    m.wait_log(rf"flood {total - 1:09d} ", timeout=30)  # all written; nothing more comes
    assert ok(follower.read()) == []
    lines = dropped = 0
    while lines + dropped < total:  # without the notice: a read that times out
        message = follower.read()
        assert message is not None and message["id"] == request_id
        if "dropped" in message:
            dropped += message["dropped"]
        elif message["stream"]["stream"] == "out":
            lines += 1
    assert dropped > 0 and lines + dropped == total
    follower.close()


@pytest.mark.timeout(60)
def test_followers_that_never_read_cannot_stall_or_bloat_the_master(master):
    m = master(f"""
[services.quiet]
command = {worker()}

[services.flood]
command = {command(FLOOD)}
autostart = false
""")
    m.wait_state("quiet", "RUNNING")
    logs_follower = Conn(m.socket)
    logs_follower.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    logs_id = logs_follower.request("logs", name="flood", lines=0, follow=True)
    all_follower = Conn(m.socket)
    all_follower.request("logs", lines=0, follow=True)
    events_follower = Conn(m.socket)
    events_id = events_follower.request("events", lines=0, follow=True)
    cli = subprocess.Popen(
        [PY, "-m", "corral", "logs", "flood", "-n", "0", "-f", "--socket", m.socket],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        m.call("start", names=["flood"])
        size_at_start = os.path.getsize(m.logfile)
        worst = {"status": 0.0, "rss": 0}
        master_proc = psutil.Process(m.proc.pid)

        def flooded():
            started = time.monotonic()
            assert m.status("quiet")["state"] == "RUNNING"
            worst["status"] = max(worst["status"], time.monotonic() - started)
            worst["rss"] = max(worst["rss"], master_proc.memory_info().rss)
            # 8 MB of log: far more than the followers' buffers hold.
            return os.path.getsize(m.logfile) - size_at_start > 8 << 20

        wait_until(flooded, timeout=30, interval=0.05, dump=m.output)
        assert worst["status"] < 1.0, worst
        assert worst["rss"] < 200 << 20, worst

        # The follower reads at last: items, then a drop notice, then items again.
        assert ok(logs_follower.read()) == []  # the history it asked for: none
        dropped = None
        while dropped is None:
            message = logs_follower.read()
            assert message is not None and message["id"] == logs_id
            if "dropped" in message:
                dropped = message["dropped"]
            else:
                assert message["stream"]["service"] == "flood"
        assert isinstance(dropped, int) and dropped > 0
        after = logs_follower.read()
        assert after["id"] == logs_id and after["stream"]["line"].startswith("flood ")
        # So does the CLI, which prints the notice in place of the lines.
        line = _read_line_matching(cli, rb"\[corral: \d+ lines dropped: this client fell behind\]")
        assert line
        m.call("stop", names=["flood"])
        worst["rss"] = max(worst["rss"], master_proc.memory_info().rss)
        assert worst["rss"] < 200 << 20, worst
        # The events follower never read either, and still gets its stream.
        assert ok(events_follower.read()) == []
        seen = []
        while ("flood", "STOPPED") not in seen:
            item = events_follower.read()
            assert item is not None and item["id"] == events_id
            seen.append((item["stream"]["name"], item["stream"]["to"]))
        assert ("flood", "RUNNING") in seen
    finally:
        cli.kill()
        cli.wait()
        for c in (logs_follower, all_follower, events_follower):
            c.close()
    assert m.call("version")["pid"] == m.proc.pid
    no_internal_errors(m)


def _read_line_matching(proc, pattern, timeout=DEADLINE):
    """Read proc's stdout until a line matches; return it (fails after timeout)."""
    regex = re.compile(pattern)
    fd = proc.stdout.fileno()
    buf = b""
    end = time.monotonic() + timeout
    while True:
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if regex.search(line):
                return line
        left = end - time.monotonic()
        assert left > 0, f"no line matching {pattern!r} within {timeout} s"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 1 << 16)
            assert chunk, "the CLI ended before the line came"
            buf += chunk
