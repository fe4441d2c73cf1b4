"""Dependencies that propagate, restart groups and on_fatal, with real
processes: one case of each (every decision: tests/replay/)."""

import os
import signal

import pytest

from tests.integration.harness import argv, pid_alive, running_pid, wait_until


def sleeper(word):
    return argv("/bin/sh", "-c", f"echo {word} up; exec sleep 1000")


@pytest.mark.timeout(30)
def test_stop_redis_stops_what_requires_it_and_start_brings_it_back(master):
    m = master(f"""
[services.redis]
command = {sleeper("redis")}

[services.web]
command = {sleeper("web")}
requires = ["redis"]

[services.cron]
command = {sleeper("cron")}
after = ["redis"]
""")
    web = running_pid(m, "web")
    cron = running_pid(m, "cron")
    result = m.call("stop", names=["redis"])
    assert result[0]["state"] == "STOPPED"
    row = m.status("web")
    assert row["state"] == "WAITING" and not pid_alive(web)
    assert row["reason"] == "stopped: redis is stopping; waiting for redis"
    assert m.status("cron")["pid"] == cron  # after only: left alone
    text = m.log_text()
    assert text.index("web: stopped (") < text.index("redis: stopped (")  # web first
    m.call("start", names=["redis"])
    new = wait_until(lambda: (r := m.status("web"))["state"] == "RUNNING" and r["pid"],
                     dump=m.output, message="web back")
    assert new != web


@pytest.mark.timeout(30)
def test_one_for_all_restarts_the_whole_group(master):
    m = master(f"""
[services.a]
command = {sleeper("a")}

[services.b]
command = {sleeper("b")}

[services.other]
command = {sleeper("other")}

[groups.pair]
services = ["a", "b"]
strategy = "one_for_all"
""")
    a, b, other = (running_pid(m, n) for n in ("a", "b", "other"))
    os.kill(a, signal.SIGKILL)
    m.wait_log(r"group pair \(one_for_all\): a exited: restarting a, b")
    wait_until(lambda: all(m.status(n)["state"] == "RUNNING" and m.status(n)["pid"] not in (a, b)
                           for n in ("a", "b")), dump=m.output, message="a and b back")
    assert m.status("other")["pid"] == other
    assert "(group pair)" in m.cli("tree").stdout


@pytest.mark.timeout(30)
def test_on_fatal_shutdown_exits_non_zero(master):
    m = master(f"""
[corral]
on_fatal = "shutdown"

[services.dies]
command = {argv("/bin/sh", "-c", "exit 3")}
max_restarts = 0
start_seconds = 0

[services.bystander]
command = {sleeper("bystander")}
""", start=False)
    m.start(wait=False)  # it may be gone before it would answer
    assert m.wait_exit() == 1
    text = m.log_text()
    assert "dies: FATAL: exited 1 times in 10 s (exit 3): giving up" in text
    assert 'on_fatal = "shutdown": dies is FATAL: stopping everything' in text
    assert "bystander: stopped (" in text


@pytest.mark.timeout(30)
def test_a_python_config_runs_programs_and_sets_the_master(master):
    m = master("""
import corral

application = corral.Application("shop").configure(log_dir="logs", on_fatal="stay")
corral.Command(["/bin/sh", "-c", "echo program up; exec sleep 1000"], name="prog").supervise(
    restart="always").setServiceParent(application)
web = corral.Service(); web.setName("web")
web.supervise(requires=["prog"]).setServiceParent(application)
""", suffix=".py")
    m.wait_log(r"prog\[\d+\] +program up")
    assert m.wait_state("web", "RUNNING")["state"] == "RUNNING"
    assert m.call("tree")["children"][0]["kind"] == "command"
    wait_until(lambda: os.path.exists(os.path.join(m.dir, "logs", "prog.log")), dump=m.output,
               message="log_dir from configure() in use")


@pytest.mark.timeout(40)
def test_an_operators_stop_and_start_outlive_the_master(master):
    config = f"""
[services.web]
command = {sleeper("web")}

[services.job]
command = {sleeper("job")}
autostart = false
"""
    m = master(config)
    m.call("stop", names=["web"])
    m.call("start", names=["job"])
    m.call("scale", service="job", count=2)  # a scale lasts too (core/scale.py)
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    m.start()  # the same config, socket and folder: a new master
    job = m.wait_state("job:1", "RUNNING")
    assert m.wait_state("job:0", "RUNNING") and sorted(m.status()) == ["job:0", "job:1", "web"]
    assert m.status("web")["state"] == "STOPPED"
    m.wait_log(r"web: left stopped: an operator said so before the master restarted")
    m.wait_log(r"job: scaled to 2: an operator said so before the master restarted")
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    with open(m.socket + ".goals", "w") as f:
        f.write("{not json")
    m.start()
    m.wait_state("web", "RUNNING")  # ignored, and said
    m.wait_log(r"ignoring the remembered goals in .*\.goals: ")
    assert m.status("job")["state"] == "STOPPED" and job["pid"]


TASK_CRASH = """
import asyncio
import corral

class Flaky(corral.Service):
    def startService(self):
        super().startService()
        self.task = asyncio.get_running_loop().create_task(self.work())

    async def work(self):
        print("flaky working", flush=True)
        await asyncio.sleep(0.2)
        raise ValueError("lost the connection")

application = corral.Application("t")
Flaky().supervise(task_crash="restart", backoff_initial=0.05).setServiceParent(application)
calm = Flaky(); calm.setName("calm"); calm.setServiceParent(application)
"""


@pytest.mark.timeout(30)
def test_task_crash_restart_makes_a_crashed_task_a_crash(master):
    m = master(TASK_CRASH, suffix=".py")
    first = running_pid(m, "flaky")
    calm = running_pid(m, "calm")
    m.wait_log(r'flaky\[\d+\] +.*task_crash = "restart": stopping the worker, exit 70')
    wait_until(lambda: (r := m.status("flaky"))["state"] == "RUNNING" and r["pid"] != first,
               dump=m.output, message="flaky back with a new pid")
    assert "exit 70" in m.log_text()
    m.wait_log(r"calm\[\d+\] +.*ValueError: lost the connection")
    assert m.status("calm")["pid"] == calm and m.status("calm")["state"] == "RUNNING"  # "log"
