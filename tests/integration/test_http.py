"""The HTTP listener against a real master: auth, CSRF, bad requests,
/metrics through prometheus_client's parser, /livez and /readyz, the
event and log streams, and the unix socket's privacy."""

import json
import os
import socket
import stat
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from corral.frontends.httpwire import MAX_BODY, MAX_HEAD
from tests.integration.harness import running_pid, wait_until
from tests.integration.http_client import Events, HttpMaster, http_config

PY = sys.executable
TICKER = json.dumps([PY, "-u", "-c", "import time\nwhile True: print('tick', flush=True); time.sleep(0.2)"])
SERVICES = f"""
[services.db]
command = {TICKER}

[services.web]
command = ["sleep", "1000"]
after = ["db"]
numprocs = 2

[services.manual]
command = ["sleep", "1000"]
autostart = false
"""


@pytest.fixture
def master():
    m = HttpMaster(http_config(SERVICES))
    try:
        m.start()
        m.wait_state("web:1", "RUNNING")
        yield m
    finally:
        m.close()


def test_nothing_private_answers_without_the_token(master):
    for path in ("/", "/metrics", "/api/status", "/api/tree", "/api/events", "/readyz?verbose"):
        status, headers, _ = master.get(path, auth=False)
        assert status == 401, path
        assert "Basic" in headers["WWW-Authenticate"]
    status, _, _ = master.get("/metrics", headers={"Authorization": "Bearer wrong-token-xxxxxxxx"})
    assert status == 401
    status, _, _ = master.post("/api/stop", {"names": ["all"]}, auth=False)
    assert status == 401
    assert master.status("db")["state"] == "RUNNING"


def test_the_token_as_bearer_basic_or_cookie(master):
    import base64

    basic = base64.b64encode(f"anyone:{master.token}".encode()).decode()
    assert master.get("/api/status", headers={"Authorization": f"Basic {basic}"})[0] == 200
    status, headers, _ = master.get(f"/?token={master.token}", auth=False)
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    status, _, page = master.get("/", headers={"Cookie": cookie}, auth=False)
    assert status == 200 and b"dashboard.js" in page
    assert stat.S_IMODE(os.stat(master.socket + ".http").st_mode) == 0o600


def test_state_changes_need_post_and_the_csrf_token(master):
    import base64

    basic = {"Authorization": "Basic " + base64.b64encode(f"u:{master.token}".encode()).decode()}
    pid = master.status("db")["pid"]
    assert master.get("/api/restart", headers=basic)[0] == 405
    assert master.post("/api/restart", {"names": ["db"]}, headers=basic, auth=False)[0] == 403
    wrong = {**basic, "X-Corral-CSRF": "nope"}
    assert master.post("/api/restart", {"names": ["db"]}, headers=wrong, auth=False)[0] == 403
    assert master.status("db")["pid"] == pid  # nothing changed
    good = {**basic, "X-Corral-CSRF": master.csrf()}
    other = {**good, "Origin": "http://evil.example"}
    assert master.post("/api/restart", {"names": ["db"]}, headers=other, auth=False)[0] == 403
    status, _, body = master.post("/api/restart", {"names": ["db"]}, headers=good, auth=False)
    assert status == 200 and json.loads(body)[0]["ok"]
    assert running_pid(master, "db", other_than=pid) != pid


def test_bad_requests_get_4xx_and_change_nothing(master):
    def status_of(reply):
        return int(reply.split(b" ", 2)[1])

    assert status_of(master.raw(b"BREW / HTTP/1.1\r\n\r\n")) == 405
    assert status_of(master.raw(b"GET nowhere HTTP/1.1\r\n\r\n")) == 400
    assert status_of(master.raw(b"nonsense\r\n\r\n")) == 400
    huge = b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n"
    assert status_of(master.raw(huge)) == 431
    body = (f"POST /api/stop HTTP/1.1\r\nAuthorization: Bearer {master.token}\r\n"
            f"Content-Length: {MAX_BODY + 1}\r\n\r\n").encode()
    assert status_of(master.raw(body)) == 413
    chunked = (f"POST /api/stop HTTP/1.1\r\nAuthorization: Bearer {master.token}\r\n"
               "Transfer-Encoding: chunked\r\n\r\n").encode()
    assert status_of(master.raw(chunked)) == 411
    assert master.get("/nowhere")[0] == 404
    assert master.get("/static/../../etc/passwd")[0] in (400, 404)
    assert master.post("/api/stop", {"names": "db"})[0] == 400
    assert master.post("/api/stop", {"names": ["nosuch"]})[0] == 404
    status, _, _ = master.request("POST", "/api/stop", b"{not json",
                                  {"Content-Type": "application/json"})
    assert status == 400
    assert {row["state"] for row in master.status().values()} == {"RUNNING", "STOPPED"}
    assert master.get("/livez")[0] == 200


