"""The real supervisorctl, and raw HTTP, against a corral master with [corral] xmlrpc.

supervisorctl comes from the `supervisor` package in the test extras; it
talks to the unix socket (and, with a password, a TCP port) exactly as it
talks to supervisord.
"""

import hashlib
import os
import socket
import subprocess
import sys
import xmlrpc.client

import pytest

from tests.helpers import free_port, wait_until
from tests.integration.harness import argv, write_script

supervisor_xmlrpc = pytest.importorskip("supervisor.xmlrpc")
SUPERVISORCTL = os.path.join(os.path.dirname(sys.executable), "supervisorctl")

CHATTY = """#!/bin/sh
trap 'echo got USR1' USR1
i=0
while true; do i=$((i+1)); echo "line $i"; echo "warn $i" >&2; sleep 0.1; done
"""


def config(folder, extra=""):
    script = write_script(folder, "chatty.sh", CHATTY)
    return f"""
[corral]
xmlrpc = "unix://x.sock"
{extra}
[services.web]
command = {argv(script)}
[services.work]
command = ["sleep", "1000"]
numprocs = 2
"""


@pytest.fixture
def ctl_master(master, tmp_path):
    m = master(config(str(tmp_path)))
    m.xsock = os.path.join(m.dir, "x.sock")
    for name in ("web", "work:0", "work:1"):
        m.wait_state(name, "RUNNING")
    return m


def ctl(m, *args, url=None, timeout=30):
    return subprocess.run([SUPERVISORCTL, "-s", url or f"unix://{m.xsock}", *args],
                          capture_output=True, text=True, timeout=timeout)


