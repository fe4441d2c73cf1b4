"""`corral run -d`, --pidfile, --uid/--gid/--umask, --rundir: real daemons.

Each test works in its own folder under /tmp. A daemon is not our child, so
cleanup finds it twice over: by the pids its pidfiles named, and by every
process whose command line names the test's folder (only ours can).
"""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from corral.cli.client import Client
from tests.helpers import proc_status
from tests.integration.harness import pid_alive, wait_until

SLEEPER = """
[services.sleeper]
command = ["sh", "-c", "echo cwd=$(pwd); exec sleep 1000"]
"""
NOBODY = 65534


class Host:
    """A folder with a config, and the daemons started from it."""

    def __init__(self, config_text=SLEEPER):
        self.dir = tempfile.mkdtemp(prefix="corral-d-", dir="/tmp")
        self.config = self.path("c.toml")
        self.write("c.toml", config_text)
        self.socket = self.path("c.sock")
        self.pidfile = self.path("c.pid")
        self.logfile = self.path("corral.log")
        self.pids = set()

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)

    def run(self, *args, cwd=None, default_paths=True):
        """`corral run ARGS` (the launcher): (returncode, stdout, stderr, launcher pid)."""
        paths = ["--socket", self.socket, "--logfile", self.logfile, "--pidfile", self.pidfile]
        argv = [sys.executable, "-m", "corral", "run", *args, *(paths if default_paths else ())]
        proc = subprocess.Popen(argv, cwd=cwd or self.dir, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=40)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            self.note_pid(self.pidfile)
        return proc.returncode, out, err, proc.pid

    def daemon(self, *args, config=None, pidfile=None):
        """Start a daemon that must come up; return its pid."""
        code, out, err, _ = self.run(config or self.config, "-d", *args)
        assert (code, err) == (0, ""), f"exit {code}: {err}\n{self.log_text()}"
        return self.note_pid(pidfile or self.pidfile)

    def note_pid(self, pidfile):
        pid = read_pid(pidfile)
        if pid:
            self.pids.add(pid)
        return pid

    def call(self, cmd, socket=None, **args):
        with Client(socket or self.socket) as client:
            return client.call(cmd, **args)

    def cli(self, *args):
        return subprocess.run([sys.executable, "-m", "corral", *args, "--socket", self.socket],
                              capture_output=True, text=True, timeout=30)

    def log_text(self, path=None):
        try:
            with open(path or self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, text, path=None):
        return wait_until(lambda: text in self.log_text(path), message=repr(text),
                          dump=lambda: self.log_text(path))

    def ours(self, text=None):
        """Live processes whose command line names our folder (or text)."""
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if os.fsencode(text or self.dir) in cmdline and pid_alive(int(name)):
                found.append(int(name))
        return found

    def close(self):
        pids = self.pids | set(self.ours())
        for pid in pids:
            _kill(pid, signal.SIGTERM)
        end = time.monotonic() + 10
        while any(pid_alive(p) for p in pids) and time.monotonic() < end:
            time.sleep(0.02)
        for pid in pids | set(self.ours()):
            _kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def _kill(pid, sig):
    if pid_alive(pid):
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def read_pid(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def describe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode()
        status = proc_status(pid)
        return cmdline, status["State"], status["PPid"]
    except OSError as exc:
        return str(exc)


def open_files(pid):
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass  # closed meanwhile
    return found


@pytest.fixture
def host():
    hosts = []

    def make(config_text=SLEEPER):
        hosts.append(Host(config_text))
        return hosts[-1]

    yield make
    for h in hosts:
        h.close()


# -- detaching -----------------------------------------------------------------


@pytest.mark.timeout(60)
def test_daemon_returns_once_the_socket_answers(host):
    h = host()
    code, out, err, launcher = h.run(h.config, "-d")
    assert (code, out, err) == (0, "", ""), h.log_text()
    pid = h.note_pid(h.pidfile)
    # Up right away: no waiting after the launcher returned.
    assert h.call("version")["pid"] == pid
    status = h.cli("status")
    assert status.returncode == 0, status.stderr
    assert "sleeper" in status.stdout
    # Detached: not the launcher, not its child, its own session, no terminal.
    assert pid != launcher and pid_alive(pid)
    assert int(proc_status(pid)["PPid"][0]) != launcher
    assert os.getsid(pid) not in (os.getsid(0), pid)  # not a session leader either
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    wait_until(lambda: h.call("status")[0]["state"] == "RUNNING", dump=h.log_text)
    h.wait_log("cwd=/\n")


@pytest.mark.timeout(60)
def test_daemon_with_a_bad_config_fails_in_the_launcher(host):
    h = host('[corral]\nsokcet = "x.sock"\n[services.a]\ncommand = ["true"]\n')
    code, out, err, _ = h.run(h.config, "-d")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("corral: error: ")
    assert "sokcet" in err
    assert not os.path.exists(h.pidfile)
    assert not os.path.exists(h.socket)
    assert h.ours() == []


@pytest.mark.timeout(60)
def test_daemon_on_a_socket_in_use_fails_and_leaves_nothing(host):
    h = host()
    first = h.daemon()
    other_pidfile = h.path("other.pid")
    code, out, err, _ = h.run(h.config, "-d", "--socket", h.socket, "--pidfile", other_pidfile,
                              default_paths=False)
    assert code == 1
    assert err == f"corral: error: another corral master is already running on {h.socket}\n"
    assert not os.path.exists(other_pidfile)
    # The one that failed is gone, and so is its undertaker (reaper.py), which
    # follows it: both have its command line, unlike the first master's.
    wait_until(lambda: not h.ours(other_pidfile), message="the failed daemon's processes to go",
               dump=lambda: repr([(p, describe(p)) for p in h.ours(other_pidfile)]))
    assert h.call("version")["pid"] == first


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["-d", "-n"])
def test_second_master_on_the_same_pidfile_is_refused(host, mode):
    h = host()
    first = h.daemon()
    other_socket = h.path("other.sock")
    code, out, err, _ = h.run(h.config, mode, "--socket", other_socket, "--pidfile", h.pidfile,
                              "--logfile", h.path("other.log"), default_paths=False)
    assert code == 1
    assert err == f"corral: error: pidfile {h.pidfile} is locked by running master pid {first}\n"
    assert not os.path.exists(other_socket)
    assert read_pid(h.pidfile) == first
    assert h.call("version")["pid"] == first


