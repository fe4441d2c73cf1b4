"""`corral upgrade` with real processes (supervisor/upgrade.py): the master
re-executes itself under a client loop and a command that writes a line a
millisecond; the workers, their sockets, their log lines and their counts
come through; a new image that cannot start leaves the old one supervising."""

import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.helpers import free_port
from tests.integration.harness import Master, ask, wait_until
from tests.integration.test_sdnotify import FakeSystemd
from tests.integration.test_sockets import Clients, pid_of_reply, tree_config

pytestmark = pytest.mark.timeout(90)

# A line a millisecond, numbered: a lost or repeated line shows as a gap or a repeat.
TICKER = ("import time\ni = 0\nwhile True:\n"
          "    i += 1\n    print(f'tick {i}', flush=True)\n    time.sleep(0.001)\n")


# A command on the master's NOTIFY_SOCKET with a watchdog: heard on after the exec, or killed.
BEATER = """import os, socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
i = 0
while True:
    i += 1
    s.sendto(f"WATCHDOG=1\\nSTATUS=beat {i}".encode(), os.environ["NOTIFY_SOCKET"])
    time.sleep(0.05)
"""


class Systemd(FakeSystemd):
    """FakeSystemd read all the time, as systemd is: a datagram queue holds
    only 10 messages, and flaky's moves send one each."""

    def __init__(self, address):
        super().__init__(address)
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while not self._stop.is_set():
            FakeSystemd.receive(self, 0.05)

    def receive(self, timeout):  # wait_for's: the reader thread receives
        time.sleep(min(timeout, 0.01))

    def close(self):
        self._stop.set()
        self._reader.join(5)
        super().close()


def config(port):
    return tree_config(port) + textwrap.dedent(f"""
        ticker = corral.Command({[sys.executable, "-u", "ticker.py"]!r})
        ticker.setName("ticker")
        ticker.setServiceParent(application)
        beater = corral.Command({[sys.executable, "beater.py"]!r})
        beater.setName("beater")
        beater.supervise(watchdog=0.5)
        beater.setServiceParent(application)
        flaky = corral.Command(["sh", "-c", "exit 1"])  # in BACKOFF, its retry a deadline
        flaky.setName("flaky")
        flaky.supervise(backoff_initial=0.7, backoff_max=0.7, backoff_jitter=0,
                        max_restarts=1000, restart_window=0.5)
        flaky.setServiceParent(application)
        """)


def beat(m):
    found = re.search(r"beat (\d+)", m.status("beater")["description"] or "")
    return int(found.group(1)) if found else 0


@pytest.fixture
def master():
    port = free_port()
    m = Master(config(port), suffix=".py", files={"ticker.py": TICKER, "beater.py": BEATER},
               args=["--log-dir", "logs"])
    m.port = port
    m.systemd = Systemd(os.path.join(m.dir, "notify.sock"))  # the master's own notify
    try:
        m.start(env={"NOTIFY_SOCKET": os.path.join(m.dir, "notify.sock")})
        m.wait_state("echo", "RUNNING")
        m.wait_state("ticker", "RUNNING")
        m.wait_state("beater", "RUNNING")
        yield m
    finally:
        m.close()
        m.systemd.close()


def ticks(m):
    with open(os.path.join(m.dir, "logs", "ticker.log"), "rb") as f:
        return [int(n) for n in re.findall(rb"ticker\[\d+\] +tick (\d+)\n", f.read())]


def worker_rows(m):
    """(pid, restarts) of the workers that run (flaky only backs off)."""
    return {name: (row["pid"], row["restarts"]) for name, row in m.status().items()
            if name != "flaky"}


