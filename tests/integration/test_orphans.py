"""No orphans, ever: a killed master leaves nothing alive, a stop reaches a
grandchild that daemonized itself, adopted orphans are reaped, and corral
works as PID 1 of a PID namespace (a container's entrypoint).

See corral/supervisor/reaper.py for the design: the marker in every
worker's environment, the undertaker, the master as subreaper.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import stat_of
from tests.integration.harness import Master, argv, pid_alive, wait_until

PY = sys.executable


@pytest.fixture(params=["auto", "off"], ids=["cgroups", "marker"])
def master(request, master):
    """Each test twice: with cgroups where this machine lets the master make
    them (supervisor/cgroups.py), and with the environment marker alone."""
    def make(config_text, *args, **kwargs):
        if request.param == "off":
            config_text = '[corral]\ncgroups = "off"\n' + config_text
        m = master(config_text, *args, **kwargs)
        if kwargs.get("start", True) and request.param == "off":
            version = m.call("version")["containment"]
            assert version.startswith("the environment marker (no cgroups: off"), version
        return m

    return make

# fork, setsid, fork: the grandchild leaves the worker's group and session,
# says its pid in a file (written from /, so the path is absolute) and sleeps.
DAEMONIZE = '''
import os, signal, sys, time

pidfile = os.path.abspath(sys.argv[1])
then = sys.argv[2]  # stay | exit (3) | return (0)
ignore_term = "ignore-term" in sys.argv[3:]
first = os.fork()
if first == 0:
    os.setsid()
    if os.fork() == 0:
        if ignore_term:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.chdir("/")
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        while True:
            time.sleep(1000)
    os._exit(0)
os.waitpid(first, 0)
print(f"daemonized by {os.getpid()}", flush=True)
if then == "exit":
    sys.exit(3)
if then == "return":
    sys.exit(0)
while True:
    time.sleep(1000)
'''

# A Python worker with a plain child (in its group) and a daemonized
# grandchild made by an exec'd helper.
SERVICES = '''
import os, subprocess, sys
import corral


class Family(corral.Service):
    def __init__(self, pidfile):
        super().__init__()
        self.pidfile = pidfile

    def startService(self):
        super().startService()
        subprocess.run([sys.executable, "daemonize.py", self.pidfile, "return"], check=True)
        self.child = subprocess.Popen(["sleep", "1000"])
        print(f"py child {self.child.pid}", flush=True)


def make_family(pidfile):
    return Family(pidfile)
'''

FILES = {"daemonize.py": DAEMONIZE, "corral_orphan_services.py": SERVICES}


# -- /proc, from the test's side --------------------------------------------------

def children_of(pid):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := stat_of(int(name))) is not None and stat[1] == pid:
            found.append(int(name))
    return found


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[:-1]
    except OSError:
        return []


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)


def marked(marker):
    """Live pids whose environment carries CORRAL_MASTER=marker."""
    needle = b"\0CORRAL_MASTER=" + marker + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or not pid_alive(int(name)):
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in b"\0" + f.read() + b"\0":
                    found.append(int(name))
        except OSError:
            pass
    return found


def read_pidfile(m, name):
    path = os.path.join(m.dir, name)
    wait_until(lambda: os.path.exists(path), message=f"{name} written", dump=m.output)
    with open(path) as f:
        return int(f.read())


def logged_pid(m, pattern):
    m.wait_log(pattern)
    return int(re.search(pattern, m.log_text())[1])


def assert_daemonized(pid, worker):
    """pid left the worker's session and group (the worker leads both)."""
    _, _, pgrp, session = stat_of(pid)
    assert session != worker and pgrp != worker, (pid, pgrp, session, worker)


# -- a master killed with SIGKILL --------------------------------------------------

