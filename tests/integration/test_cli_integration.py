"""The real `corral` command against a real master: output, exit codes and
streams of every client command (docs/cli.md).

Each CLI run is a subprocess (`python -m corral ... --socket PATH`); `-f`
runs are read line by line with a deadline and then killed.
"""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

import corral
from tests.helpers import free_port
from tests.integration.harness import DEADLINE, pid_alive, wait_until

FIXTURES = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "control"))
WORKER = os.path.join(FIXTURES, "worker.py")
PY = sys.executable


def worker(*args):
    return json.dumps([PY, "-u", WORKER, *args])


def app_config():
    with open(os.path.join(FIXTURES, "app.py")) as f:
        return f.read()


def up(m, name, count=1):
    """Wait until worker.py in `name` has said it is up (its signal handlers are set)."""
    m.wait_log(rf"\] +{re.escape(name)} up \d+", count=count)


def corral_cmd(*args, env=None, cwd=None, timeout=30):
    return subprocess.run([PY, "-m", "corral", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def one_error_line(done):
    """The single `corral: error: ...` line of an expected error, no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("corral: error: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


class Follower:
    """`corral ARGS -f` as a subprocess whose stdout is read with deadlines."""

    def __init__(self, m, *args):
        self.proc = subprocess.Popen([PY, "-m", "corral", *args, "--socket", m.socket],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""
        self.lines = []

    def wait_line(self, pattern, timeout=DEADLINE):
        """Read until a line matches pattern; return it (and forget it)."""
        regex = re.compile(pattern)
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + timeout
        checked = 0
        while True:
            for index in range(checked, len(self.lines)):
                if regex.search(self.lines[index]):
                    return self.lines.pop(index)  # the others stay for later waits
            checked = len(self.lines)
            left = end - time.monotonic()
            assert left > 0, f"no line matching {pattern!r} in {timeout} s; got {self.lines}"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 16)
                assert chunk, f"the CLI ended ({self.proc.wait()}) before {pattern!r}: {self.lines}"
                self.buf += chunk
                *new, self.buf = self.buf.split(b"\n")
                self.lines += [line.decode() for line in new]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def follow():
    started = []

    def make(m, *args):
        f = Follower(m, *args)
        started.append(f)
        return f

    yield make
    for f in started:
        if f.proc.poll() is None:
            f.proc.kill()
        f.proc.wait()


THREE = f"""
[services.db]
command = {worker()}
start_seconds = 0

[services.web]
command = {worker("--stop-delay", "0.3")}
after = ["db"]
numprocs = 2
start_seconds = 0

[services.cron]
command = {worker()}
autostart = false
start_seconds = 0
"""


# -- status -----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_status_table_json_names_and_check(master):
    m = master(THREE)
    for name in ("db", "web:0", "web:1"):
        m.wait_state(name, "RUNNING")
    rows = m.status()

    done = m.cli("status")
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "CPU", "RSS", "DESCRIPTION"]
    table = {line.split()[0]: line.split() for line in lines[1:]}
    assert list(table) == ["db", "web:0", "web:1", "cron"]
    assert table["web:1"][1:3] == ["RUNNING", str(rows["web:1"]["pid"])]
    assert re.fullmatch(r"\d+\.\ds", table["db"][3]) and table["db"][4] == "0"
    assert re.fullmatch(r"\d+\.\d%", table["db"][5]) and re.fullmatch(r"[\d.]+[BKMG]", table["db"][6])
    assert table["cron"][1:] == ["STOPPED", "-", "-", "0", "-", "-"]
    assert "\033[" not in done.stdout  # not a terminal: no colour

    done = m.cli("status", "--json")
    items = json.loads(done.stdout)
    assert done.returncode == 0 and [i["name"] for i in items] == ["db", "web:0", "web:1", "cron"]
    assert items[0]["pid"] == rows["db"]["pid"] and items[0]["rss"] > 0
    done = corral_cmd("--json", "status", "web", "--socket", m.socket)  # --json before the command
    assert [i["name"] for i in json.loads(done.stdout)] == ["web:0", "web:1"]

    done = m.cli("status", "web:*", "d?")
    assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == ["web:0", "web:1", "db"]
    done = m.cli("status", "web:1", "--detail", "--json")
    assert [i["name"] for i in json.loads(done.stdout)] == ["web:1"]

    done = m.cli("status", "nope")
    assert done.returncode == 1 and done.stdout == ""
    assert "nope" in one_error_line(done)

    assert m.cli("status", "--check").returncode == 1  # cron is STOPPED
    done = m.cli("status", "--check", "web", "db")
    assert done.returncode == 0 and "web:1" in done.stdout
    assert m.cli("status", "cron", "--check").returncode == 1
    m.call("start", names=["cron"])
    assert m.cli("status", "--check").returncode == 0


@pytest.mark.timeout(30)
def test_status_describes_backoff(master):
    m = master(f"""
[services.crash]
command = {json.dumps(["sh", "-c", "echo dying; exit 3"])}
backoff_initial = 1.6
backoff_jitter = 0
""")
    m.wait_state("crash", "BACKOFF")

    def backoff_row():  # (it may have moved on by the time the CLI asks: ask again)
        done = m.cli("status", "crash", "all")
        assert done.returncode == 0, done.stderr
        [row] = done.stdout.splitlines()[1:]
        return " BACKOFF " in row and row

    row = wait_until(backoff_row, dump=m.output)
    found = re.search(r"^crash\s+BACKOFF\s+-\s+-\s+[1-9]\d*\s+-\s+-\s+exit 3 after \d\.\d\d s, within start_seconds = 1: "
                      r"a failed start; restarting in (\d\.\d) s$", row)
    assert found and float(found[1]) <= 1.6, row


@pytest.mark.timeout(30)
def test_status_of_one_service_is_the_detailed_view(master):
    """`corral status NAME`, as systemctl status: the config, the command,
    the state since when, the reason in words, the transitions with their
    reasons and the last log lines, none of them blaming corral's own SIGKILL."""
    port = free_port()
    m = master(f"""
[services.db]
command = {json.dumps(["sh", "-c", "echo db up; exec sleep 1000"])}

[services.api]
command = {json.dumps(["sh", "-c", "echo starting api; exec sleep 1000"])}
after = ["db"]
ready = {{tcp = "127.0.0.1:{port}"}}
start_timeout = 0.5
backoff_initial = 30
""")
    m.wait_state("api", "BACKOFF")
    done = m.cli("status", "api")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0][0] in "\u25cf*"  # the dot, or * where stdout is not UTF-8
    assert lines[0][1:] == f" api - command: {shutil.which('sh')} -c 'echo starting api; exec sleep 1000'"
    facts = dict(line.strip().split(": ", 1) for line in lines[1:lines.index("")])
    assert facts["Config"] == m.config
    assert facts["State"].startswith("BACKOFF since ") and facts["State"].endswith(" ago)")
    refused = f"not ready within 0.5 s (start_timeout): waiting for tcp 127.0.0.1:{port}: connection refused"
    assert facts["Reason"].startswith(refused) and "restarting in" in facts["Reason"]
    assert "SIGKILL" not in done.stdout
    assert facts["After"] == "db" and facts["Restarts"].startswith("1  last exit: ")
    moves = lines[lines.index("Recent transitions:") + 1:lines.index("", lines.index("Recent transitions:"))]
    assert [re.search(r" api (\w+ -> \w+)", line)[1] for line in moves] == [
        "STOPPED -> WAITING", "WAITING -> STARTING", "STARTING -> BACKOFF"]
    assert "waiting for db" in moves[0] and refused in moves[2]
    log = lines[next(i for i, line in enumerate(lines) if line.startswith("Last ")) + 1:]
    assert any(line.endswith(" api starting api") for line in log), log
    assert not any(" db " in line for line in log)  # its own lines only

    done = m.cli("status", "db", "--json", "--detail")
    [item] = json.loads(done.stdout)
    assert item["command"] == [shutil.which("sh"), "-c", "echo db up; exec sleep 1000"]
    assert item["kind"] == "command"
    assert [t["to"] for t in item["transitions"]] == ["STARTING", "RUNNING"]
    assert item["transitions"][0]["reason"] == f"spawned, pid {item['pid']}"


# -- start, stop, restart ------------------------------------------------------------------


@pytest.mark.timeout(40)
def test_start_stop_restart(master):
    m = master(THREE)
    for name in ("db", "web:0", "web:1"):
        up(m, name)
    before = {name: row["pid"] for name, row in m.status().items()}

    done = m.cli("stop", "web:1")
    assert done.returncode == 0 and done.stdout.splitlines() == ["web:1: STOPPED: stopped (exit 0)"]
    assert not pid_alive(before["web:1"])
    assert m.status("web:1")["state"] == "STOPPED"

    done = m.cli("start", "web:1")
    assert done.returncode == 0 and done.stdout == "web:1: RUNNING\n"
    assert m.status("web:1")["state"] == "RUNNING"

    done = m.cli("stop", "web")
    assert done.returncode == 0
    assert [line.split(":")[:3] for line in done.stdout.splitlines()] == [
        ["web", "0", " STOPPED"], ["web", "1", " STOPPED"]]
    assert all(m.status(n)["pid"] is None for n in ("web:0", "web:1"))

    done = m.cli("start", "web:*", "--json")
    assert done.returncode == 0
    assert [(i["name"], i["state"], i["ok"]) for i in json.loads(done.stdout)] == [
        ("web:0", "RUNNING", True), ("web:1", "RUNNING", True)]

    # restart one service at 3 a.m.: new pid for it, nobody else touched.
    now = {name: row["pid"] for name, row in m.status().items()}
    done = m.cli("restart", "db")
    assert done.returncode == 0 and done.stdout == "db: RUNNING\n"
    after = {name: row["pid"] for name, row in m.status().items()}
    assert after["db"] != now["db"] and not pid_alive(now["db"]) and pid_alive(after["db"])
    assert after["web:0"] == now["web:0"] and after["web:1"] == now["web:1"]
    assert after["cron"] is None

    done = m.cli("restart", "all")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 4
    assert all(line.endswith(": RUNNING") for line in done.stdout.splitlines())
    again = {name: row["pid"] for name, row in m.status().items()}
    assert all(again[name] != after[name] and again[name] for name in again)

    done = m.cli("stop", "all")
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 4
    assert all(not pid_alive(pid) for pid in again.values())
    assert {row["state"] for row in m.status().values()} == {"STOPPED"}

    # The `after` dependency comes first.
    done = m.cli("start", "web:0")
    assert done.returncode == 0 and done.stdout == "web:0: RUNNING\n"
    assert m.status("db")["state"] == "RUNNING"
    assert m.status("web:1")["state"] == "STOPPED"

    for verb in ("start", "stop", "restart"):
        done = m.cli(verb, "nope")
        assert done.returncode == 1 and "nope" in one_error_line(done), verb
    assert m.status("web:1")["state"] == "STOPPED"


@pytest.mark.timeout(30)
def test_start_waits_for_running_or_says_it_failed(master):
    m = master(app_config(), suffix=".py")
    m.wait_state("web", "RUNNING")
    started = time.monotonic()
    done = m.cli("start", "slow")
    assert time.monotonic() - started >= 0.5  # startService takes 0.6 s
    assert done.returncode == 0 and done.stdout == "slow: RUNNING\n"
    assert m.status("slow")["state"] == "RUNNING"

    done = m.cli("start", "boom")
    assert done.returncode == 1
    assert re.fullmatch(r"boom: FATAL: .+\n", done.stdout), done.stdout
    assert "Traceback" not in done.stderr
    done = m.cli("start", "boom", "slow", "--json")
    assert done.returncode == 1
    assert [(i["name"], i["ok"]) for i in json.loads(done.stdout)] == [("boom", False), ("slow", True)]


@pytest.mark.timeout(30)
def test_start_waits_until_a_command_stayed_up_and_so_do_its_dependents(master):
    """A command without `ready` counts as started once it stayed up
    start_seconds (1 s by default, supervisord's startsecs): `start` waits
    for it, a command that died before is a failed start said in words, and
    a service `after` it is spawned only once it is RUNNING."""
    m = master(f"""
[services.dies]
command = {json.dumps(["sh", "-c", "echo dying; exit 3"])}
max_restarts = 0
autostart = false

[services.lives]
command = {worker()}
autostart = false

[services.next]
command = {worker()}
after = ["lives"]
start_seconds = 0.3
autostart = false
""")
    done = m.cli("start", "dies")
    assert done.returncode == 1
    assert re.fullmatch(r"dies: FATAL: .*\(exit 3 after 0\.\d\d s, within start_seconds = 1: "
                        r"a failed start\): giving up\n", done.stdout), done.stdout
    started = time.monotonic()
    done = m.cli("start", "next")  # lives first, as next runs after it
    assert time.monotonic() - started >= 1.2  # lives' 1 s, then next's 0.3 s
    assert done.returncode == 0 and done.stdout == "next: RUNNING\n"
    events = [(e["name"], e["to"], e["time"]) for e in m.events()]
    lives_spawned = next(t for n, to, t in events if (n, to) == ("lives", "STARTING"))
    lives_running = next(t for n, to, t in events if (n, to) == ("lives", "RUNNING"))
    next_spawned = next(t for n, to, t in events if (n, to) == ("next", "STARTING"))
    assert lives_running - lives_spawned >= 0.95 and next_spawned >= lives_running


# -- signal ------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_signal(master):
    m = master(THREE)
    up(m, "db")
    pid = m.status("db")["pid"]
    done = m.cli("signal", "USR1", "db")
    assert done.returncode == 0 and done.stdout == "db: RUNNING: sent SIGUSR1\n"
    m.wait_log(rf"db\[{pid}\] +db got SIGUSR1")
    assert m.cli("signal", "sighup", "db").returncode == 0
    m.wait_log(r"db got SIGHUP")
    assert m.cli("signal", f"-{int(signal.SIGUSR1)}", "db").returncode == 0
    m.wait_log(r"db got SIGUSR1", count=2)
    assert m.cli("signal", str(int(signal.SIGHUP)), "db").returncode == 0
    m.wait_log(r"db got SIGHUP", count=2)
    assert m.status("db")["pid"] == pid

    done = m.cli("signal", "BOGUS", "db")
    assert done.returncode == 1 and "BOGUS" in one_error_line(done)
    assert m.cli("signal", "USR1", "nope").returncode == 1
    done = m.cli("signal", "USR1", "cron")  # not running
    assert done.returncode == 1 and done.stdout.startswith("cron: STOPPED: not running")
    assert m.status("db")["pid"] == pid


FAMILY = """
import os, signal, sys, time
who = "main"
def said(sig, frame):  # one write each: the two processes share the pipe
    os.write(1, f"{who} got {signal.Signals(sig).name}\\n".encode())
signal.signal(signal.SIGUSR1, said)
if os.fork() == 0:
    who = "child"
if who == "child":
    os.write(1, b"child up\\n")
while True:
    time.sleep(1)
"""


@pytest.mark.timeout(30)
def test_signal_goes_to_the_main_process_and_group_reaches_the_rest(master):
    m = master(f"""
[services.app]
command = ["{PY}", "family.py"]
""", files={"family.py": FAMILY})
    m.wait_log(r"app\[\d+\] +child up")
    assert m.cli("signal", "USR1", "app").returncode == 0
    m.wait_log(r"\] +main got SIGUSR1")
    assert m.cli("signal", "--group", "USR1", "app").returncode == 0
    m.wait_log(r"\] +child got SIGUSR1")
    m.wait_log(r"\] +main got SIGUSR1", count=2)
    assert m.log_text().count("child got SIGUSR1") == 1  # the first went to main only


# -- logs, events ------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_logs_history_and_follow(master, follow):
    m = master(f"""
[services.a]
command = {worker("--lines", "4")}
start_seconds = 0

[services.b]
command = {worker()}
start_seconds = 0
""")
    up(m, "a")
    up(m, "b")
    pid = m.status("a")["pid"]
    done = m.cli("logs", "a", "-n", "2")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    # Piped: the date on every line; the name, then the text (no pid, no stream).
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} a %s"
    assert re.fullmatch(pattern % "a line 3", lines[0]), lines
    assert re.fullmatch(pattern % rf"a up {pid}", lines[1]), lines
    done = m.cli("logs", "-n", "100")  # the merged stream: every worker and the master
    names = {re.match(r"\S+ \S+ (\S+)", line)[1] for line in done.stdout.splitlines()}
    assert {"a", "b", "corral"} <= names
    done = m.cli("logs", "a", "--json")
    items = [json.loads(line) for line in done.stdout.splitlines()]
    assert [i["line"] for i in items if i["stream"] == "out"] == \
        [f"a line {k}" for k in range(4)] + [f"a up {pid}"]
    # The master's lines about a service are among its own.
    assert [(i["name"], i["service"], i["line"]) for i in items if i["stream"] == "log"] == [
        ("corral", "a", f"a: spawned, pid {pid}")]
    assert m.cli("logs", "a", "-n", "0").stdout == ""
    done = m.cli("logs", "nope")
    assert done.returncode == 1 and "nope" in one_error_line(done)
    assert m.cli("logs", "a*").returncode == 1

    f = follow(m, "logs", "a", "-n", "1", "-f")
    assert f.wait_line(rf" a a up {pid}$")
    # History comes once the follower is subscribed: seeing it means connected.
    everything = follow(m, "logs", "-f", "-n", "1", "--json")
    assert json.loads(everything.wait_line(r"^\{"))["name"]
    m.call("signal", names=["b"], signal="USR1")
    m.call("signal", names=["a"], signal="USR1")
    assert f.wait_line(r"a got SIGUSR1$")
    assert all("b got" not in line for line in f.lines)  # only a's lines
    item = json.loads(everything.wait_line(r'"b got SIGUSR1"'))
    assert item["name"] == "b" and item["stream"] == "out"
    everything.wait_line(r'"a got SIGUSR1"')
    assert f.proc.poll() is None
    assert f.stop() == 130  # Ctrl-C
    m.call("shutdown")
    assert everything.proc.wait(DEADLINE) == 0  # the master went away: the stream ends