def test_upgrade_keeps_every_worker_its_socket_its_lines_and_its_counts(master):
    m = master
    echo = m.status("echo")["pid"]
    os.kill(echo, 9)  # a restart to count
    wait_until(lambda: m.status("echo")["pid"] not in (None, echo) and
               m.status("echo")["state"] == "RUNNING", message="echo restarted", dump=m.output)
    before = worker_rows(m)
    assert before["echo"][1] == 1
    uptime, read_at = m.status("ticker")["uptime"], time.monotonic()
    flaky = wait_until(lambda: (n := m.status("flaky")["restarts"]) >= 2 and n,
                       message="flaky restarting", dump=m.output)
    version = m.call("version")
    with Clients(m.port) as clients:
        wait_until(lambda: len(clients.replies) > 20, message="clients served")
        done = m.cli("upgrade")
        assert done.returncode == 0, done.stdout + done.stderr + m.output()
        assert "upgraded: corral" in done.stdout
        served = len(clients.replies)
        wait_until(lambda: len(clients.replies) > served + 20, message="served after the upgrade")
    assert clients.refused == 0 and clients.errors == [], (clients.refused, clients.errors)
    # systemd (Type=notify-reload) is told as for a reload, by both images.
    reloading = m.systemd.wait_for("RELOADING=1", m, after=m.systemd.wait_for("READY=1", m) + 1)
    m.systemd.wait_for("READY=1", m, after=reloading + 1)
    after = m.call("version")
    assert after["pid"] == version["pid"] == m.proc.pid and after["image"] == 1
    assert "image" not in version  # none before the first
    assert worker_rows(m) == before  # the same pids, the same restart counts
    # Its restart count goes on, and its retry deadline still falls due.
    upgraded = m.status("flaky")["restarts"]
    assert upgraded >= flaky
    wait_until(lambda: m.status("flaky")["restarts"] >= upgraded + 2,
               message="flaky retried by the new image", dump=m.output)
    # Uptimes go on from the old image's start times, not from the exec.
    assert m.status("ticker")["uptime"] >= uptime + (time.monotonic() - read_at) - 0.5
    assert {pid_of_reply(r) for r in clients.replies} == {before["echo"][0]}
    m.wait_log(r"upgraded: corral \S+ -> \S+, pid \d+, [34] worker\(s\) kept")
    # The commands' NOTIFY_SOCKET came across: the beats go on, the watchdog is fed.
    beats = beat(m)
    wait_until(lambda: beat(m) > beats + 12, message="beats after the upgrade", dump=m.output)
    assert worker_rows(m)["beater"] == before["beater"]
    # Every line once, in order, across the exec (the ticker keeps writing).
    upgraded_at = len(ticks(m))
    seen = wait_until(lambda: len(t := ticks(m)) > upgraded_at + 200 and t,
                      message="ticks read by the new image", dump=m.output)
    assert seen == list(range(1, len(seen) + 1)), [
        (a, b) for a, b in zip(seen, seen[1:]) if b != a + 1][:5]
    # It still supervises: a crash after the upgrade is seen and restarted,
    # and the new worker serves on the socket the old image bound.
    os.kill(before["echo"][0], 9)
    wait_until(lambda: m.status("echo")["restarts"] == 2 and m.status("echo")["state"] == "RUNNING",
               message="restarted by the new image", dump=m.output)
    assert pid_of_reply(ask(m.port)) == m.status("echo")["pid"] != before["echo"][0]
    assert m.proc.poll() is None