@pytest.mark.timeout(60)
def test_stale_pidfile_is_taken_over_with_a_notice(host):
    h = host()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that surely does not run now (and nobody holds the lock)
    h.write("c.pid", f"{dead.pid}\n")
    pid = h.daemon()
    assert pid != dead.pid
    assert read_pid(h.pidfile) == pid
    h.wait_log(f"pidfile {h.pidfile}: stale pid {dead.pid} (no master held its lock): taken over")


@pytest.mark.timeout(60)
def test_shutdown_removes_pidfile_and_socket(host):
    h = host()
    pid = h.daemon()
    wait_until(lambda: h.call("status")[0]["state"] == "RUNNING", dump=h.log_text)
    worker = h.call("status")[0]["pid"]
    result = h.cli("shutdown")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: not pid_alive(pid), message="the daemon to exit", dump=h.log_text)
    assert not pid_alive(worker)
    assert not os.path.exists(h.pidfile)
    assert not os.path.exists(h.socket)
    assert "all services stopped" in h.log_text()


@pytest.mark.timeout(60)
def test_sigkilled_daemon_leaves_a_stale_pidfile_the_next_one_takes(host):
    h = host()
    first = h.daemon()
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: not pid_alive(first), message="the daemon to die")
    second = h.daemon()
    assert second != first
    h.wait_log(f"stale pid {first}")


PY_APP = """
import corral

class Idle(corral.Service):
    pass

application = corral.Application("demo")
Idle().supervise(restart="always").setServiceParent(application)
"""


@pytest.mark.timeout(60)
def test_the_master_holds_the_pidfile_lock_and_workers_do_not_inherit_it(host):
    h = host()
    h.write("app.py", PY_APP)
    pid = h.daemon(config=h.path("app.py"))
    row = wait_until(lambda: (r := h.call("status")[0])["state"] == "RUNNING" and r, dump=h.log_text)
    assert h.pidfile in open_files(pid)  # the master holds it, locked
    assert h.pidfile not in open_files(row["pid"])
    with open("/proc/locks") as f:  # "1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE 0 EOF"
        inode = str(os.stat(h.pidfile).st_ino)
        holders = [line.split()[4] for line in f if line.split()[5].endswith(":" + inode)]
    assert holders == [str(pid)]