@pytest.mark.timeout(30)
def test_events_and_events_follow(master, follow):
    m = master(THREE)
    m.wait_state("web:1", "RUNNING")
    up(m, "db")
    done = m.cli("events", "-n", "3")
    assert done.returncode == 0
    items = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(items) == 3
    for item in items:
        assert set(item) == {"time", "name", "service", "from", "to", "pid", "exit", "reason"}
    assert m.cli("events", "-n", "0").stdout == ""

    f = follow(m, "events", "-f", "-n", "1")
    assert json.loads(f.wait_line(r"^\{")) == items[-1]  # subscribed once history is out
    pid = m.status("db")["pid"]
    m.call("stop", names=["db"])
    stopping = json.loads(f.wait_line(r'"to": "STOPPING"'))
    stopped = json.loads(f.wait_line(r'"to": "STOPPED"'))
    assert (stopping["name"], stopping["service"], stopping["from"], stopping["pid"]) == (
        "db", "db", "RUNNING", pid)
    assert (stopped["from"], stopped["pid"], stopped["exit"]) == ("STOPPING", None, "exit 0")
    assert stopping["time"] <= stopped["time"] <= time.time()
    assert f.stop() == 130


# -- tree, reload, reopen, version, shutdown ----------------------------------------------------


@pytest.mark.timeout(30)
def test_tree_shows_python_children(master):
    m = master(app_config(), suffix=".py")
    pid = m.wait_state("web", "RUNNING")["pid"]
    done = m.cli("tree")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == "shop"
    text = "\n".join(lines)
    assert re.search(rf"web \[python corral\.service\.MultiService\]\s+RUNNING\s+pid {pid}", text), text
    assert re.search(r"\n\S+\s+\S+ http \(Leaf\)\n\S+\s+\S+ admin \(Leaf\)", text), text
    assert re.search(r"slow \[python Slow\]\s+STOPPED", text) and "boom [python Boom]" in text
    tree = json.loads(m.cli("tree", "--json").stdout)
    assert [c["name"] for c in tree["children"][0]["children"]] == ["http", "admin"]


