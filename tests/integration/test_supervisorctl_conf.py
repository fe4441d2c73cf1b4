"""supervisorctl against corral and against supervisord, on the same
supervisord.conf: numprocs programs and a [group:x], whose names are
supervisord's (`web:web_00`, `shop:db`), and the same commands give the same
output and exit codes under both (pids, uptimes and times made alike).
(test_xmlrpc.py covers the other commands, on a TOML config.)

supervisorctl's own Controller runs the commands (DRIVER), and supervisord
comes from the `supervisor` package in the test extras; the comparison is
skipped where supervisord is not installed.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import xmlrpc.client

import pytest

from tests.helpers import free_port, wait_until
from tests.integration.harness import Master

supervisor_xmlrpc = pytest.importorskip("supervisor.xmlrpc")
BIN = os.path.dirname(sys.executable)
SUPERVISORD = os.path.join(BIN, "supervisord")

CONF = """
[unix_http_server]
file = %(here)s/s.sock
[supervisord]
logfile = %(here)s/supervisord.log
pidfile = %(here)s/supervisord.pid
childlogdir = %(here)s
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl = unix://%(here)s/s.sock
[program:web]
command = sleep 1000
numprocs = 2
process_name = %(program_name)s_%(process_num)02d
startsecs = 0
[program:db]
command = sleep 1001
startsecs = 0
priority = 5
[program:cache]
command = sleep 1002
startsecs = 0
[program:idle]
command = sleep 1003
autostart = false
[group:shop]
programs = db,cache
priority = 10
"""
# reread and update: web grows a process, idle goes, extra comes.
UPDATED = CONF.replace("numprocs = 2", "numprocs = 3").replace(
    "[program:idle]\ncommand = sleep 1003\nautostart = false\n",
    "[program:extra]\ncommand = sleep 1004\nstartsecs = 0\n")
RUNNING = ("shop:db", "shop:cache", "web:web_00", "web:web_01")
RUNNING_UPDATED = ("extra:extra", "shop:db", "shop:cache", "web:web_00", "web:web_01", "web:web_02")
# Each in turn, against both; the state they leave is the next one's start.
COMMANDS = (
    ("status",), ("status", "web:*"), ("status", "shop:db", "web:web_01"),
    ("status", "nosuch", "web:nosuch", "web_00"), ("stop", "web:*"), ("status", "web:*"),
    ("start", "web:*"), ("signal", "CONT", "web:*"), ("pid", "web:web_01"),
    ("tail", "web:web_01"), ("tail", "shop:db", "stderr"), ("clear", "web:web_01"),
    ("start", "idle"), ("restart", "shop:db"), ("stop", "shop:*"),
    ("start", "shop:cache"), ("status", "shop:*"), ("start", "shop:db"),
    ("stop", "web:web_00"), ("status",), ("avail",),
)
# (`start shop:cache` while shop:db, a lower priority, is stopped starts
# shop:cache alone under both: priority orders a start, it pulls nothing in.)


# supervisorctl's own Controller, one command after another in one process
# (a process per command costs its Python start-up each time).
DRIVER = """
import io, json, sys
from supervisor.options import ClientOptions
from supervisor.supervisorctl import Controller
results = []
for command in json.loads(sys.argv[2]):
    options = ClientOptions()
    options.realize(["-s", sys.argv[1], *command])
    out = io.StringIO()
    controller = Controller(options, stdout=out)
    controller.onecmd(" ".join(options.args))
    results.append((controller.exitstatus, out.getvalue()))
