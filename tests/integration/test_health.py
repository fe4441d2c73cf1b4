"""Health checks and max_memory with a real master and real services: an
unhealthy or too big service is restarted gracefully with a new pid and the
log says why; services without either are never probed."""

import os
import socket
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import free_port
from tests.integration.harness import argv, pid_alive, running_pid, wait_until

PY = sys.executable

# Answers GET with 200 until the file `marker` exists, then with 500. Plain
# sockets, so that it listens quickly even on a busy machine.
HTTP_SERVER = """
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
while True:
    conn = s.accept()[0]
    with conn:
        data = b""
        while b"\\r\\n\\r\\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        status = "500 Oops" if os.path.exists(sys.argv[2]) else "200 OK"
        conn.sendall(f"HTTP/1.1 {status}\\r\\nContent-Length: 0\\r\\n\\r\\n".encode())
"""

# Listens until the file `marker` exists, then closes its socket (and lives on).
TCP_SERVER = """
import os, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
s.setblocking(False)
while not os.path.exists(sys.argv[2]):
    try:
        s.accept()[0].close()
    except BlockingIOError:
        time.sleep(0.01)
s.close()
print("closed", flush=True)
time.sleep(1000)
"""

# Grows to 80 MB once the file `marker` exists.
HOG = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
hog = b"x" * (80 << 20)
print("big", flush=True)
time.sleep(1000)
"""


def master_children(m):
    pids = []
    for task in os.listdir(f"/proc/{m.proc.pid}/task"):
        with open(f"/proc/{m.proc.pid}/task/{task}/children") as f:
            pids.extend(int(p) for p in f.read().split())
    return pids


@pytest.mark.timeout(30)
def test_http_health_failures_restart_with_a_new_pid(master):
    port = free_port()
    m = master(f"""
[services.web]
command = {argv(PY, "server.py", str(port), "marker")}
health = {{http = "http://127.0.0.1:{port}/health", interval = 0.25, failures = 3}}
stop_timeout = 5
""", files={"server.py": HTTP_SERVER})
    old = running_pid(m, "web")

    def answers():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    wait_until(answers, message="the server to answer", dump=m.output)
    time.sleep(0.5)  # a few healthy probes: nothing happens
    assert m.status("web")["pid"] == old and "restarting" not in m.log_text()
    open(os.path.join(m.dir, "marker"), "w").close()
    m.wait_log(rf"web: health check failed 3 times in a row "
               rf"\(http http://127.0.0.1:{port}/health: 500\): stopping it as failed")
    os.unlink(os.path.join(m.dir, "marker"))
    new = running_pid(m, "web", other_than=old)
    wait_until(lambda: not pid_alive(old), message="the old server gone", dump=m.output)
    log = m.log_text()
    assert "web: health check failed (1/3): http" in log
    assert f"web: stopping pid {old} with SIGTERM" in log  # the normal, graceful stop
    row = m.status("web")
    assert row["restarts"] >= 1 and row["pid"] == new


@pytest.mark.timeout(30)
def test_tcp_health_restarts_a_service_that_stopped_listening(master):
    port = free_port()
    m = master(f"""
[services.db]
command = {argv(PY, "tcp.py", str(port), "marker")}
health = {{tcp = {port}, interval = 0.3, failures = 2}}
""", files={"tcp.py": TCP_SERVER})
    old = running_pid(m, "db")
    wait_until(lambda: _connects(port), message="db listening", dump=m.output)
    open(os.path.join(m.dir, "marker"), "w").close()
    m.wait_log(rf"db: health check failed 2 times in a row "
               rf"\(tcp 127.0.0.1:{port}: connection refused\): stopping it as failed")
    os.unlink(os.path.join(m.dir, "marker"))
    running_pid(m, "db", other_than=old)
    assert m.status("db")["restarts"] >= 1


def _connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.timeout(30)
def test_exec_health_shows_failures_then_restarts_and_reaps_its_probes(master):
    m = master(f"""
[services.app]
command = {argv("sleep", "1000")}
health = {{exec = "sh -c 'test ! -e marker'", interval = 0.15, failures = 4}}
""")
    old = running_pid(m, "app")
    time.sleep(0.4)
    assert "health" not in m.status("app")["description"]  # healthy: nothing shown
    open(os.path.join(m.dir, "marker"), "w").close()
    row = wait_until(lambda: "health: " in (r := m.status("app"))["description"] and r,
                     message="a health note on the status row", dump=m.output)
    assert row["description"].startswith("health: ")
    assert "(exit 1)" in row["description"]
    m.wait_log(r"app: health check failed 4 times in a row "
               r"\(exec sh -c 'test ! -e marker': exit 1\): stopping it as failed")
    os.unlink(os.path.join(m.dir, "marker"))
    running_pid(m, "app", other_than=old)
    # Every probe is reaped by the master (none is left a zombie).
    wait_until(lambda: all(pid_alive(p) for p in master_children(m)),
               message="no zombie children", dump=m.output)


@pytest.mark.timeout(30)
def test_exec_probe_that_hangs_is_killed_after_its_timeout(master):
    m = master(f"""
[services.app]
command = {argv("sleep", "1000")}
health = {{exec = ["sleep", "7.25"], interval = 0.3, timeout = 0.2, failures = 2}}
""")
    old = running_pid(m, "app")
    m.wait_log(r"app: health check failed 2 times in a row "
               r"\(exec sleep 7.25: timed out after 0.2 s\): stopping it as failed")
    running_pid(m, "app", other_than=old)
    m.call("stop", names=["app"])
    wait_until(lambda: not _live("sleep 7.25"), timeout=3,
               message="no probe left running", dump=m.output)


def _live(cmdline):
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read().replace(b"\0", b" ").strip() == cmdline.encode() \
                        and pid_alive(int(entry)):
                    return True
        except OSError:
            pass
    return False


@pytest.mark.timeout(30)
def test_max_memory_restarts_a_service_that_grows(master):
    m = master(f"""
[services.hog]
command = {argv(PY, "hog.py", "marker")}
max_memory = "50MB"
""", files={"hog.py": HOG})
    old = running_pid(m, "hog")
    time.sleep(1.2)  # at least one RSS pass: small enough
    assert m.status("hog")["restarts"] == 0
    open(os.path.join(m.dir, "marker"), "w").close()
    m.wait_log(r"hog\[\d+\] +big")
    m.wait_log(r"hog: rss (8\d|9\d)(\.\d)?M over max_memory 50M: stopping it as failed", timeout=5)
    os.unlink(os.path.join(m.dir, "marker"))
    running_pid(m, "hog", other_than=old)
    assert f"hog: stopping pid {old} with SIGTERM" in m.log_text()
    assert m.status("hog")["restarts"] >= 1


@pytest.mark.timeout(30)
def test_services_without_health_or_max_memory_are_not_probed(master):
    m = master(f"""
[services.plain]
command = {argv("sleep", "1000")}

[services.python]
command = {argv(PY, "-c", "import time; time.sleep(1000)")}
""")
    pids = {running_pid(m, "plain"), running_pid(m, "python")}
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # no probe process ever appears
        assert set(master_children(m)) <= pids
        time.sleep(0.02)
    log = m.log_text()
    assert "health" not in log and "max_memory" not in log
    for row in m.status().values():
        assert row["restarts"] == 0 and "health" not in row["description"]


