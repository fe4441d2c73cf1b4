"""Supervision with real processes: restarts, policies, give-up, stop escalation,
numprocs, the second Ctrl-C, and no orphans when the master is killed."""

import os
import re
import signal
import sys
import time

import pytest

from corral.errors import EXIT_WORKER_BOOT
from tests.integration.harness import argv, pid_alive, wait_until

WORKERS = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "workers")
WORKERS = os.path.abspath(WORKERS)
PY = sys.executable


def services_module():
    with open(os.path.join(WORKERS, "corral_test_services.py")) as f:
        return {"corral_test_services.py": f.read()}


def pids_of(m, name):
    """The distinct pids `name` was spawned with, in order, from the events ring."""
    seen = []
    for item in m.events():
        if item["name"] == name and item["to"] == "STARTING" and item["pid"] not in seen:
            seen.append(item["pid"])
    return seen


FAST = """
backoff_initial = 0.05
backoff_max = 0.1
backoff_jitter = 0
"""


# -- 1. crash and restart ------------------------------------------------------

@pytest.mark.timeout(30)
def test_crashing_command_is_restarted_with_a_new_pid(master):
    m = master(f"""
[services.crasher]
command = {argv("/bin/sh", "-c", "echo crashing $$; sleep 0.1; exit 1")}
max_restarts = 100
start_seconds = 0
{FAST}
""")
    wait_until(lambda: m.status("crasher")["restarts"] >= 2, dump=m.output,
               message="two restarts")
    pids = pids_of(m, "crasher")
    assert len(pids) >= 2 and len(set(pids)) == len(pids)
    m.wait_log(r"crasher: exit 1; restarting in \d")
    m.wait_log(r"crasher\[\d+\] +crashing \d+", count=2)
    row = m.status("crasher")
    assert row["last_exit"] == "exit 1"


@pytest.mark.timeout(30)
def test_killed_python_worker_comes_back_quickly(master):
    m = master("""
import corral

class Hello(corral.Service):
    def startService(self):
        super().startService()
        print("hello up", flush=True)

application = corral.Application("demo")
Hello().supervise(restart="always", backoff_initial=0.05).setServiceParent(application)
""", suffix=".py")
    old = m.wait_state("hello", "RUNNING")["pid"]
    os.kill(old, signal.SIGKILL)
    t0 = time.monotonic()
    row = wait_until(lambda: (r := m.status("hello"))["state"] == "RUNNING"
                     and r["pid"] != old and r, timeout=5, dump=m.output,
                     message="hello back with a new pid")
    assert time.monotonic() - t0 < 3
    assert row["restarts"] == 1
    assert pid_alive(row["pid"]) and not pid_alive(old)
    m.wait_log(r"hello: SIGKILL; restarting in")
    m.wait_log(r"hello\[\d+\] +hello up", count=2)


# -- 2, 3. restart policies and giving up: tests/replay/test_lifecycle.py -------

# -- 3. giving up --------------------------------------------------------------

@pytest.mark.timeout(30)
def test_python_boot_failures_go_fatal_at_once(master):
    m = master("""
[services.boom]
service = "corral_test_services:make_bootfail"
backoff_initial = 0.01

[services.lazy]
service = "corral_test_services:make_lazy"
backoff_initial = 0.01

[services.fine]
service = "corral_test_services:make_chatty"
args = { word = "fine" }
""", files=services_module())
    for name in ("boom", "lazy"):
        row = m.wait_state(name, "FATAL")
        assert row["last_exit"] == f"exit {EXIT_WORKER_BOOT}"
        assert row["restarts"] == 0
        m.wait_log(rf"{name}: FATAL: could not load or start its service tree "
                   rf"\(exit {EXIT_WORKER_BOOT}\)")
        assert len(pids_of(m, name)) == 1
    m.wait_log(r"boom\[\d+\] +Traceback \(most recent call last\)")
    m.wait_log(r"boom\[\d+\] +RuntimeError: boot failure on purpose")
    m.wait_log(r"lazy\[\d+\] +ModuleNotFoundError: No module named "
               r"'corral_no_such_module_here'")
    # The others are not disturbed.
    m.wait_state("fine", "RUNNING")


