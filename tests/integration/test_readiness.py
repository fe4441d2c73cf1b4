"""Readiness (`ready`: notify, tcp, http, seconds), start_timeout and the
watchdog, with real processes: a STARTING instance becomes RUNNING only once
ready, its dependents start only then, and what misses a deadline is killed
and handed to the restart policy, with the reason in the log."""

import os
import re
import signal
import stat
import sys
import time

import pytest

from tests.helpers import free_port
from tests.integration.harness import argv, wait_until

PY = sys.executable

FAST = """
backoff_initial = 0.05
backoff_max = 0.1
backoff_jitter = 0
"""

# sd_notify by hand: what any program does with $NOTIFY_SOCKET.
NOTIFY = r"""
import os, socket, sys, time

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

def say(text):
    sock.sendto(text.encode(), os.environ["NOTIFY_SOCKET"])

say("STATUS=warming up")
print("socket", os.environ["NOTIFY_SOCKET"], flush=True)
print("waiting for", sys.argv[1], flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
say("READY=1\nSTATUS=serving")
time.sleep(1000)
"""

LISTEN_LATE = r"""
import socket, sys, time

time.sleep(float(sys.argv[2]))
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    conn.close()
"""

# 503 until the file argv[2] exists, then 200.
HTTP = r"""
import http.server, os, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if os.path.exists(sys.argv[2]) and self.path == "/health" else 503
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass

print("serving", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

# WATCHDOG=1 every 0.1 s for argv[1] seconds, then silence.
BEATS = r"""
import os, socket, sys, time

print("WATCHDOG_USEC", os.environ.get("WATCHDOG_USEC"), flush=True)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    sock.sendto(b"WATCHDOG=1", os.environ["NOTIFY_SOCKET"])
    time.sleep(0.1)
print("silent now", flush=True)
time.sleep(1000)
"""


def first(events, name, to):
    for index, item in enumerate(events):
        if item["name"] == name and item["to"] == to:
            return index
    raise AssertionError(f"no event {name} -> {to} in {events}")


def took(events, name, start, end):
    """Seconds between the first move of name to `start` and the next to `end`."""
    begin = first(events, name, start)
    for item in events[begin:]:
        if item["name"] == name and item["to"] == end:
            return item["time"] - events[begin]["time"]
    raise AssertionError(f"no event {name} -> {end} after {start} in {events}")


@pytest.mark.timeout(30)
def test_notify_ready_status_and_dependents_wait(master):
    m = master(f"""
[services.app]
command = {argv(PY, "notify.py", "go")}
ready = "notify"

[services.grouped]
command = {argv("/bin/sh", "-c", f"{PY} notify.py go-grouped; exit 0")}
ready = "notify"

[services.web]
command = {argv("/bin/sh", "-c", "exec sleep 1000")}
after = ["app"]
""", files={"notify.py": NOTIFY})
    m.wait_log(r"app\[\d+\] +waiting for go")
    row = wait_until(lambda: (r := m.status("app"))["description"].endswith("warming up") and r,
                     dump=m.output, message="STATUS=warming up in the status")
    assert row["state"] == "STARTING"
    assert "waiting for READY=1" in row["description"]
    assert m.status("web")["state"] == "WAITING"  # waits for app's readiness
    assert "warming up" in m.cli("status", "app").stdout

    open(os.path.join(m.dir, "go"), "w").close()
    row = m.wait_state("app", "RUNNING")
    m.wait_state("web", "RUNNING")
    assert wait_until(lambda: m.status("app")["description"].endswith("serving"))
    events = m.events()
    assert first(events, "app", "RUNNING") < first(events, "web", "STARTING")
    m.wait_log(r"app: ready \(READY=1\)")

    # A message from another process of the command's group counts too.
    assert m.status("grouped")["state"] == "STARTING"
    open(os.path.join(m.dir, "go-grouped"), "w").close()
    m.wait_state("grouped", "RUNNING")

    # One socket per master, private, gone with the master.
    paths = set(re.findall(r"\] +socket (\S+)", m.log_text()))
    assert len(paths) == 1
    folder = os.path.dirname(paths.pop())
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    assert not os.path.exists(folder)


@pytest.mark.timeout(30)
def test_tcp_probe_waits_for_the_port_and_holds_dependents(master):
    port = free_port()
    m = master(f"""
[services.db]
command = {argv(PY, "listen.py", str(port), "0.5")}
ready = {{tcp = {port}}}

[services.web]
command = {argv("/bin/sh", "-c", "exec sleep 1000")}
after = ["db"]
""", files={"listen.py": LISTEN_LATE})
    m.wait_state("web", "RUNNING")
    events = m.events()
    assert took(events, "db", "STARTING", "RUNNING") >= 0.45
    assert first(events, "db", "RUNNING") < first(events, "web", "STARTING")
    text = m.log_text()
    assert text.index("db[") < text.index(f"db: ready (tcp 127.0.0.1:{port} answers)")


@pytest.mark.timeout(30)
def test_http_probe_wants_a_2xx_or_3xx(master):
    port = free_port()
    m = master(f"""