@pytest.mark.timeout(60)
def test_killed_master_leaves_no_process_alive(master):
    m = master(f"""
[services.cmd]
command = {argv("/bin/sh", "-c", "sleep 1000 & echo child $!; wait")}

[services.daemon]
command = {argv(PY, "daemonize.py", "daemon-gc.pid", "stay")}

[services.py]
service = "corral_orphan_services:make_family"
args = {{ pidfile = "py-gc.pid" }}
""", files=FILES)
    cmd = m.wait_state("cmd", "RUNNING")["pid"]
    daemon = m.wait_state("daemon", "RUNNING")["pid"]
    py = m.wait_state("py", "RUNNING")["pid"]
    cmd_child = logged_pid(m, r"cmd\[\d+\] +child (\d+)")
    py_child = logged_pid(m, r"py\[\d+\] +py child (\d+)")
    daemon_gc = read_pidfile(m, "daemon-gc.pid")
    py_gc = read_pidfile(m, "py-gc.pid")
    undertaker = logged_pid(m, r"undertaker pid (\d+)")
    assert_daemonized(daemon_gc, daemon)
    assert_daemonized(py_gc, py)
    pids = [cmd, cmd_child, daemon, daemon_gc, py, py_child, py_gc]
    assert all(map(pid_alive, pids)), [(p, pid_alive(p)) for p in pids]
    marker = environ_of(cmd)[b"CORRAL_MASTER"]
    assert marker.startswith(b"%d." % m.proc.pid)
    assert pid_alive(undertaker) and undertaker not in children_of(m.proc.pid)

    m.signal(signal.SIGKILL)
    m.wait_exit()
    t0 = time.monotonic()
    for pid in pids:
        wait_until(lambda: not pid_alive(pid), timeout=2,
                   message=f"pid {pid} ({b' '.join(cmdline(pid))!r}) gone after the master died")
    wait_until(lambda: not marked(marker), timeout=2, message="no marked process left")
    wait_until(lambda: not pid_alive(undertaker), timeout=2, message="the undertaker gone")
    assert time.monotonic() - t0 < 2.5


# -- a stop reaches what left the group --------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("ignore_term", [False, True])
def test_stop_kills_a_grandchild_that_daemonized_itself(master, ignore_term):
    extra = ["ignore-term"] if ignore_term else []
    m = master(f"""
[services.daemon]
command = {argv(PY, "daemonize.py", "gc.pid", "stay", *extra)}
stop_timeout = {0.5 if ignore_term else 20}
""", files=FILES)
    worker = m.wait_state("daemon", "RUNNING")["pid"]
    m.wait_log(r"daemon\[\d+\] +daemonized by")
    gc = read_pidfile(m, "gc.pid")
    assert_daemonized(gc, worker)
    # Its parent exited: the master, a subreaper, adopted it.
    assert stat_of(gc)[1] == m.proc.pid

    t0 = time.monotonic()
    result = m.cli("stop", "daemon")
    elapsed = time.monotonic() - t0
    assert result.returncode == 0, result.stdout + result.stderr + m.output()
    assert m.status("daemon")["state"] == "STOPPED"
    # The stop ends only once the whole family is gone.
    assert not pid_alive(worker) and not pid_alive(gc)
    text = m.log_text()
    if ignore_term:
        assert 0.4 < elapsed < 10
        assert "daemon: still running 0.5 s after the stop signal" in text
    else:  # SIGTERM reached the grandchild: no waiting for the 20 s timeout
        assert elapsed < 10
        assert "still running" not in text
    # The killed grandchild was the master's (adopted) child: reaped, not a zombie.
    wait_until(lambda: stat_of(gc) is None, timeout=3, message="the grandchild reaped",
               dump=m.output)


@pytest.mark.timeout(60)
def test_stop_reaches_a_child_in_its_own_session_while_the_worker_runs(master):
    # The child is still the worker's (not yet the master's orphan): the stop
    # signal finds it in the worker's subtree (reaper.near) at once.
    m = master(f"""
[services.parent]
command = {argv("/bin/sh", "-c", "trap 'exit 0' TERM; setsid sleep 1000 & echo child $!; wait")}
stop_timeout = 20
""", files=FILES)
    worker = m.wait_state("parent", "RUNNING")["pid"]
    child = logged_pid(m, r"parent\[\d+\] +child (\d+)")
    wait_until(lambda: stat_of(child) is not None and stat_of(child)[3] == child,
               message="setsid ran", dump=m.output)
    assert stat_of(child)[1] == worker
    t0 = time.monotonic()
    result = m.cli("stop", "parent")
    assert result.returncode == 0, result.stdout + result.stderr + m.output()
    assert time.monotonic() - t0 < 10  # not the 20 s stop_timeout
    assert "still running" not in m.log_text()
    assert not pid_alive(worker) and not pid_alive(child)


@pytest.mark.timeout(60)
def test_a_worker_that_exits_takes_its_daemonized_grandchild_along(master):
    m = master(f"""
[services.daemon]
command = {argv(PY, "daemonize.py", "gc.pid", "exit")}
restart = "never"
start_seconds = 0
""", files=FILES)
    row = m.wait_state("daemon", "EXITED")
    assert row["last_exit"] == "exit 3"
    gc = read_pidfile(m, "gc.pid")
    wait_until(lambda: not pid_alive(gc), timeout=3, message="the grandchild gone",
               dump=m.output)