@pytest.mark.timeout(30)
def test_reload_prints_the_difference_and_refuses_a_broken_config(master):
    m = master(f"[services.keep]\ncommand = {worker()}\n\n[services.old]\ncommand = {worker()}\n")
    m.wait_state("old", "RUNNING")
    keep = m.status("keep")["pid"]
    done = m.cli("reload")
    assert done.returncode == 0 and done.stdout == "no changes (2 unchanged)\n"
    with open(m.config, "w") as f:
        f.write(f"[services.keep]\ncommand = {worker()}\n\n[services.new]\ncommand = {worker()}\n")
    done = m.cli("reload")
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["added: new", "removed: old", "unchanged: 1"]
    assert list(m.status()) == ["keep", "new"] and m.status("keep")["pid"] == keep

    with open(m.config, "w") as f:
        f.write("[services.keep]\ncommand = 5\n")
    done = m.cli("reload")
    assert done.returncode == 1
    line = one_error_line(done)
    assert m.config in line and "'keep'" in line and "'command'" in line
    assert list(m.status()) == ["keep", "new"] and m.status("keep")["pid"] == keep


@pytest.mark.timeout(30)
def test_reopen_version_and_shutdown(master):
    m = master(THREE)
    for name in ("db", "web:0", "web:1"):
        up(m, name)
    workers = [row["pid"] for row in m.status().values() if row["pid"]]

    os.rename(m.logfile, m.logfile + ".1")
    done = m.cli("reopen")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    m.call("signal", names=["db"], signal="USR1")
    m.wait_log("db got SIGUSR1")  # in the new file

    done = m.cli("version")
    first, how = done.stdout.splitlines()
    assert done.returncode == 0 and first == f"corral {corral.__version__} (master pid {m.proc.pid})"
    assert how.startswith(("containment: cgroup v2, ", "containment: the environment marker"))
    assert json.loads(m.cli("version", "--json").stdout) == {
        "version": corral.__version__, "pid": m.proc.pid, "containment": how.split(": ", 1)[1]}

    done = m.cli("shutdown")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    # It answered once everything had stopped.
    assert all(not pid_alive(pid) for pid in workers)
    assert m.wait_exit() == 0
    assert not os.path.exists(m.socket)
    done = m.cli("status")
    assert done.returncode == 3 and m.socket in one_error_line(done)
    # version with no master: the client's own, a note, exit 0.
    done = m.cli("version")
    assert done.returncode == 0 and done.stdout == f"corral {corral.__version__}\n"
    assert "no master answering" in done.stderr and m.socket in done.stderr


