"""reaper.py with real processes: the family scan, bury, the sweep that reaps
only what the master does not own, the undertaker, and a Python worker's
watch on its master (runner.run_tree(master_pid=...))."""

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from corral.service import Service
from corral.supervisor import reaper
from corral.workers.runtimes.aio import run_tree
from tests.helpers import pid_alive, wait_until

DEADLINE = 5.0


@pytest.fixture
def procs():
    """procs(argv, **env) -> Popen with env added; all killed and reaped at the end."""
    started = []

    def start(argv, setsid=False, **env):
        p = subprocess.Popen(argv, env={**os.environ, **env}, start_new_session=setsid)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_family_is_the_marked_processes_of_an_instance(procs):
    mark = f"test.{os.getpid()}.{time.monotonic_ns()}"
    a = procs(["sleep", "100"], CORRAL_MASTER=mark, CORRAL_INSTANCE="web:0")
    a2 = procs(["sleep", "100"], setsid=True, CORRAL_MASTER=mark, CORRAL_INSTANCE="web:0")
    b = procs(["sleep", "100"], CORRAL_MASTER=mark, CORRAL_INSTANCE="web:1")
    other = procs(["sleep", "100"], CORRAL_MASTER=mark + "x", CORRAL_INSTANCE="web:0")
    dead = procs(["true"], CORRAL_MASTER=mark, CORRAL_INSTANCE="web:0")
    wait_until(lambda: not pid_alive(dead.pid), message="true exits (a zombie: never found)")

    def pids(instance=None, since=0):
        return sorted(pid for pid, _ in reaper.family(mark, instance, since))

    wait_until(lambda: len(pids()) == 3, message="the exec'd environments")
    assert pids("web:0") == sorted([a.pid, a2.pid])
    assert pids("web:1") == [b.pid]
    assert pids() == sorted([a.pid, a2.pid, b.pid])
    assert other.pid not in pids() and dead.pid not in pids()
    groups = dict(reaper.family(mark, "web:0"))
    assert groups[a2.pid] == a2.pid  # its own group: setsid
    assert pids("web:0", since=reaper.start_ticks(a.pid) + 10**9) == []


def test_bury_kills_every_marked_process_even_one_ignoring_term(procs):
    mark = f"test.{os.getpid()}.{time.monotonic_ns()}"
    stubborn = procs(["sh", "-c", "trap '' TERM; sleep 100 & wait"], setsid=True,
                     CORRAL_MASTER=mark)
    plain = procs(["sleep", "100"], CORRAL_MASTER=mark)
    bystander = procs(["sleep", "100"])
    wait_until(lambda: len(reaper.family(mark)) == 3, message="sh, its sleep and sleep")
    reaper.bury(mark)
    assert reaper.family(mark) == []
    for p in (stubborn, plain):
        assert p.wait(DEADLINE) == -signal.SIGKILL
    assert bystander.poll() is None


def test_sweep_reaps_only_children_it_does_not_own():
    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            os._exit(5)
        pids.append(pid)
    owned, *others = pids
    try:
        for pid in pids:
            wait_until(lambda: not pid_alive(pid), message=f"child {pid} exits")
        sweeper = reaper.Reaper(loop=None, owns=lambda pid: pid == owned)
        sweeper.sweep()
        assert sweeper.reaped >= 2
        for pid in others:
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        # Ours was left for its own watcher, exit status and all.
        assert os.waitstatus_to_exitcode(os.waitpid(owned, 0)[1]) == 5
    finally:
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


MASTER = """
import os, subprocess, sys
from corral.supervisor import reaper

mark = reaper.marker()
undertaker = reaper.start_undertaker(mark)
env = {**os.environ, "CORRAL_MASTER": mark, "CORRAL_INSTANCE": "x"}
# A worker whose own child daemonized: not in its group, not our child.
sh = subprocess.Popen(["sh", "-c", "setsid sleep 1000 & echo $!; exec sleep 1000"],
                      env=env, stdout=subprocess.PIPE, start_new_session=True)
print(undertaker, sh.pid, sh.stdout.readline().decode().strip(), flush=True)
sys.stdin.read()  # until the test kills us
"""


def test_undertaker_buries_the_marked_processes_of_a_killed_master():
    master = subprocess.Popen([sys.executable, "-c", MASTER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, start_new_session=True)
    try:
        undertaker, sh, grandchild = map(int, master.stdout.readline().split())
        assert all(map(pid_alive, (undertaker, sh, grandchild)))
        with open(f"/proc/{undertaker}/comm") as f:
            assert f.read().strip() == "corral-undertak"
        master.kill()
        master.wait()
        for pid in (sh, grandchild, undertaker):
            wait_until(lambda: not pid_alive(pid), timeout=2, message=f"pid {pid} gone")
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()


class Journal(Service):
    def __init__(self, journal):
        super().__init__()
        self.journal = journal

    def startService(self):
        super().startService()
        self.journal.append("start")

    def stopService(self):
        super().stopService()
        self.journal.append("stop")


@pytest.mark.timeout(30)
def test_run_tree_stops_when_the_watched_master_dies(caplog):
    fake_master = subprocess.Popen(["sleep", "100"])
    journal = []
    timer = threading.Timer(0.2, fake_master.kill)
    timer.start()
    try:
        with caplog.at_level(logging.WARNING):
            code = run_tree(Journal(journal), stop_signals=(), notify=journal.append,
                            master_pid=fake_master.pid)
    finally:
        timer.cancel()
        fake_master.kill()
        fake_master.wait()
    assert code == 0
    assert journal == ["start", "READY=1", "stop"]
    assert f"the master (pid {fake_master.pid}) is gone: stopping" in caplog.text


@pytest.mark.timeout(30)
def test_run_tree_with_a_master_already_gone_stops_at_once():
    gone = subprocess.Popen(["true"])
    gone.wait()
    journal = []
    code = run_tree(Journal(journal), stop_signals=(), master_pid=gone.pid)
    assert code == 0
    assert journal == ["start", "stop"]