def test_metrics_parse_as_prometheus_does(master):
    master.post("/api/restart", {"names": ["web:0"]})
    wait_until(lambda: b"tick" in master.get("/api/logs?name=db")[2], message="db's lines")
    status, headers, body = master.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert {"corral_instance_state", "corral_instance_start_time_seconds",
            "corral_instance_restarts", "corral_instance_cpu_seconds",
            "corral_instance_memory_rss_bytes", "corral_service_log_lines",
            "corral_service_log_bytes", "corral_log_lines_dropped", "process_cpu_seconds",
            "process_resident_memory_bytes", "process_start_time_seconds", "process_open_fds",
            "corral_build_info"} <= set(families)
    for family in families.values():
        for sample in family.samples:
            assert "pid" not in sample.labels
    states = {}
    for s in families["corral_instance_state"].samples:
        states.setdefault(s.labels["instance"], []).append((s.labels["state"], s.value))
    assert set(states) == {"db", "web:0", "web:1", "manual"}
    for instance, values in states.items():
        assert sum(v for _, v in values) == 1, instance
    assert ("STOPPED", 1) in states["manual"] and ("RUNNING", 1) in states["db"]
    restarts = {(s.labels["instance"], s.labels["reason"]): s.value
                for s in families["corral_instance_restarts"].samples}
    assert restarts[("web:0", "operator")] == 1 and restarts[("web:1", "operator")] == 0
    assert {r for _, r in restarts} == {"crash", "health", "memory", "watchdog", "operator"}
    rss = {s.labels["instance"]: s.value for s in families["corral_instance_memory_rss_bytes"].samples}
    assert rss["db"] > 1 << 20 and "manual" not in rss
    lines = {s.labels["service"]: s.value for s in families["corral_service_log_lines"].samples}
    assert lines["db"] >= 1
    assert families["process_resident_memory_bytes"].samples[0].value > 1 << 20
    assert families["corral_build_info"].samples[0].labels["version"]
    # Start times are wall times of each spawn, as status' uptime tells them
    # (web:0's is its restart's); one that has no process has none.
    started = {s.labels["instance"]: s.value
               for s in families["corral_instance_start_time_seconds"].samples}
    uptimes = {name: row["uptime"] for name, row in master.status().items()}
    assert "manual" not in started
    for instance in ("db", "web:0", "web:1"):
        assert abs(started[instance] - (time.time() - uptimes[instance])) < 1.0, instance


def test_crashes_count_as_crash_restarts():
    crasher = json.dumps([PY, "-c", "import time; time.sleep(0.3); raise SystemExit(3)"])
    m = HttpMaster(http_config(f"[services.crash]\ncommand = {crasher}\nbackoff_reset = 0.1\n"))
    try:
        m.start()

        def crashes():
            text = m.get("/metrics")[2].decode()
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name == "corral_instance_restarts_total" and s.labels["reason"] == "crash":
                        return s.value >= 1 and text
            return False

        text = wait_until(crashes, message="a crash restart counted", dump=m.output)
        assert 'corral_instance_last_exit_code{instance="crash",service="crash"} 3' in text
    finally:
        m.close()


def test_livez_and_readyz(master):
    assert master.get("/livez", auth=False)[:1] == (200,)
    status, _, body = master.get("/readyz", auth=False)
    assert (status, body) == (200, b"ok\n")
    status, _, body = master.get("/readyz?verbose")
    assert status == 200 and b"[+]db ok" in body and b"manual" not in body
    assert master.get("/readyz?service=manual", auth=False)[0] == 503
    master.post("/api/stop", {"names": ["web:1"]})
    status, _, body = master.get("/readyz?verbose")
    assert status == 503 and b"[-]web:1 STOPPED" in body and b"readyz check failed" in body
    assert master.get("/readyz?service=db")[0] == 200