# -- exit codes and finding the socket ----------------------------------------------------------


@pytest.mark.timeout(30)
def test_usage_errors_exit_2(tmp_path):
    sock = str(tmp_path / "none.sock")
    cases = [
        (),
        ("bogus",),
        ("status", "--bogus"),
        ("start",),
        ("signal", "HUP"),
        ("logs", "-n", "-1"),
        ("logs", "-n", "many"),
        ("logs", "a", "b"),
        ("-c", str(tmp_path / "missing.toml"), "status"),
        ("-c", str(tmp_path / "missing.py"), "status"),
    ]
    for args in cases:
        done = corral_cmd(*args, env={**os.environ, "CORRAL_SOCKET": ""})
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        assert re.search(r"^corral( \w+)?: error: ", done.stderr, re.MULTILINE), (args, done.stderr)
    done = corral_cmd("status", "--socket", sock)
    assert done.returncode == 3


@pytest.mark.timeout(30)
def test_no_master_exit_3_names_the_socket_and_where_it_came_from(master, tmp_path):
    env = {**os.environ, "CORRAL_SOCKET": ""}
    sock = os.path.join(str(tmp_path), "none.sock")
    done = corral_cmd("status", "--socket", sock, env=env)
    assert done.returncode == 3
    assert one_error_line(done) == (
        f"corral: error: no master answering on {sock}: no such socket (socket from --socket)")
    done = corral_cmd("stop", "all", env={**os.environ, "CORRAL_SOCKET": sock})
    assert done.returncode == 3 and one_error_line(done).endswith("(socket from $CORRAL_SOCKET)")
    config = tmp_path / "app.toml"
    config.write_text('[corral]\nsocket = "run/app.sock"\n\n[services.a]\ncommand = ["true"]\n')
    done = corral_cmd("-c", str(config), "status", env=env)
    assert done.returncode == 3
    assert one_error_line(done) == (
        f"corral: error: no master answering on {tmp_path}/run/app.sock: no such socket "
        f"(socket from config {config})")
    done = corral_cmd("status", env=env, cwd=str(tmp_path))
    assert done.returncode == 3 and f"{tmp_path}/corral.sock" in done.stderr

    # A socket file left by a master that was killed: connection refused.
    m = master(f"[services.a]\ncommand = {worker()}\n")
    m.signal(signal.SIGKILL)
    m.wait_exit()
    done = m.cli("status")
    assert done.returncode == 3
    assert one_error_line(done) == (
        f"corral: error: no master answering on {m.socket}: connection refused (socket from --socket)")