# -- the subreaper reaps what it adopts, and only that -------------------------------

@pytest.mark.timeout(60)
def test_adopted_orphans_are_reaped_and_worker_statuses_are_kept(master):
    m = master(f"""
[services.orphaner]
command = {argv("/bin/sh", "-c",
                "for i in 1 2 3 4 5; do (sleep 0.5 & echo orphan $!); done; sleep 1; exit 7")}
restart = "never"
""")
    m.wait_log(r"orphaner\[\d+\] +orphan \d+", count=5)
    orphans = [int(p) for p in re.findall(r"orphaner\[\d+\] +orphan (\d+)", m.log_text())]
    # Their subshells exited at once: the master adopted them.
    adopted = wait_until(lambda: [p for p in orphans if (s := stat_of(p)) and s[1] == m.proc.pid],
                         timeout=3, message="orphans adopted by the master", dump=m.output)
    assert adopted
    row = m.wait_state("orphaner", "EXITED")
    assert row["last_exit"] == "exit 7"  # its own status was not taken by the sweep
    for pid in orphans:  # gone entirely: reaped, not left as zombies
        wait_until(lambda: stat_of(pid) is None or stat_of(pid)[1] != m.proc.pid, timeout=3,
                   message=f"orphan {pid} reaped", dump=m.output)
    zombies = [p for p in children_of(m.proc.pid) if stat_of(p) and stat_of(p)[0] == "Z"]
    assert zombies == []


# -- PID 1 --------------------------------------------------------------------------

def _unshare_works():
    try:
        done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare not usable: {exc}"
    if done.returncode != 0:
        return f"unshare --pid --fork --mount-proc fails here: {done.stderr.decode().strip()}"
    return None


class Pid1Master(Master):
    """A master that is PID 1 of a new PID namespace; proc is the unshare process."""

    def start(self, wait=True):
        with open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount-proc",
                 PY, "-m", "corral", "run", self.config,
                 "--socket", self.socket, "--logfile", self.logfile],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.dir, start_new_session=True,
            )
        if wait:
            wait_until(self._answers, message="the master to answer", dump=self.output)
        return self


@pytest.fixture
def pid1_master():
    why = _unshare_works()
    if why:
        pytest.skip(why)
    started = []

    def make(config_text):
        m = Pid1Master(config_text)
        started.append(m)
        return m.start()

    yield make
    for m in started:
        m.close()


@pytest.mark.timeout(60)
def test_as_pid_1_orphans_are_reaped_and_sigterm_shuts_down_in_order(pid1_master):
    m = pid1_master(f"""
[services.orphans]
command = {argv("/bin/sh", "-c",
                "for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 0.4 &); done; echo made; exec sleep 1000")}
start_seconds = 0

[services.exits]
command = {argv("/bin/sh", "-c", "(sleep 0.2 &); sleep 0.6; exit 7")}
restart = "never"
start_seconds = 0
""")
    m.wait_log(r"starting 2 instance\(s\), pid 1\b")
    m.wait_log(r"running as PID 1: reaping every orphan")
    [inner] = wait_until(lambda: children_of(m.proc.pid), message="the master's outer pid")
    m.wait_log(r"orphans\[\d+\] +made")

    def adopted():  # the orphaned sleeps, reparented to PID 1 (outer pid `inner`)
        return [p for p in children_of(inner) if cmdline(p) == [b"sleep", b"0.4"]]

    wait_until(adopted, timeout=3, message="orphans adopted by PID 1", dump=m.output)
    wait_until(lambda: not adopted(), timeout=5, message="the orphans gone", dump=m.output)

    def zombies():
        return [p for p in children_of(inner) if stat_of(p) and stat_of(p)[0] == "Z"]

    wait_until(lambda: not zombies(), timeout=3, message="no zombie left", dump=m.output)
    row = m.wait_state("exits", "EXITED")
    assert row["last_exit"] == "exit 7"  # a worker's status is not reaped away
    assert m.wait_state("orphans", "RUNNING")

    os.kill(inner, signal.SIGTERM)  # PID 1 ignores what it has no handler for
    assert m.wait_exit() == 0
    text = m.log_text()
    assert "shutting down" in text and "all services stopped" in text
    assert "orphans: stopping pid" in text