BROKEN_MODULE = {"corral_broken_factory.py": "import corral_missing_dependency\n"
                                             "def make(): pass\n"}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("suffix, config", [
    (".toml", """
[services.ok]
command = ["/bin/sh", "-c", "echo SHOULD-NOT-RUN; exec sleep 100"]

[services.broken]
service = "corral_broken_factory:make"
"""),
    (".py", """
import corral
import corral_broken_factory

application = corral.Application("broken")
"""),
])
def test_config_whose_factory_module_cannot_import_starts_nothing(master, suffix, config):
    # The tree is built in the master when the config loads (workers are forks
    # of it), so a module that cannot be imported stops everything up front.
    m = master(config, suffix=suffix, files=BROKEN_MODULE, start=False)
    m.start(wait=False)
    assert m.wait_exit() == 1
    out = m.output()
    assert "corral_missing_dependency" in out
    assert ("service 'broken'" in out) == (suffix == ".toml")
    assert "SHOULD-NOT-RUN" not in out and "spawned" not in out
    assert not os.path.exists(m.socket)


# -- 5. stop escalation --------------------------------------------------------

STUBBORN_RE = r"stubborn parent (\d+) child (\d+)"


@pytest.mark.timeout(30)
def test_stop_kills_a_worker_and_its_child_that_ignore_sigterm(master):
    m = master(f"""
[services.shell]
command = {argv("/bin/sh", "-c", 'trap "" TERM; sleep 1000 & echo child $!; wait')}
stop_timeout = 0.5

[services.stubborn]
command = {argv(PY, os.path.join(WORKERS, "stubborn.py"))}
stop_timeout = 0.5
""")
    shell = m.wait_state("shell", "RUNNING")["pid"]
    stubborn = m.wait_state("stubborn", "RUNNING")["pid"]
    m.wait_log(r"shell\[\d+\] +child \d+")
    m.wait_log(STUBBORN_RE)
    shell_child = int(re.search(r"shell\[\d+\] +child (\d+)", m.log_text())[1])
    parent, child = map(int, re.search(STUBBORN_RE, m.log_text()).groups())
    assert parent == stubborn
    pids = [shell, shell_child, stubborn, child]
    assert all(map(pid_alive, pids))

    t0 = time.monotonic()
    result = m.call("stop", names=["shell", "stubborn"])
    elapsed = time.monotonic() - t0
    assert [r["state"] for r in result] == ["STOPPED", "STOPPED"]
    assert 0.4 < elapsed < 5
    for pid in pids:
        wait_until(lambda: not pid_alive(pid), timeout=3, dump=m.output,
                   message=f"pid {pid} gone")
    for name in ("shell", "stubborn"):
        m.wait_log(rf"{name}: still running 0.5 s after the stop signal: "
                   r"killing its process group")
        assert m.status(name)["state"] == "STOPPED"
        assert m.status(name)["restarts"] == 0


INNER = """/bin/sh -c 'trap "" TERM; echo child $$; exec sleep 1000'"""


@pytest.mark.timeout(30)
def test_stop_waits_for_a_leftover_child_then_kills_it(master):
    # The leader obeys SIGTERM; the child it leaves behind ignores it (and
    # says so only once it does).
    m = master(f"""
[services.leaves]
command = {argv("/bin/sh", "-c", INNER + " & exec sleep 1000")}
stop_timeout = 0.5
""")
    leader = m.wait_state("leaves", "RUNNING")["pid"]
    m.wait_log(r"leaves\[\d+\] +child \d+")
    child = int(re.search(r"leaves\[\d+\] +child (\d+)", m.log_text())[1])
    result = m.call("stop", names=["leaves"])
    assert result[0]["state"] == "STOPPED"
    assert not pid_alive(leader) and not pid_alive(child)
    text = m.log_text()
    assert "leaves: SIGTERM; waiting for the rest of its process group" in text
    assert "leaves: still running 0.5 s after the stop signal" in text