@pytest.mark.timeout(30)
def test_socket_from_the_config_file(master):
    m = master(f'[corral]\nsocket = "from-config.sock"\n\n[services.a]\ncommand = {worker()}\n',
               start=False)
    m.socket = os.path.join(m.dir, "from-config.sock")
    m.start()
    env = {**os.environ, "CORRAL_SOCKET": ""}
    done = corral_cmd("-c", m.config, "status", "--json", env=env, cwd="/")
    assert done.returncode == 0 and json.loads(done.stdout)[0]["name"] == "a"
    done = corral_cmd("status", "--json", env={**os.environ, "CORRAL_SOCKET": m.socket})
    assert done.returncode == 0


# -- speed ---------------------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_the_installed_cli_imports_nothing_heavy(master):
    m = master(f"[services.a]\ncommand = {worker()}\n")
    m.wait_state("a", "RUNNING")
    heavy = ("psutil", "multiprocess", "multiprocessing", "asyncio", "dill")
    # The console script of this interpreter's environment (PATH may hold a
    # shell shim, e.g. pyenv's, that Python cannot run).
    script = os.path.join(os.path.dirname(PY), "corral")
    runs = [[PY, "-X", "importtime", "-m", "corral"]]
    if os.path.exists(script):
        runs.append([PY, "-X", "importtime", script])
    for run in runs:
        for args in (["status"], ["status", "--json"], ["logs", "-n", "3"], ["version"], ["tree"]):
            done = subprocess.run(run + args + ["--socket", m.socket], capture_output=True,
                                  text=True, timeout=30)
            assert done.returncode == 0, done.stderr
            imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines()
                        if line.startswith("import time:")}
            assert "corral.cli.client" in imported
            bad = sorted(name for name in imported
                         if name.split(".")[0] in heavy
                         or name.startswith(("corral.supervisor", "corral.config", "corral.workers",
                                             "corral.services")))
            assert bad == [], (run, args, bad)
