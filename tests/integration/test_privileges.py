"""Per-service user, group and umask with real processes (the tests run as root).

The credentials are read where the kernel keeps them, /proc/PID/status, not
from what the worker says about itself.
"""

import grp
import os
import pwd
import signal
import stat

import pytest

from tests.helpers import proc_status
from tests.integration.harness import argv, pid_alive, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrgid(NOBODY.pw_gid)


def proc_environ(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.partition(b"=") for item in f.read().split(b"\0") if item]
    return {k.decode(): v.decode() for k, _, v in pairs}


def assert_runs_as_nobody(pid, environ=True):
    status = proc_status(pid)
    assert status["Uid"] == [str(NOBODY.pw_uid)] * 4  # real, effective, saved, fs
    assert status["Gid"] == [str(NOBODY.pw_gid)] * 4
    # initgroups("nobody", nogroup): nobody's own groups, never root's 0.
    members = {str(g.gr_gid) for g in grp.getgrall() if "nobody" in g.gr_mem}
    assert set(status["Groups"]) == {str(NOBODY.pw_gid)} | members
    if not environ:  # a Python worker's: set after the fork, not in /proc
        return status
    env = proc_environ(pid)
    assert (env["HOME"], env["USER"], env["LOGNAME"]) == (NOBODY.pw_dir, "nobody", "nobody")
    return status


PY_WORKER = """
import os
import corral

class Whoami(corral.Service):
    def startService(self):
        super().startService()
        env = " ".join(os.environ[name] for name in ("HOME", "USER", "LOGNAME"))
        print(f"worker uid {os.getuid()} gid {os.getgid()} env {env}", flush=True)

application = corral.Application("demo")
Whoami().supervise(user="nobody", umask="027").setServiceParent(application)
"""


# -- commands ------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_command_runs_as_its_user_with_the_users_groups(master):
    m = master(f"""
[services.cmd]
command = {argv("/bin/sh", "-c", 'echo "cmd uid $(id -u) gid $(id -g)"; exec sleep 1000')}
user = "nobody"
""")
    pid = m.wait_state("cmd", "RUNNING")["pid"]
    m.wait_log(rf"cmd\[{pid}\] +cmd uid {NOBODY.pw_uid} gid {NOBODY.pw_gid}\n")
    status = assert_runs_as_nobody(pid)
    assert "0" not in status["Groups"]
    # The master kept its own ids.
    assert proc_status(m.proc.pid)["Uid"][0] == "0"


@pytest.mark.timeout(30)
def test_command_umask(master):
    m = master(f"""
[services.masked]
command = {argv("/bin/sh", "-c", "umask; exec sleep 1000")}
user = "nobody"
umask = "077"

[services.inherits]
command = {argv("/bin/sh", "-c", "exec sleep 1000")}
""")
    pid = m.wait_state("masked", "RUNNING")["pid"]
    m.wait_log(rf"masked\[{pid}\] +0?077\n")
    assert proc_status(pid)["Umask"] == ["0077"]
    other = m.wait_state("inherits", "RUNNING")["pid"]
    assert proc_status(other)["Umask"] == proc_status(m.proc.pid)["Umask"]


@pytest.mark.timeout(30)
def test_command_cwd_is_entered_as_the_user_and_a_failed_step_is_named(master):
    m = master(f"""
[services.private]
command = {argv("/bin/sh", "-c", "echo SHOULD-NOT-RUN")}
user = "nobody"
cwd = "private"
restart = "never"
""", start=False)
    os.mkdir(os.path.join(m.dir, "private"), 0o700)  # root's: nobody cannot enter
    m.start()
    m.wait_log(r"private: Unable to change directory to \S+/private: Permission denied")
    assert "SHOULD-NOT-RUN" not in m.log_text()


# -- Python workers ------------------------------------------------------------

@pytest.mark.timeout(30)
def test_python_worker_runs_as_its_user_and_its_output_reaches_the_log(master):
    m = master(PY_WORKER, suffix=".py")
    pid = m.wait_state("whoami", "RUNNING")["pid"]
    m.wait_log(rf"whoami\[{pid}\] +worker uid {NOBODY.pw_uid} gid {NOBODY.pw_gid} "
               rf"env {NOBODY.pw_dir} nobody nobody\n")
    status = assert_runs_as_nobody(pid, environ=False)
    assert "0" not in status["Groups"]
    assert status["Umask"] == ["0027"]
    # It stops cleanly on the master's signal, as any worker.
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