@pytest.mark.timeout(30)
def test_a_crashed_workers_leftover_children_are_killed(master):
    m = master(f"""
[services.crash]
command = {argv("/bin/sh", "-c", "sleep 1000 & echo child $!; sleep 0.1; exit 1")}
restart = "never"
""")
    m.wait_state("crash", "EXITED")
    child = int(re.search(r"crash\[\d+\] +child (\d+)", m.log_text())[1])
    wait_until(lambda: not pid_alive(child), timeout=3, dump=m.output,
               message="the crashed worker's child gone")


# -- 8. numprocs ---------------------------------------------------------------

@pytest.mark.timeout(30)
def test_numprocs_runs_named_instances_with_their_own_env(master):
    m = master(f"""
[services.cmd]
command = {argv("/bin/sh", "-c", "echo I am $CORRAL_INSTANCE index $CORRAL_INDEX; exec sleep 1000")}
numprocs = 2

[services.py]
service = "corral_test_services:make_chatty"
args = {{ word = "pyinst" }}
numprocs = 2
""", files=services_module())
    rows = m.status()
    assert sorted(rows) == ["cmd:0", "cmd:1", "py:0", "py:1"]
    for name in ("cmd", "py"):
        a = m.wait_state(f"{name}:0", "RUNNING")
        b = m.wait_state(f"{name}:1", "RUNNING")
        assert a["pid"] != b["pid"] and a["service"] == b["service"] == name
    for index in (0, 1):
        m.wait_log(rf"cmd:{index}\[\d+\] +I am cmd:{index} index {index}\n")
        m.wait_log(rf"py:{index}\[\d+\] +pyinst from pid \d+ instance py:{index}\n")
    # Restarting one instance leaves its sibling alone.
    before = m.status("cmd:1")["pid"]
    m.call("restart", names=["cmd:0"])
    assert m.status("cmd:1")["pid"] == before


# -- 9. the second Ctrl-C ------------------------------------------------------

@pytest.mark.timeout(30)
def test_second_sigint_kills_everything_at_once(master):
    m = master(f"""
[services.stubborn]
command = {argv(PY, os.path.join(WORKERS, "stubborn.py"))}
stop_timeout = 60
""")
    m.wait_state("stubborn", "RUNNING")
    m.wait_log(STUBBORN_RE)
    parent, child = map(int, re.search(STUBBORN_RE, m.log_text()).groups())
    m.signal(signal.SIGINT)
    m.wait_log(r"stubborn: stopping pid \d+ with SIGTERM")
    assert pid_alive(parent)  # it ignores SIGTERM and the timeout is long
    t0 = time.monotonic()
    m.signal(signal.SIGINT)
    assert m.wait_exit(timeout=5) == 0
    assert time.monotonic() - t0 < 3
    for pid in (parent, child):
        wait_until(lambda: not pid_alive(pid), timeout=3, message=f"pid {pid} gone")
    text = m.log_text()
    assert "killing every worker now" in text and "all services stopped" in text


# -- 11. no orphans ------------------------------------------------------------

@pytest.mark.timeout(30)
def test_workers_die_with_a_killed_master(master):
    m = master("""
[services.cmd]
command = ["/bin/sh", "-c", "exec sleep 1000"]

[services.py]
service = "corral_test_services:make_chatty"
""", files=services_module())
    cmd = m.wait_state("cmd", "RUNNING")["pid"]
    py = m.wait_state("py", "RUNNING")["pid"]
    m.signal(signal.SIGKILL)
    m.wait_exit()
    for pid in (cmd, py):
        wait_until(lambda: not pid_alive(pid), timeout=3,
                   message=f"worker {pid} gone after the master died")


# -- a stop signal that reaches a worker right after the fork ------------------

def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