[services.api]
command = {argv(PY, "http_app.py", str(port), "healthy")}
ready = {{http = "http://127.0.0.1:{port}/health"}}
""", files={"http_app.py": HTTP})
    m.wait_log(r"api\[\d+\] +serving")
    # It answers 503: not ready, however often it is asked.
    time.sleep(0.3)
    row = m.status("api")
    assert row["state"] == "STARTING"
    assert row["description"].endswith(f"waiting for http://127.0.0.1:{port}/health")
    open(os.path.join(m.dir, "healthy"), "w").close()
    m.wait_state("api", "RUNNING")
    m.wait_log(rf"api: ready \(http://127.0.0.1:{port}/health answered 200\)")


@pytest.mark.timeout(30)
def test_seconds_running_after_n_seconds_and_early_exit_is_a_failed_start(master):
    m = master(f"""
[services.steady]
command = {argv("/bin/sh", "-c", "exec sleep 1000")}
start_seconds = 0.8

[services.flaky]
command = {argv("/bin/sh", "-c", "sleep 0.2; exit 0")}
start_seconds = 0.8
restart = "on-failure"
max_restarts = 1
{FAST}
""")
    assert m.status("steady")["state"] == "STARTING"
    m.wait_state("steady", "RUNNING")
    assert took(m.events(), "steady", "STARTING", "RUNNING") >= 0.75
    m.wait_log(r"steady: ready \(up 0.8 s\)")

    # Exit 0 before it was ready: a failure, so on-failure restarts it; then
    # max_restarts gives up. It was never RUNNING.
    row = m.wait_state("flaky", "FATAL")
    assert re.fullmatch(r"exit 0 after 0\.\d\d s, within start_seconds = 0\.8: a failed start",
                        row["last_exit"]) and row["restarts"] == 1
    m.wait_log(r"flaky: exit 0 after 0\.\d\d s, within start_seconds = 0\.8: a failed start",
               count=1)
    assert not any(e["name"] == "flaky" and e["to"] == "RUNNING" for e in m.events())
    assert first(m.events(), "flaky", "BACKOFF") > first(m.events(), "flaky", "STARTING")


@pytest.mark.timeout(30)
def test_start_timeout_kills_a_start_that_never_gets_ready(master):
    m = master(f"""
[services.mute]
command = {argv(PY, "notify.py", "never")}
ready = "notify"
start_timeout = 0.5
restart = "on-failure"
max_restarts = 1
{FAST}
""", files={"notify.py": NOTIFY})
    row = m.wait_state("mute", "FATAL")
    # corral's own SIGKILL is never the reason: what it killed for is
    assert row["last_exit"] == "not ready within 0.5 s (start_timeout): waiting for READY=1"
    assert row["restarts"] == 1
    m.wait_log(r"mute: not ready 0.5 s after its spawn \(start_timeout; waiting for "
               r"READY=1\): killing", count=2)
    m.wait_log(r"mute: not ready within 0.5 s \(start_timeout\): waiting for READY=1; "
               r"restarting in")
    assert took(m.events(), "mute", "STARTING", "BACKOFF") >= 0.45


PY_WATCHDOG = """
import asyncio, time
import corral

class Stuck(corral.Service):
    def startService(self):
        super().startService()
        print("stuck up", flush=True)
        asyncio.get_running_loop().call_later(0.5, time.sleep, 1000)

class Fine(corral.Service):
    def startService(self):
        super().startService()
        print("fine up", flush=True)

application = corral.Application("dogs")
Stuck().supervise(watchdog=0.6, backoff_initial=0.05, backoff_jitter=0,
                  max_restarts=100).setServiceParent(application)
Fine().supervise(watchdog=0.3).setServiceParent(application)
"""


@pytest.mark.timeout(30)
def test_watchdog_kills_a_python_worker_whose_loop_is_blocked(master):
    m = master(PY_WATCHDOG, suffix=".py")
    first_pid = m.wait_state("stuck", "RUNNING")["pid"]
    m.wait_log(r"stuck: no watchdog heartbeat for 0\.[67] s: killing \(watchdog = 0.6\)")
    # up ~1 s: restarted at once after a good run, backed off before one
    m.wait_log(r"stuck: killed by the watchdog: no heartbeat for 0\.[67] s"
               r"(?: after [\d.]+ s up)?; restarting (?:in|at once)")
    row = wait_until(lambda: (r := m.status("stuck"))["state"] == "RUNNING"
                     and r["pid"] != first_pid and r, dump=m.output,
                     message="stuck back with a new pid")
    assert row["restarts"] >= 1
    m.wait_log(r"stuck\[\d+\] +stuck up", count=2)
    # A loop that turns heartbeats by itself: never killed.
    fine = m.status("fine")
    assert fine["state"] == "RUNNING" and fine["restarts"] == 0
    assert "fine: no watchdog" not in m.log_text()


@pytest.mark.timeout(30)
def test_watchdog_kills_a_command_that_stops_sending_watchdog(master):
    m = master(f"""
[services.beat]
command = {argv(PY, "beats.py", "1.0")}
watchdog = 0.5
restart = "never"
start_seconds = 0
""", files={"beats.py": BEATS})
    m.wait_state("beat", "RUNNING")  # start_seconds = 0: RUNNING once spawned
    m.wait_log(r"beat\[\d+\] +WATCHDOG_USEC 500000")
    row = m.wait_state("beat", "EXITED")
    assert row["last_exit"].startswith("killed by the watchdog: no heartbeat for 0.")
    m.wait_log(r"beat: no watchdog heartbeat for 0\.[56] s: killing \(watchdog = 0.5\)")
    # The heartbeats kept it alive twice as long as the watchdog.
    assert took(m.events(), "beat", "RUNNING", "EXITED") >= 0.95
    text = m.log_text()
    assert text.index("silent now") < text.index("beat: no watchdog heartbeat")