# -- privileges, umask, rundir ------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change users")
def test_uid_nobody_master_still_answers_root(host):
    h = host()
    os.chown(h.dir, NOBODY, -1)  # the new owner writes its log and removes its files here
    pid = h.daemon("--uid", "nobody", "--umask", "027")
    assert proc_status(pid)["Uid"] == [str(NOBODY)] * 4
    gid = pwd.getpwnam("nobody").pw_gid
    assert proc_status(pid)["Gid"] == [str(gid)] * 4
    assert "0" not in proc_status(pid)["Groups"]  # root's groups are gone
    assert proc_status(pid)["Umask"] == ["0027"]
    status = h.cli("status")
    assert status.returncode == 0, status.stderr
    row = wait_until(lambda: (r := h.call("status")[0])["state"] == "RUNNING" and r, dump=h.log_text)
    assert proc_status(row["pid"])["Uid"][0] == str(NOBODY)
    assert os.stat(h.socket).st_uid == NOBODY
    assert os.stat(h.socket).st_mode & 0o777 == 0o600
    assert os.stat(h.logfile).st_uid == NOBODY
    assert os.stat(h.logfile).st_mode & 0o777 == 0o640  # 0644 under umask 027
    assert h.cli("shutdown").returncode == 0
    wait_until(lambda: not pid_alive(pid), message="the daemon to exit", dump=h.log_text)
    assert not os.path.exists(h.pidfile)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, message", [
    (("--uid", "no-such-user-corral"),
     "unknown user 'no-such-user-corral' (not in the passwd database)"),
    (("--gid", "no-such-group-corral"),
     "unknown group 'no-such-group-corral' (not in the group database)"),
])
def test_unknown_user_or_group_starts_nothing(host, args, message):
    h = host()
    code, out, err, _ = h.run(h.config, "-d", *args)
    assert code == 1
    assert err == f"corral: error: {message}\n"
    assert not os.path.exists(h.pidfile)
    assert not os.path.exists(h.socket)
    assert not os.path.exists(h.logfile)
    assert h.ours() == []


@pytest.mark.timeout(60)
def test_rundir_and_relative_paths_resolved_before_detaching(host):
    h = host()
    os.mkdir(h.path("run"))
    os.mkdir(h.path("etc"))
    h.write("etc/app.toml", '[corral]\npidfile = "app.pid"\n' + SLEEPER)
    code, out, err, _ = h.run("etc/app.toml", "-d", "--rundir", "run", "--socket", "s.sock",
                              "--logfile", "logs/corral.log", "--log-dir", "logs", "--umask", "0o007",
                              default_paths=False)
    pidfile = h.path("etc", "app.pid")  # [corral] pidfile: relative to the config's folder
    pid = h.note_pid(pidfile)
    assert (code, err) == (0, ""), h.log_text(h.path("logs", "corral.log"))
    assert pid and pid_alive(pid)
    assert os.readlink(f"/proc/{pid}/cwd") == h.path("run")
    assert proc_status(pid)["Umask"] == ["0007"]
    assert h.call("version", socket=h.path("s.sock"))["pid"] == pid
    h.wait_log(f"cwd={h.path('run')}\n", path=h.path("logs", "corral.log"))
    wait_until(lambda: os.path.exists(h.path("logs", "sleeper.log")), message="the service log")
    # The daemon reloads its config by its absolute path, whatever its cwd.
    with Client(h.path("s.sock")) as client:
        client.call("reload")


@pytest.mark.timeout(60)
def test_cli_pidfile_wins_over_the_config(host):
    h = host('[corral]\npidfile = "from-config.pid"\n' + SLEEPER)
    pid = h.daemon()
    assert read_pid(h.pidfile) == pid
    assert not os.path.exists(h.path("from-config.pid"))


@pytest.mark.timeout(60)
def test_nodaemon_is_accepted_and_stays_in_the_foreground(master):
    m = master(SLEEPER, args=["-n"])
    assert m.proc.poll() is None
    assert m.call("version")["pid"] == m.proc.pid


@pytest.mark.timeout(60)
def test_foreground_pidfile_is_written_and_removed(master):
    m = master(SLEEPER, start=False)
    pidfile = os.path.join(m.dir, "fg.pid")
    m.args = ["--pidfile", pidfile]
    m.start()
    assert read_pid(pidfile) == m.proc.pid
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    assert not os.path.exists(pidfile)


def test_daemon_and_nodaemon_together_are_a_usage_error():
    result = subprocess.run([sys.executable, "-m", "corral", "run", "x.toml", "-d", "-n"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "not allowed with" in result.stderr
