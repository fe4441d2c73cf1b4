"""supervisord's sendProcessStdin with the real XML-RPC client: a
supervisord.conf [program:x] gets a stdin pipe the master holds (spawn.py),
a TOML command only with stdin = "pipe"; supervisord's faults for the rest;
a full pipe is refused without blocking the master, and no pipe end leaks
across restarts."""

import os
import xmlrpc.client

import pytest

from tests.helpers import wait_until
from tests.integration.harness import Master

supervisor_xmlrpc = pytest.importorskip("supervisor.xmlrpc")
psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.timeout(60)

CONF = """
[unix_http_server]
file = %(here)s/s.sock
[supervisord]
logfile = %(here)s/supervisord.log
childlogdir = %(here)s
[supervisorctl]
serverurl = unix://%(here)s/s.sock
[program:echo]
command = sh -c 'while read l; do echo "got $l"; done; echo "stdin closed"; sleep 1000'
startsecs = 0
[program:deaf]
command = sleep 1000
startsecs = 0
[program:closer]
command = sh -c 'exec 0<&-; exec sleep 1000'
startsecs = 0
[program:idle]
command = sleep 1000
autostart = false
"""

TOML = """
[corral]
xmlrpc = "unix://x.sock"
[services.plain]
command = ["sleep", "1000"]
[services.piped]
command = ["sh", "-c", "while read l; do echo \\"piped $l\\"; done"]
stdin = "pipe"
"""


def proxy(path):
    transport = supervisor_xmlrpc.SupervisorTransport(None, None, f"unix://{path}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def fault(call, *args):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        call(*args)
    return caught.value.faultCode, caught.value.faultString


@pytest.fixture(scope="module")
def conf_master():
    m = Master(CONF, suffix=".conf")
    try:
        m.start()
        for name in ("echo", "deaf", "closer"):
            m.wait_state(name, "RUNNING")
        m.rpc = proxy(os.path.join(m.dir, "s.sock")).supervisor
        yield m
    finally:
        m.close()


def test_a_program_reads_what_is_sent(conf_master):
    m = conf_master
    assert m.rpc.sendProcessStdin("echo", "hello\n") is True
    m.wait_log(r"echo\[\d+\] +got hello\n")
    assert m.rpc.sendProcessStdin("echo:echo", "wörld\n") is True  # UTF-8, by namespec
    m.wait_log(r"got wörld\n")
    # Bytes (XML-RPC base64) are written as they are.
    assert m.rpc.sendProcessStdin("echo", xmlrpc.client.Binary(b"raw\n")) is True
    m.wait_log(r"got raw\n")


def test_supervisords_faults(conf_master):
    rpc = conf_master.rpc
    assert fault(rpc.sendProcessStdin, "nope", "x\n") == (10, "BAD_NAME: nope")
    assert fault(rpc.sendProcessStdin, "idle", "x\n") == (70, "NOT_RUNNING: idle")
    assert fault(rpc.sendProcessStdin, "echo", 5)[0] == 3  # BAD_ARGUMENTS
    # Its process closed fd 0: EPIPE is NO_FILE, and the master (SIGPIPE
    # ignored) goes on; the pipe is closed, so the next call says so too.
    pid = rpc.getProcessInfo("closer")["pid"]
    wait_until(lambda: not os.path.lexists(f"/proc/{pid}/fd/0"), message="closer's fd 0 closed")
    assert fault(rpc.sendProcessStdin, "closer", "x\n") == (20, "NO_FILE: closer")
    assert fault(rpc.sendProcessStdin, "closer", "x\n") == (20, "NO_FILE: closer")
    assert conf_master.proc.poll() is None
    assert conf_master.status("closer")["state"] == "RUNNING"
    assert rpc.getState()["statename"] == "RUNNING"
    assert rpc.getProcessInfo("echo")["statename"] == "RUNNING"
    system = proxy(os.path.join(conf_master.dir, "s.sock")).system
    assert system.methodSignature("supervisor.sendProcessStdin") == ["boolean", "string", "string"]


def test_a_full_pipe_is_refused_without_blocking(conf_master):
    """deaf never reads: what fits in its pipe is written, the rest refused
    (FAILED), at once; the master serves on and buffers nothing."""
    rpc = conf_master.rpc
    code, text = fault(rpc.sendProcessStdin, "deaf", "x" * (1 << 20))
    assert code == 30 and "stdin pipe is full" in text and "of 1048576 bytes" in text, text
    code, text = fault(rpc.sendProcessStdin, "deaf", "y")
    assert code == 30 and "0 of 1 bytes written" in text, text
    assert rpc.getProcessInfo("deaf")["statename"] == "RUNNING"


def test_stopped_then_restarted_and_no_fd_leak(conf_master):
    """A stopped program is NOT_RUNNING; each new process gets a new pipe,
    and the master's fd count comes back to where it was."""
    m, rpc = conf_master, conf_master.rpc
    master = psutil.Process(m.proc.pid)
    assert rpc.sendProcessStdin("echo", "warm\n")
    m.wait_log(r"got warm\n")
    before = master.num_fds()
    for i in range(5):
        assert rpc.stopProcess("echo") is True
        assert fault(rpc.sendProcessStdin, "echo", "x\n") == (70, "NOT_RUNNING: echo")
        assert rpc.startProcess("echo") is True
        assert rpc.sendProcessStdin("echo", f"round {i}\n")
        m.wait_log(rf"got round {i}\n")
    # A crash (the pipe of the reaped one closed, the new one's made).
    pid = rpc.getProcessInfo("echo")["pid"]
    os.kill(pid, 9)
    wait_until(lambda: (p := rpc.getProcessInfo("echo"))["statename"] == "RUNNING"
               and p["pid"] != pid, message="echo restarted", dump=m.output)
    assert rpc.sendProcessStdin("echo", "after crash\n")
    m.wait_log(r"got after crash\n")
    # At most as many: one more per spawn is a leak, and a connection that
    # was open at the first count may have closed since.
    wait_until(lambda: master.num_fds() <= before,
               message=f"the master's fds back to {before} (now {master.num_fds()})",
               dump=m.output)


def test_toml_commands_get_dev_null_unless_they_ask(master):
    m = master(TOML)
    m.wait_state("plain", "RUNNING")
    m.wait_state("piped", "RUNNING")
    rpc = proxy(os.path.join(m.dir, "x.sock")).supervisor
    assert fault(rpc.sendProcessStdin, "plain", "x\n") == (20, "NO_FILE: plain")
    assert rpc.sendProcessStdin("piped", "hi\n") is True
    m.wait_log(r"piped\[\d+\] +piped hi\n")