def test_the_event_stream_brings_the_new_pid(master):
    stream = Events(master.port, "/api/events", master.token)
    try:
        assert stream.status == 200
        hello = stream.wait(lambda name, data: name == "hello", "hello")
        old = {row["name"]: row["pid"] for row in hello["rows"]}["db"]
        master.post("/api/restart", {"names": ["db"]})
        moved = stream.wait(lambda name, data: name == "move" and data["event"]["name"] == "db"
                            and data["event"]["to"] == "RUNNING", "db RUNNING")
        assert moved["row"]["pid"] not in (None, old)
        usage = stream.wait(lambda name, data: name == "usage", "a usage tick")
        assert usage["db"][1] > 0  # rss
    finally:
        stream.close()


def test_the_log_stream_follows_and_a_reader_that_stops_is_bounded(master):
    stream = Events(master.port, "/api/logs/stream?name=db&lines=5", master.token)
    try:
        history = stream.wait(lambda name, data: name == "history", "history")
        assert 1 <= len(history) <= 5 and all(item["service"] == "db" for item in history)
        line = stream.wait(lambda name, data: name == "line", "a new line")
        assert line["line"] == "tick"
    finally:
        stream.close()
    # a follower that never reads: the master goes on answering
    idle = socket.create_connection(("127.0.0.1", master.port))
    idle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    idle.sendall(f"GET /api/logs/stream HTTP/1.1\r\nAuthorization: Bearer {master.token}\r\n\r\n"
                 .encode())
    try:
        for _ in range(20):
            assert master.get("/livez")[0] == 200
    finally:
        idle.close()
    assert master.get("/api/logs/stream?name=nosuch")[0] == 404


def test_a_unix_socket_is_private_and_needs_no_token():
    m = HttpMaster("")
    path = os.path.join(m.dir, "h.sock")
    with open(m.config, "w") as f:
        f.write(f'[corral]\nhttp = "unix://{path}"\n[services.a]\ncommand = ["sleep", "1000"]\n')
    try:
        m.start()
        assert m.token is None and m.url == f"unix://{path}"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(10)
            conn.connect(path)
            conn.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200") and b'"name": "a"' in data
        out = m.cli("dashboard")
        assert out.returncode == 0 and out.stdout.strip() == f"unix://{path}"
    finally:
        m.close()
    assert not os.path.exists(path)


def test_run_http_flag_and_dashboard_command():
    m = HttpMaster(f"[services.a]\ncommand = {TICKER}\n", args=["--http", "127.0.0.1:0"])
    try:
        m.start()
        out = m.cli("dashboard")
        assert out.returncode == 0 and out.stdout.strip() == f"{m.url}?token={m.token}"
        assert m.get("/api/status")[0] == 200
    finally:
        m.close()


def test_an_open_listener_on_the_network_is_refused():
    m = HttpMaster(f"[services.a]\ncommand = {TICKER}\n", args=["--http", "0.0.0.0:0"])
    with open(m.config, "w") as f:
        f.write('[corral]\nhttp_auth = "none"\n[services.a]\ncommand = ["sleep", "1"]\n')
    try:
        m.proc = None
        import subprocess

        out = subprocess.run([PY, "-m", "corral", "run", m.config, "--socket", m.socket,
                              "--http", "0.0.0.0:0"], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and "without auth" in out.stderr
        assert not os.path.exists(m.socket)
    finally:
        m.close()


def test_without_auth_only_addresses_may_be_the_host():
    m = HttpMaster(http_config(f"[services.a]\ncommand = {TICKER}\n", 'http_auth = "none"'))
    try:
        m.start()
        assert m.token is None
        assert m.get("/api/status", auth=False)[0] == 200  # Host: 127.0.0.1:PORT
        assert m.get("/api/status", headers={"Host": f"localhost:{m.port}"}, auth=False)[0] == 200
        status, _, body = m.get("/api/status", headers={"Host": "evil.example"}, auth=False)
        assert status == 403 and b"rebinding" in body
        assert m.request("HEAD", "/livez", auth=False)[:1] == (200,)
    finally:
        m.close()