def test_a_new_image_that_cannot_start_leaves_the_old_one_supervising(master, tmp_path):
    """A config that does not load, one that is not the running one, or an
    interpreter that is not there refuses the upgrade (also by SIGUSR2)
    and changes nothing. Then a new interpreter that passes the dry run but
    cannot import corral once exec'd: the old image is exec'd again with the
    snapshot, and supervises on; a worker that died meanwhile is restarted."""
    m = master
    before = worker_rows(m)
    with open(m.config) as f:
        good = f.read()
    with open(m.config, "a") as f:
        f.write("\nthis is not python\n")
    done = m.cli("upgrade")
    assert done.returncode != 0 and "upgrade refused: the config does not load" in done.stderr, \
        done.stdout + done.stderr
    m.signal(signal.SIGUSR2)
    m.wait_log(r"upgrade refused: the config does not load", count=2)
    with open(m.config, "w") as f:  # a changed service: the snapshot would not fit it
        f.write(good.replace('beater.supervise(watchdog=0.5)', 'beater.supervise(watchdog=0.7)'))
    done = m.cli("upgrade")
    assert "the config on disk is not the running one (changed: beater)" in done.stderr, \
        done.stderr
    with open(m.config, "w") as f:
        f.write(good)
    done = m.cli("upgrade", "--python", str(tmp_path / "nowhere"))
    assert done.returncode == 1 and "upgrade refused: cannot run" in done.stderr, done.stderr
    assert "image" not in m.call("version") and worker_rows(m) == before
    broken = tmp_path / "broken"
    (broken / "corral").mkdir(parents=True)
    (broken / "corral" / "__init__.py").write_text("raise ImportError('a broken install')\n")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\n[ "$CORRAL_UPGRADE_CHECK" = 1 ] || export PYTHONPATH={broken}\n'
                      f'exec {sys.executable} "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    with Clients(m.port) as clients:
        wait_until(lambda: len(clients.replies) > 20, message="clients served")
        cli = subprocess.Popen([sys.executable, "-m", "corral", "upgrade", "--python", str(python),
                                "--socket", m.socket], stdout=subprocess.PIPE, text=True)
        # A worker that dies while no image reads its pidfd (during the execs): its
        # zombie waits, SIGCHLD held, until an image takes its pidfd over and reaps it.
        m.wait_log(r"upgrade: re-executing")
        os.kill(before["ticker"][0], 9)
        out, _ = cli.communicate(timeout=60)
        served = len(clients.replies)
        wait_until(lambda: len(clients.replies) > served + 20, message="served after the fallback")
    assert cli.returncode == 1, out + m.output()
    assert "upgrade failed, the previous image took over again" in out
    assert "cannot import corral" in out
    assert clients.refused == 0 and clients.errors == []
    wait_until(lambda: (row := m.status("ticker"))["restarts"] == 1 and row["state"] == "RUNNING",
               message="the ticker restarted", dump=m.output)
    after = worker_rows(m)
    assert after["ticker"][0] != before["ticker"][0] and m.proc.poll() is None
    assert {k: v for k, v in after.items() if k != "ticker"} == {
        k: v for k, v in before.items() if k != "ticker"}
    reloading = m.systemd.wait_for("RELOADING=1", m, after=m.systemd.wait_for("READY=1", m) + 1)
    m.systemd.wait_for("READY=1", m, after=reloading + 1)  # the fallback image has systemd too
    m.wait_log(r"upgrade failed: the new image cannot import corral")
    os.kill(before["echo"][0], 9)
    wait_until(lambda: m.status("echo")["restarts"] == 1 and m.status("echo")["state"] == "RUNNING",
               message="restarted by the old image", dump=m.output)


def test_a_programs_stdin_pipe_comes_through_the_upgrade():
    """The master holds the write end of a [program:x]'s stdin: carried
    across the exec, the program gets no EOF and reads what the new image
    sends (supervisord's sendProcessStdin), with no fd left behind."""
    import psutil
    import xmlrpc.client

    from supervisor.xmlrpc import SupervisorTransport

    conf = ("[unix_http_server]\nfile = %(here)s/s.sock\n[supervisord]\n"
            "childlogdir = %(here)s\n[program:cat]\n"
            "command = sh -c 'while read l; do echo \"got $l\"; done; echo EOF'\n"
            "startsecs = 0\n")
    m = Master(conf, suffix=".conf")
    try:
        m.start()
        m.wait_state("cat", "RUNNING")
        def rpc():  # a new connection each time: the exec ends the old image's
            transport = SupervisorTransport(None, None, f"unix://{m.dir}/s.sock")
            return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

        assert rpc().sendProcessStdin("cat", "before\n") is True
        m.wait_log(r"got before\n")
        pid, fds = m.status("cat")["pid"], psutil.Process(m.proc.pid).num_fds()
        done = m.cli("upgrade")
        assert done.returncode == 0, done.stdout + done.stderr + m.output()
        m.wait_log(r"upgraded: corral \S+ -> \S+, pid \d+, 1 worker\(s\) kept")
        assert rpc().sendProcessStdin("cat", "after\n") is True
        m.wait_log(r"got after\n")
        assert "EOF" not in m.log_text() and m.status("cat")["pid"] == pid
        # At most as many: a carried fd left open would be one more, and a
        # connection open at the first count may have closed since.
        wait_until(lambda: psutil.Process(m.proc.pid).num_fds() <= fds,
                   message=f"the master's fds back to {fds}", dump=m.output)
    finally:
        m.close()