print(json.dumps(results))
"""


def ctl_all(url, commands):
    """[(exit code, output)] of each command, as `supervisorctl -s url COMMAND` gives."""
    done = subprocess.run([sys.executable, "-c", DRIVER, url, json.dumps(commands)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def shape(text):
    """Output with the pids, uptimes and stop times made alike."""
    text = re.sub(r"pid \d+|^\d+$", "pid N", text, flags=re.M)
    text = re.sub(r"uptime \d+:\d\d:\d\d", "uptime T", text)
    return re.sub(r"[A-Z][a-z]{2} \d\d \d\d:\d\d [AP]M", "TIME", text)


def proxy(url):
    transport = supervisor_xmlrpc.SupervisorTransport(None, None, url)
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def running(url, names=RUNNING):
    try:
        infos = proxy(url).supervisor.getAllProcessInfo()
    except OSError:  # not listening yet
        return False
    up = {f"{i['group']}:{i['name']}" for i in infos if i["statename"] == "RUNNING"}
    return set(names) <= up


def session(url, conf):
    """[(command, exit code, output)] of COMMANDS, getAllProcessInfo's names,
    then reread and update to UPDATED, and the status once it settled."""
    wait_until(lambda: running(url), message=f"every autostarted program RUNNING at {url}")
    seen = [(command, code, shape(out))
            for command, (code, out) in zip(COMMANDS, ctl_all(url, COMMANDS))]
    infos = proxy(url).supervisor.getAllProcessInfo()
    seen.append(("getAllProcessInfo", [(i["group"], i["name"], i["statename"]) for i in infos]))
    with open(conf, "w") as f:
        f.write(UPDATED)
    seen.extend((command, code, out) for command, (code, out) in
                zip((("reread",), ("update",)), ctl_all(url, [["reread"], ["update"]])))
    wait_until(lambda: running(url, RUNNING_UPDATED), message=f"the update applied at {url}")
    seen.append(("after update", *ctl_all(url, [["status"]])[0]))
    return [(row[0], row[1], shape(row[2])) if len(row) == 3 else row for row in seen]


def folder_with_conf():
    folder = tempfile.mkdtemp(prefix="sdconf-", dir="/tmp")  # short socket paths
    with open(os.path.join(folder, "supervisord.conf"), "w") as f:
        f.write(CONF)
    return folder


@pytest.fixture(scope="module")
def under_corral():
    """COMMANDS against corral on CONF, once for the tests below."""
    m = Master(CONF, suffix=".conf")
    try:
        m.start()
        seen = session(f"unix://{m.dir}/s.sock", m.config)
        assert m.status("web_01")["state"] == "RUNNING"  # corral's own name, on its socket
    finally:
        m.close()
    return seen


def test_numprocs_and_group_names_are_supervisords(under_corral):
    seen = {row[0]: row[1:] for row in under_corral}
    code, out = seen[("status",)]
    assert code == 3 and [line.split()[:2] for line in out.splitlines()] == [
        ["idle", "RUNNING"], ["shop:cache", "RUNNING"], ["shop:db", "RUNNING"],
        ["web:web_00", "STOPPED"], ["web:web_01", "RUNNING"]]
    assert seen[("stop", "web:*")] == (0, "web:web_00: stopped\nweb:web_01: stopped\n")
    assert seen[("start", "web:*")] == (0, "web:web_00: started\nweb:web_01: started\n")
    assert seen[("status", "nosuch", "web:nosuch", "web_00")][1].splitlines()[:3] == [
        "nosuch: ERROR (no such process)", "web:nosuch: ERROR (no such process)",
        "web_00: ERROR (no such process)"]  # corral's own name is not supervisord's
    assert "shop:db                          in use    auto      10:5" in seen[("avail",)][1]
    assert seen[("signal", "CONT", "web:*")] == (
        0, "web:web_00: signalled\nweb:web_01: signalled\n")
    assert seen[("pid", "web:web_01")] == (0, "pid N\n")
    assert seen[("clear", "web:web_01")] == (0, "web:web_01: cleared\n")
    assert seen[("stop", "shop:*")] == (0, "shop:db: stopped\nshop:cache: stopped\n")
    assert seen[("reread",)] == (0, "extra: available\nidle: disappeared\nweb: changed\n")
    assert seen[("update",)] == (0, "idle: stopped\nidle: removed process group\nweb: stopped\n"
                                    "web: updated process group\nextra: added process group\n")
    assert [line.split()[:2] for line in seen["after update"][1].splitlines()] == [
        ["extra", "RUNNING"], ["shop:cache", "RUNNING"], ["shop:db", "RUNNING"],
        ["web:web_00", "RUNNING"], ["web:web_01", "RUNNING"], ["web:web_02", "RUNNING"]]
    assert seen["getAllProcessInfo"] == ([
        ("idle", "idle", "RUNNING"), ("shop", "cache", "RUNNING"), ("shop", "db", "RUNNING"),
        ("web", "web_00", "STOPPED"), ("web", "web_01", "RUNNING")],)


@pytest.mark.skipif(not os.path.exists(SUPERVISORD), reason="supervisord is not installed")
def test_the_same_conf_gives_the_same_supervisorctl_output_as_under_supervisord(under_corral):
    folder = folder_with_conf()
    real = subprocess.Popen([SUPERVISORD, "-n", "-c", os.path.join(folder, "supervisord.conf")],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        theirs = session(f"unix://{folder}/s.sock", os.path.join(folder, "supervisord.conf"))
    finally:
        os.killpg(real.pid, signal.SIGTERM)
        real.wait(20)
        shutil.rmtree(folder, ignore_errors=True)
    def alike(row):  # supervisord lists a group verb's results as each completes
        return (*row[:-1], sorted(row[-1].splitlines())) if isinstance(row[-1], str) else row

    for ours, their in zip(under_corral, theirs, strict=True):
        assert alike(ours) == alike(their)


def test_each_http_section_checks_its_own_username_and_password(master):
    port = free_port()
    digest = hashlib.sha1(b"tcp-pw").hexdigest()
    m = master("[unix_http_server]\nfile = %(here)s/s.sock\nusername = local\n"
               "password = unix-pw\n"
               f"[inet_http_server]\nport = 127.0.0.1:{port}\nusername = remote\n"
               f"password = {{SHA}}{digest}\n"
               "[program:web]\ncommand = sleep 1000\nstartsecs = 0\n", suffix=".conf")
    m.wait_state("web", "RUNNING")
    local, remote = ["-u", "local", "-p", "unix-pw"], ["-u", "remote", "-p", "tcp-pw"]
    for url, good, bad in ((f"unix://{m.dir}/s.sock", local, remote),
                           (f"http://127.0.0.1:{port}", remote, local)):
        (code, out), (_, refused), (_, anonymous) = ctl_all(
            url, [[*good, "status"], [*bad, "status"], ["status"]])
        assert (code, out.split()[:2]) == (0, ["web", "RUNNING"]), (url, out)
        assert "Server requires authentication" in refused, url
        assert "Server requires authentication" in anonymous, url