@pytest.mark.timeout(30)
def test_a_user_who_cannot_read_this_python_is_named_at_start(master):
    """A worker is a fork of the master: as its user it can import only what
    the master had imported when that user cannot read the interpreter's
    standard library (this project's CI runs a pyenv under /root, 0700).
    The master says so at start, for Python services only."""
    from corral import privileges

    stdlib = os.path.dirname(os.__file__)
    closed = privileges.unreadable_folder(
        stdlib, NOBODY.pw_uid, set(os.getgrouplist("nobody", NOBODY.pw_gid)))
    m = master(PY_WORKER + 'corral.Command(["sleep", "100"]).supervise(user="nobody")'
               '.setServiceParent(application)\n', suffix=".py")
    m.wait_state("whoami", "RUNNING")
    line = rf"whoami: runs as nobody, who cannot read this Python's standard library at {stdlib} "
    if closed is not None:
        m.wait_log(line.replace("(", r"\(").replace(")", r"\)") + rf"\({closed} is mode")
    else:
        assert "cannot read this Python" not in m.log_text()
    assert "sleep: runs as" not in m.log_text() and "command: runs as" not in m.log_text()


@pytest.mark.timeout(30)
def test_python_worker_umask_shows_in_the_files_it_creates(master):
    m = master("""
import os
import corral

class Maker(corral.Service):
    def startService(self):
        super().startService()
        with open("made-by-worker.txt", "w") as f:
            f.write("x")
        print("made", flush=True)

application = corral.Application("demo")
Maker().supervise(umask="077").setServiceParent(application)
""", suffix=".py")
    m.wait_state("maker", "RUNNING")
    m.wait_log(r"maker\[\d+\] +made\n")
    made = os.stat(os.path.join(m.dir, "made-by-worker.txt"))
    assert stat.S_IMODE(made.st_mode) == 0o600


@pytest.mark.timeout(30)
def test_python_worker_that_cannot_enter_its_cwd_as_its_user_goes_fatal(master):
    m = master("""
import corral

class Never(corral.Service):
    def startService(self):
        print("SHOULD-NOT-RUN", flush=True)

application = corral.Application("demo")
Never().supervise(user="nobody", cwd="private").setServiceParent(application)
""", suffix=".py", start=False)
    os.mkdir(os.path.join(m.dir, "private"), 0o700)
    m.start()
    m.wait_state("never", "FATAL")
    m.wait_log(r"never\[\d+\] +.*Unable to change directory to \S+/private: "
               r".*Permission denied")
    assert "SHOULD-NOT-RUN" not in m.log_text()


# -- the master's side ---------------------------------------------------------

@pytest.mark.timeout(30)
def test_unknown_user_is_a_config_error_and_nothing_starts(master):
    m = master(f"""
[services.ghost]
command = {argv("/bin/sh", "-c", "echo SHOULD-NOT-RUN")}
user = "no-such-user-here"
""", start=False)
    m.start(wait=False)
    assert m.wait_exit() == 1
    out = m.output()
    assert "service 'ghost': key 'user': unknown user 'no-such-user-here'" in out
    assert "SHOULD-NOT-RUN" not in out and "spawned" not in out
    assert not os.path.exists(m.socket)


@pytest.mark.timeout(30)
def test_log_files_stay_the_masters(master):
    m = master(f"""
[corral]
log_dir = "logs"

[services.cmd]
command = {argv("/bin/sh", "-c", "echo hello from nobody; exec sleep 1000")}
user = "nobody"
""")
    m.wait_state("cmd", "RUNNING")
    m.wait_log(r"cmd\[\d+\] +hello from nobody")
    path = os.path.join(m.dir, "logs", "cmd.log")
    wait_until(lambda: os.path.exists(path) and b"hello from nobody" in open(path, "rb").read(),
               message="the service's log file", dump=m.output)
    for name in (path, m.logfile):
        st = os.stat(name)
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
        assert stat.S_IMODE(st.st_mode) & 0o037 == 0  # no group write, nothing for others


@pytest.mark.timeout(30)
def test_workers_that_changed_user_still_die_with_a_killed_master(master):
    # Linux clears PR_SET_PDEATHSIG when a process changes its ids: the
    # child must arm it again after the switch.
    m = master(f"""
[services.cmd]
command = {argv("/bin/sh", "-c", "exec sleep 1000")}
user = "nobody"
""")
    cmd = m.wait_state("cmd", "RUNNING")["pid"]
    assert proc_status(cmd)["Uid"][0] == str(NOBODY.pw_uid)
    m.signal(signal.SIGKILL)
    m.wait_exit()
    wait_until(lambda: not pid_alive(cmd), timeout=3,
               message=f"worker {cmd} gone after the master died")


@pytest.mark.timeout(30)
def test_python_worker_that_changed_user_dies_with_a_killed_master(master):
    m = master(PY_WORKER, suffix=".py")
    pid = m.wait_state("whoami", "RUNNING")["pid"]
    assert proc_status(pid)["Uid"][0] == str(NOBODY.pw_uid)
    m.signal(signal.SIGKILL)
    m.wait_exit()
    wait_until(lambda: not pid_alive(pid), timeout=3,
               message=f"worker {pid} gone after the master died")
