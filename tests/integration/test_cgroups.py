"""Containment by cgroup v2 (supervisor/cgroups.py), where this machine lets
the master make cgroups below its own: a descendant that starts a new
session and clears its environment is still stopped with its instance, and
killed with a killed master (issue 17, item 5)."""

import os
import re
import secrets
import signal

import pytest

from corral.supervisor import cgroups
from tests.integration.harness import argv, pid_alive, wait_until


def _delegated():
    subtree, why = cgroups.detect(f"probe-{secrets.token_hex(4)}")
    if subtree is None:
        return why
    cgroups.remove_tree(subtree.root)
    return None


WHY_NOT = _delegated()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=f"no cgroup v2 to write here: {WHY_NOT}")

# A child in a new session with an empty environment: the marker cannot
# find it, its process group does not hold it; it says its pid and sleeps.
ESCAPE = "setsid env -i /bin/sh -c 'echo escaped $$; exec /bin/sleep 3601' & exec sleep 1000"

PY_SERVICE = '''
import subprocess
import corral


class Escaper(corral.Service):
    def startService(self):
        super().startService()
        subprocess.Popen(["setsid", "env", "-i", "/bin/sh", "-c", "echo escaped $$; exec sleep 3602"])


def make():
    return Escaper()
'''


def escaped_pids(m, name):
    return [int(pid) for pid in re.findall(rf"{name}\[\d+\] +escaped (\d+)", m.log_text())]


def escaped_pid(m, name):
    m.wait_log(rf"{name}\[\d+\] +escaped (\d+)")
    return escaped_pids(m, name)[-1]


def cgroup_of(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        return next(line[3:].strip() for line in f if line.startswith("0::"))


@pytest.mark.timeout(60)
def test_each_instance_has_a_cgroup_that_stop_and_a_killed_master_empty(master):
    m = master(f"""
[services.cmd]
command = {argv("/bin/sh", "-c", ESCAPE)}

[services.py]
service = "escaper:make"
""", files={"escaper.py": PY_SERVICE})
    m.wait_state("cmd", "RUNNING")
    m.wait_state("py", "RUNNING")
    how = m.call("version")["containment"]
    assert how.startswith("cgroup v2, "), how
    root = how.split(", ", 1)[1]
    cmd_escapee, py_escapee = escaped_pid(m, "cmd"), escaped_pid(m, "py")
    for name, pid in (("cmd", cmd_escapee), ("py", py_escapee)):
        assert cgroup_of(pid).endswith(f"/{os.path.basename(root)}/{name}")
        assert os.getpgid(pid) != m.status(name)["pid"]  # out of the worker's group
        with open(f"/proc/{pid}/environ", "rb") as f:
            assert b"CORRAL_MASTER" not in f.read()  # and the marker cannot find it

    m.call("stop", names=["cmd"])  # the stop reaches it through the cgroup
    wait_until(lambda: not pid_alive(cmd_escapee), timeout=5, message="cmd's escapee stopped")
    assert pid_alive(py_escapee)
    m.call("start", names=["cmd"])
    m.wait_log(r"cmd\[\d+\] +escaped (\d+)", count=2)
    again = escaped_pids(m, "cmd")[-1]

    m.signal(signal.SIGKILL)  # the undertaker empties and removes the whole subtree
    m.wait_exit()
    for pid in (again, py_escapee):
        wait_until(lambda: not pid_alive(pid), timeout=3, message=f"escapee {pid} gone with the master")
    wait_until(lambda: not os.path.exists(root), timeout=3, message="the master's cgroups removed")


@pytest.mark.timeout(30)
def test_a_clean_shutdown_removes_the_cgroups(master):
    m = master(f'[services.cmd]\ncommand = {argv("/bin/sh", "-c", ESCAPE)}\n')
    m.wait_state("cmd", "RUNNING")
    root = m.call("version")["containment"].split(", ", 1)[1]
    escapee = escaped_pid(m, "cmd")
    assert os.path.isdir(os.path.join(root, "cmd"))
    m.signal(signal.SIGTERM)
    m.wait_exit()
    assert not pid_alive(escapee) and not os.path.exists(root)


@pytest.mark.timeout(30)
def test_a_program_that_cannot_be_run_is_a_spawn_failure_in_words(master):
    """Behind the cgroup's /bin/sh shim, a program that lost its x bit is
    still refused by the spawn itself, named, and nothing leaks."""
    m = master(f"""
[services.tool]
command = {argv("./tool.sh")}
autostart = false
max_restarts = 0
""", files={"tool.sh": "#!/bin/sh\nexec sleep 1000\n"}, start=False)
    os.chmod(os.path.join(m.dir, "tool.sh"), 0o755)
    m.start()
    os.chmod(os.path.join(m.dir, "tool.sh"), 0o644)
    import psutil

    master_fds = psutil.Process(m.proc.pid).num_fds
    [done] = m.call("start", names=["tool"])  # (the first also makes what a start needs once)
    assert not done["ok"]
    row = m.status("tool")
    assert "cannot exec" in row["last_exit"] and "Permission denied" in row["last_exit"], row
    fds = master_fds()
    for _ in range(3):
        assert not m.call("start", names=["tool"])[0]["ok"]
    wait_until(lambda: master_fds() <= fds, timeout=3,
               message=f"the master back to {fds} fds (now {master_fds()})")