@pytest.mark.timeout(30)
def test_signal_to_a_just_forked_worker_is_the_workers_not_the_masters(master):
    # Until a child has reset its signal dispositions it has the master's
    # handlers, which write into the master's wakeup fd: without care, a
    # SIGTERM sent to a fresh worker shuts the master down instead.
    m = master("""
[services.cmd]
command = ["/bin/sh", "-c", "exec sleep 1000"]

[services.py]
service = "corral_test_services:make_chatty"
""", files=services_module(), start=False)
    m.start(wait=False)
    hit = []
    end = time.monotonic() + 10
    while len(hit) < 2 and time.monotonic() < end:  # as fast as we can: no sleep
        # Workers are spawned only once the socket is bound; the one child
        # before it is the undertaker's first fork (reaper.py), gone by then.
        if not os.path.exists(m.socket):
            continue
        for pid in children_of(m.proc.pid):
            if pid not in hit:
                os.kill(pid, signal.SIGTERM)
                hit.append(pid)
    assert len(hit) == 2, hit
    wait_until(m._answers, message="the master to answer", dump=m.output)
    for name in ("cmd", "py"):
        row = wait_until(lambda: (r := m.status(name))["state"] == "RUNNING"
                         and r["pid"] not in hit and r, dump=m.output,
                         message=f"{name} running again")
        assert row["restarts"] == 1
    assert "shutting down" not in m.log_text()
    assert m.proc.poll() is None


# -- stopping in awkward moments -----------------------------------------------

@pytest.mark.timeout(30)
def test_python_worker_whose_stop_hangs_is_killed_after_the_timeout(master):
    m = master("""
[services.hang]
service = "corral_test_services:make_hangstop"
stop_timeout = 0.5
""", files=services_module())
    pid = m.wait_state("hang", "RUNNING")["pid"]
    result = m.call("stop", names=["hang"])
    assert result[0]["state"] == "STOPPED"
    assert not pid_alive(pid)
    m.wait_log(r"hang\[\d+\] +hanging in stopService")
    m.wait_log(r"hang: still running 0.5 s after the stop signal: killing its process group")
    m.wait_log(r"hang: stopped \(killed after its stop_timeout of 0.5 s\)")


@pytest.mark.timeout(30)
def test_shutdown_while_backing_off_and_while_starting_is_prompt(master):
    m = master(f"""
[services.crash]
command = {argv("/bin/sh", "-c", "exit 1")}
backoff_initial = 20
backoff_max = 20

[services.slow]
service = "corral_test_services:make_slow"
args = {{ delay = 30 }}

[services.after_slow]
command = {argv("/bin/sh", "-c", "echo SHOULD-NOT-RUN")}
after = ["slow"]
""", files=services_module())
    m.wait_state("crash", "BACKOFF")
    slow = m.wait_state("slow", "STARTING")["pid"]
    m.wait_log(r"slow\[\d+\] +slow start begins")
    t0 = time.monotonic()
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    assert time.monotonic() - t0 < 3
    assert not pid_alive(slow)
    text = m.log_text()
    assert "SHOULD-NOT-RUN" not in text and "after_slow: spawned" not in text
    assert "all services stopped" in text


@pytest.mark.timeout(30)
def test_python_worker_with_an_uncatchable_stop_signal_runs_and_stops(master):
    m = master("""
[services.hard]
service = "corral_test_services:make_chatty"
args = { word = "hard" }
stop_signal = "KILL"
""", files=services_module())
    pid = m.wait_state("hard", "RUNNING")["pid"]
    m.wait_log(r"hard\[\d+\] +hard from pid")
    assert m.status("hard")["restarts"] == 0
    result = m.call("stop", names=["hard"])
    assert result[0]["state"] == "STOPPED"
    assert not pid_alive(pid)
    m.wait_log(r"hard: stopped \(SIGKILL\)")


# -- operator starts -----------------------------------------------------------

@pytest.mark.timeout(30)
def test_start_of_a_fatal_service_reports_the_new_attempt(master):
    # It fails until the file `ok` exists next to the config.
    m = master(f"""
[services.picky]
command = {argv("/bin/sh", "-c", "test -e ok || exit 1; echo picky runs; exec sleep 1000")}
max_restarts = 0
""")
    m.wait_state("picky", "FATAL")
    open(os.path.join(m.dir, "ok"), "w").close()
    result = m.call("start", names=["picky"])
    assert result[0]["state"] == "RUNNING" and result[0]["ok"] is True
    m.wait_log(r"picky\[\d+\] +picky runs")