def proxy(m):
    transport = supervisor_xmlrpc.SupervisorTransport(None, None, f"unix://{m.xsock}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def raw(path, data, timeout=10):
    """Send data on the unix socket; return everything until the server closes."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(timeout)
        conn.connect(path)
        conn.sendall(data)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
        return reply


def post(body, length=None):
    return (b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length)) + body


def test_status_shape_and_exit_codes(ctl_master):
    m = ctl_master
    done = ctl(m, "status")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["web", "work:0", "work:1"]
    pid = m.status("web")["pid"]
    assert lines[0].split()[1:4] == ["RUNNING", "pid", f"{pid},"]
    assert lines[0].split()[4] == "uptime"
    assert ctl(m, "stop", "work:0").stdout.strip() == "work:0: stopped"
    done = ctl(m, "status")
    assert done.returncode == 3  # supervisorctl's "not running" exit status
    assert "work:0                           STOPPED" in done.stdout
    assert ctl(m, "status", "web").returncode == 0
    assert ctl(m, "status", "nosuch").returncode == 4


def test_start_stop_restart_by_name_group_and_all(ctl_master):
    m = ctl_master
    assert ctl(m, "stop", "work:*").stdout.splitlines() == ["work:0: stopped", "work:1: stopped"]
    assert m.status("work:1")["state"] == "STOPPED"
    assert ctl(m, "start", "work:*").stdout.splitlines() == ["work:0: started", "work:1: started"]
    assert m.status("work:1")["state"] == "RUNNING"
    before = m.status("web")["pid"]
    assert ctl(m, "restart", "web").stdout.splitlines() == ["web: stopped", "web: started"]
    assert m.status("web")["pid"] != before
    assert ctl(m, "start", "web").stdout.strip() == "web: ERROR (already started)"
    assert ctl(m, "stop", "all").returncode == 0
    assert {row["state"] for row in m.status().values()} == {"STOPPED"}
    done = ctl(m, "start", "all")
    assert sorted(done.stdout.splitlines()) == ["web: started", "work:0: started",
                                                "work:1: started"]
    assert ctl(m, "start", "nosuch").stdout.strip() == "nosuch: ERROR (no such process)"


def test_signal_pid_tail_and_maintail(ctl_master):
    m = ctl_master
    assert ctl(m, "pid").stdout.strip() == str(m.proc.pid)
    assert ctl(m, "pid", "web").stdout.strip() == str(m.status("web")["pid"])
    assert ctl(m, "signal", "USR1", "web").stdout.strip() == "web: signalled"
    wait_until(lambda: "got USR1" in ctl(m, "tail", "web").stdout, message="USR1 in the tail")
    out = ctl(m, "tail", "web").stdout
    assert "line " in out and "warn " not in out
    assert len(out.encode()) <= 1600
    err = ctl(m, "tail", "web", "stderr").stdout
    assert "warn " in err and "line " not in err
    assert "web: spawned" in ctl(m, "maintail", "-1000000").stdout
    assert 0 < len(ctl(m, "maintail").stdout.encode()) <= 1600 + 1  # print's newline
    assert ctl(m, "clear", "web").stdout.strip() == "web: cleared"
    assert "line 1\n" not in ctl(m, "tail", "web").stdout


def test_tail_f_streams_new_lines(ctl_master):
    m = ctl_master
    follower = subprocess.Popen([SUPERVISORCTL, "-s", f"unix://{m.xsock}", "tail", "-f", "web"],
                                stdout=subprocess.PIPE, text=True)
    try:
        seen = []
        wait_until(lambda: seen.append(follower.stdout.readline()) or len(seen) > 25,
                   message="25 lines of tail -f")
        numbers = [int(s.split()[1]) for s in seen if s.startswith("line ")]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # none lost
        assert not any(s.startswith("warn") for s in seen)
    finally:
        follower.kill()
        follower.wait()
    assert ctl(m, "status").returncode == 0  # the master serves on


def test_maintail_f_streams_the_masters_log_live(ctl_master):
    m = ctl_master
    follower = subprocess.Popen([SUPERVISORCTL, "-s", f"unix://{m.xsock}", "maintail", "-f"],
                                stdout=subprocess.PIPE, text=True)
    try:
        first = follower.stdout.readline()  # the history's tail: the stream is up
        assert first
        m.call("restart", names=["web"])
        pid = m.status("web")["pid"]
        seen = []
        wait_until(lambda: seen.append(follower.stdout.readline())
                   or any(f"spawned, pid {pid}" in line for line in seen),
                   message="the new spawn in maintail -f")
    finally:
        follower.kill()
        follower.wait()
    assert ctl(m, "status").returncode == 0


def test_avail_version_and_shutdown(ctl_master):
    m = ctl_master
    # sorted by process name alone, as supervisord's getAllConfigInfo is
    assert [line.split()[:2] for line in ctl(m, "avail").stdout.splitlines()] == [
        ["work:0", "in"], ["work:1", "in"], ["web", "in"]]
    from corral import __version__

    assert ctl(m, "version").stdout.strip() == __version__
    assert ctl(m, "shutdown").stdout.strip() == "Shut down"
    assert m.wait_exit() == 0


def test_the_json_socket_and_xmlrpc_agree(ctl_master):
    m = ctl_master
    infos = proxy(m).supervisor.getAllProcessInfo()
    rows = m.status()
    assert [(i["group"], i["name"]) for i in infos] == [("web", "web"), ("work", "0"), ("work", "1")]
    for info in infos:
        name = info["name"] if info["group"] == info["name"] else f"{info['group']}:{info['name']}"
        assert info["pid"] == rows[name]["pid"] and info["statename"] == "RUNNING"
        assert info["state"] == 20


def test_faults_and_bad_requests(ctl_master):
    m = ctl_master
    server = proxy(m)
    with pytest.raises(xmlrpc.client.Fault) as fault:
        server.supervisor.nosuch()
    assert (fault.value.faultCode, fault.value.faultString) == (1, "UNKNOWN_METHOD")
    with pytest.raises(xmlrpc.client.Fault) as fault:
        server.supervisor.getProcessInfo(42)
    assert fault.value.faultCode == 2  # INCORRECT_PARAMETERS
    with pytest.raises(xmlrpc.client.Fault) as fault:
        server.supervisor.getProcessInfo("web", "extra")
    assert fault.value.faultCode == 2
    with pytest.raises(xmlrpc.client.Fault) as fault:
        server.supervisor.getProcessInfo("nope")
    assert (fault.value.faultCode, fault.value.faultString) == (10, "BAD_NAME: nope")
    with pytest.raises(xmlrpc.client.Fault) as fault:
        server.supervisor.signalProcess("web", "NOTASIGNAL")
    assert fault.value.faultCode == 11  # BAD_SIGNAL
    calls = [{"methodName": "supervisor.getAPIVersion", "params": []},
             {"methodName": "supervisor.nosuch", "params": []}]
    assert server.system.multicall(calls) == [
        ["3.0"], {"faultCode": 1, "faultString": "UNKNOWN_METHOD"}]
    assert "supervisor.startProcess" in server.system.listMethods()
    assert server.system.methodSignature("supervisor.startProcess") == [
        "boolean", "string", "boolean"]

    assert raw(m.xsock, post(b"<methodCall><methodName>x")).startswith(b"HTTP/1.1 400")
    assert raw(m.xsock, post(b"", length=100 << 20)).startswith(b"HTTP/1.1 413")
    for request, status in ((b"GET /RPC2", b"405"), (b"GET /nothing", b"404"),
                            (b"GET /logtail/nosuch/stdout", b"404"),
                            (b"PUT /logtail/web/stdout", b"405"), (b"POST /logtail/web/stdout", b"405"),
                            (b"POST /RPC2", b"400")):  # no Content-Length: an empty body
        reply = raw(m.xsock, request + b" HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 " + status), (request, reply)
    assert raw(m.xsock, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(m.xsock, b"GET / HTTP/1.1\r\nX: " + b"a" * 70000).startswith(b"HTTP/1.1 431")
    assert os.stat(m.xsock).st_mode & 0o777 == 0o600
    assert ctl(m, "status").returncode == 0


def test_a_follower_that_never_reads_does_not_block_the_master(master, tmp_path):
    flood = 'yes "flood flood flood flood flood flood" | head -c 4000000; sleep 1000'
    m = master(config(str(tmp_path)) + f"[services.flood]\ncommand = {argv('sh', '-c', flood)}\n")
    m.xsock = os.path.join(m.dir, "x.sock")
    m.wait_state("web", "RUNNING")
    with socket.socket(socket.AF_UNIX) as stuck:
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(m.xsock)
        stuck.sendall(b"GET /logtail/flood/stdout HTTP/1.1\r\n\r\n")  # and never reads
        for _ in range(3):
            assert ctl(m, "restart", "work:*", timeout=10).returncode == 0
        assert ctl(m, "status", timeout=10).returncode in (0, 3)
        wait_until(lambda: os.path.getsize(m.logfile) > 6_000_000, 30,
                   message="the flood logged")


def test_tcp_with_basic_auth_and_sha_password(master, tmp_path):
    port = free_port()
    digest = hashlib.sha1(b"s3cret").hexdigest()
    m = master(config(str(tmp_path), f'xmlrpc = ["unix://x.sock", "127.0.0.1:{port}"]\n'
                      f'xmlrpc_username = "admin"\nxmlrpc_password = "{{SHA}}{digest}"\n')
               .replace('xmlrpc = "unix://x.sock"\n', "", 1))
    m.xsock = os.path.join(m.dir, "x.sock")
    m.wait_state("web", "RUNNING")
    url = f"http://127.0.0.1:{port}"
    done = ctl(m, "-u", "admin", "-p", "s3cret", "status", url=url)
    assert done.returncode == 0 and "web" in done.stdout
    refused = ctl(m, "-u", "admin", "-p", "wrong", "status", url=url)
    assert "Server requires authentication" in refused.stdout
    assert "Server requires authentication" in ctl(m, "status").stdout  # the unix socket too


def test_a_public_address_without_a_password_is_refused(master, tmp_path):
    text = config(str(tmp_path)).replace('"unix://x.sock"', f'"0.0.0.0:{free_port()}"')
    m = master(text, start=False)
    m.start(wait=False)
    assert m.wait_exit() != 0
    assert "is not a loopback address" in m.output()
    assert not os.path.exists(os.path.join(m.dir, "web.log"))


def test_reread_update_and_reload(master):
    m = master('[corral]\nxmlrpc = "unix://x.sock"\n'
               '[services.keep]\ncommand = ["sleep", "1000"]\n'
               '[services.change]\ncommand = ["sleep", "1000"]\n'
               '[services.gone]\ncommand = ["sleep", "1000"]\n')
    m.xsock = os.path.join(m.dir, "x.sock")
    for name in ("keep", "change", "gone"):
        m.wait_state(name, "RUNNING")
    assert ctl(m, "reread").stdout.strip() == "No config updates to processes"
    keep, change = m.status("keep")["pid"], m.status("change")["pid"]
    with open(m.config, "w") as f:
        f.write('[corral]\nxmlrpc = "unix://x.sock"\n'
                '[services.keep]\ncommand = ["sleep", "1000"]\n'
                '[services.change]\ncommand = ["sleep", "2000"]\n'
                '[services.new]\ncommand = ["sleep", "1000"]\n')
    assert sorted(ctl(m, "reread").stdout.splitlines()) == [
        "change: changed", "gone: disappeared", "new: available"]
    assert "gone" in m.status()  # reread applies nothing
    done = ctl(m, "update")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [
        "gone: stopped", "gone: removed process group", "change: stopped",
        "change: updated process group", "new: added process group"]
    m.wait_state("new", "RUNNING")
    m.wait_state("change", "RUNNING")
    rows = m.status()
    assert "gone" not in rows and rows["keep"]["pid"] == keep and rows["change"]["pid"] != change
    assert ctl(m, "reread").stdout.strip() == "No config updates to processes"
    assert ctl(m, "reload").stdout.strip() == "Restarted supervisord"
    wait_until(lambda: m.status()["keep"]["pid"] not in (None, keep)
               and m.status()["keep"]["state"] == "RUNNING", message="keep restarted")
    with open(m.config, "w") as f:
        f.write("[corral]\nbroken = \n")
    assert "ERROR" in ctl(m, "reread").stdout


SYSTEM_PYTHON = "/usr/bin/python3"  # one that another uid may run (the venv's may be closed)


@pytest.mark.skipif(os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
                    reason="a client of another uid needs root and a system python3")
def test_the_unix_socket_admits_only_the_masters_uid(ctl_master):
    import pwd

    m = ctl_master
    os.chmod(m.dir, 0o755)  # past the modes: the peer-uid check answers alone
    os.chmod(m.xsock, 0o666)
    # The refusal comes at once, before any request: the client only reads.
    ask = ("import socket, sys; s = socket.socket(socket.AF_UNIX); s.settimeout(20); "
           "s.connect(sys.argv[1]); print(s.recv(100).decode())")
    done = subprocess.run([SYSTEM_PYTHON, "-I", "-S", "-c", ask, m.xsock], capture_output=True,
                          text=True, timeout=30, user=pwd.getpwnam("nobody").pw_uid, cwd="/")
    assert done.stdout.startswith("HTTP/1.1 403"), done.stdout + done.stderr
    assert ctl(m, "status").returncode == 0
