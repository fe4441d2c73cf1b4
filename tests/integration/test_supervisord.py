"""`corral run supervisord.conf`: real programs, their files, and priority order;
and the same file read by supervisord's own parser, where it is installed."""

import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from tests.helpers import free_port
from tests.integration.harness import Master, wait_until

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "supervisord")
PROGRAMS = ("worker_0", "worker_1", "web", "cron")
SUPERVISORCTL = os.path.join(os.path.dirname(sys.executable), "supervisorctl")


def example_master():
    """A master on a copy of examples/supervisord (its logs/ is the test's own)."""
    m = Master("", suffix=".unused")
    folder = os.path.join(m.dir, "example")
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("*.log", "*.err", "*.pid"))
    m.config = os.path.join(folder, "supervisord.conf")
    return m, folder


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


@pytest.mark.timeout(60)
def test_the_example_runs_unchanged_in_priority_order_with_supervisords_files():
    m, folder = example_master()
    port = free_port()
    try:
        m.start(env={"WEB_PORT": str(port)})
        for name in PROGRAMS:
            m.wait_state(name, "RUNNING")
        events = [(e["name"], e["to"]) for e in m.events()]
        # priority 10 (workers) is RUNNING before 20 (web) starts, and 20 before 30 (cron).
        for low, high in (("worker_0", "web"), ("worker_1", "web"), ("web", "cron")):
            assert events.index((low, "RUNNING")) < events.index((high, "STARTING")), events
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=5) as reply:
            assert reply.read() == b"<h1>shop</h1>\n"
        if os.path.exists(SUPERVISORCTL):  # supervisorctl -c the same file, as with supervisord
            done = subprocess.run([SUPERVISORCTL, "-c", m.config, "status"], capture_output=True,
                                  text=True, timeout=30)
            assert [line.split()[:2] for line in done.stdout.splitlines()] == [
                ["cron", "RUNNING"], ["web", "RUNNING"], ["worker:worker_0", "RUNNING"],
                ["worker:worker_1", "RUNNING"]], done.stdout + done.stderr
        logs = os.path.join(folder, "logs")
        # stdout_logfile: the program's bytes as written, no prefix; stderr apart.
        wait_until(lambda: b"worker 0: job 2 done\n" in read(os.path.join(logs, "worker_0.log")),
                   dump=m.output)
        out = read(os.path.join(logs, "worker_0.log")).decode()
        assert out.startswith("worker 0 up in production as worker_0\nworker 0: job 1 done\n")
        assert "stderr" not in out
        assert read(os.path.join(logs, "worker_1.err")) == b"worker 1: warnings go to stderr\n"
        # /dev/stdout and /dev/stderr: corral's console, every line timestamped.
        wait_until(lambda: "web[" in m.log_text() and "GET /index.html" in m.log_text(),
                   dump=m.output)
        assert "web listening on 127.0.0.1" in m.log_text()
        wait_until(lambda: "cron[" in m.log_text() and " tick " in m.log_text(), dump=m.output)
        assert not [f for f in os.listdir(logs) if "---" in f]  # no AUTO files: all named
        m.cli("shutdown")
        m.wait_exit()
        # Stops run in reverse: cron, then web, then the workers.
        text = m.log_text()
        assert text.index("cron: stopped") < text.index("web: stopped") < \
            text.index("worker_0: stopped"), text[-3000:]
    finally:
        m.close()


@pytest.mark.timeout(60)
def test_a_generated_conf_with_expected_exit_codes_and_a_redirected_stderr(tmp_path):
    m = Master("", suffix=".unused")
    m.config = os.path.join(m.dir, "supervisord.conf")
    with open(m.config, "w") as f:
        f.write(
            "[program:once]\n"
            "command=sh -c 'echo out; echo err >&2; exit 3'\n"
            "autorestart=unexpected\nexitcodes=3\nstartsecs=0\nredirect_stderr=true\n"
            "stdout_logfile=%(here)s/once.log\n"
            "[program:flaky]\n"
            "command=sh -c 'echo try; exit 4'\n"
            "autorestart=unexpected\nexitcodes=0\nstartsecs=0\nstartretries=2\n"
            "stdout_logfile=%(here)s/flaky.log\nstderr_logfile=NONE\n")
    try:
        m.start()
        m.wait_state("once", "EXITED")          # 3 is expected: not restarted
        m.wait_state("flaky", "FATAL")          # 4 is not: restarted, then given up
        assert read(os.path.join(m.dir, "once.log")) in (b"out\nerr\n", b"err\nout\n")
        assert read(os.path.join(m.dir, "flaky.log")) == b"try\n" * 3  # 1 + startretries
    finally:
        m.close()


def test_supervisord_itself_reads_the_example_the_same_way(tmp_path):
    options = pytest.importorskip("supervisor.options", reason="the supervisor package is "
                                  "not installed (pip install -e '.[test]')")
    from corral.loaders import load

    folder = tmp_path / "example"
    shutil.copytree(EXAMPLE, folder)
    path = str(folder / "supervisord.conf")
    theirs = options.ServerOptions()
    theirs.realize(args=["-c", path])
    ours = {spec.name: spec for spec in load(path).services}
    restart = {"RestartUnconditionally": "always", "RestartWhenExitUnexpected": "on-failure"}
    order = []
    for group in sorted(theirs.process_group_configs, key=lambda g: g.priority):
        for process in group.process_configs:
            spec = ours[process.name]
            order.append(process.name)
            assert spec.command[1:] == tuple(process.command.split()[1:]) or \
                process.name == "cron"
            assert spec.exit_codes == tuple(process.exitcodes)
            assert spec.restart == restart.get(getattr(process.autorestart, "__name__", ""),
                                               "never" if not process.autorestart else "always")
            assert spec.ready == (("seconds", float(process.startsecs)) if process.startsecs
                                  else None)
            assert spec.max_restarts == process.startretries
            assert spec.stop_timeout == process.stopwaitsecs
            files = {f.stream: f.path for f in spec.stream_files}
            for stream, theirs_path in (("out", process.stdout_logfile),
                                        ("err", process.stderr_logfile)):
                if process.redirect_stderr and stream == "err":
                    theirs_path = process.stdout_logfile
                if theirs_path in (None, "/dev/stdout", "/dev/stderr"):
                    assert stream not in files  # the console has it
                else:
                    assert files[stream] == theirs_path
    assert order == [spec.name for spec in load(path).services]
