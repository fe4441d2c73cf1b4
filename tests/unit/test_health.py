"""health and max_memory: parsing and checks (healthspec.py, settings.py), and
the probes and the RSS pass of supervisor/health.py on a real loop, without a
master: an in-process server, real sh processes, no sleeping beyond a probe."""

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest

from corral.config import load
from corral.errors import ConfigError
from corral.healthspec import Health, format_bytes, parse_health, parse_memory
from corral.probes import Target
from corral.spec import ServiceSpec
from corral.supervisor import health, report
from corral.core.record import Record
from corral.core.states import Event
from tests.helpers import free_port, run_without_threads

TRUE = "command = ['true']\n"


def load_service(tmp_path, body):
    path = tmp_path / "corral.toml"
    path.write_text("[services.svc]\n" + TRUE + textwrap.dedent(body))
    return load(path).services[0]


def service_error(tmp_path, body, key):
    with pytest.raises(ConfigError) as info:
        load_service(tmp_path, body)
    err = info.value
    assert (err.service, err.key) == ("svc", key)
    assert f"key {key!r}" in str(err) and "\n" not in str(err)
    return err


# -- max_memory -------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("512MB", 512 << 20), ("512M", 512 << 20), ("1.5G", 3 << 29), ("100K", 100 << 10),
    ("100k", 100 << 10), ("2GiB", 2 << 30), ("1T", 1 << 40), ("64 MiB", 64 << 20),
    ("4096", 4096), ("4096B", 4096), (4096, 4096), (" 10M ", 10 << 20), (".5K", 512),
])
def test_memory_sizes(value, expected):
    assert parse_memory(value) == expected


@pytest.mark.parametrize("value", [
    "0", 0, -5, "", "M", "12X", "1.5.2G", "10 GB extra", "iB", "-1M", True, 1.5, None,
    [512], "0.0001K",
])
def test_bad_memory_sizes(value):
    with pytest.raises(ValueError, match="must be a size > 0"):
        parse_memory(value)


def test_format_bytes():
    assert format_bytes(629354086) == "600.2M"
    assert format_bytes(512 << 20) == "512M"
    assert format_bytes(3 << 29) == "1.5G"
    assert format_bytes(900 << 10) == "900K"
    assert format_bytes(12) == "12B"


def test_max_memory_in_toml(tmp_path):
    assert load_service(tmp_path, 'max_memory = "1.5G"\n').max_memory == 3 << 29
    assert load_service(tmp_path, "max_memory = 1000000\n").max_memory == 1000000
    assert load_service(tmp_path, "").max_memory is None


@pytest.mark.parametrize("value", ['"lots"', "0", "true", '"5X"', "1.5"])
def test_bad_max_memory_names_the_key(tmp_path, value):
    err = service_error(tmp_path, f"max_memory = {value}\n", "max_memory")
    assert '"512M"' in err.message


# -- health tables ----------------------------------------------------------------

def test_http_health_defaults():
    check = parse_health({"http": "http://127.0.0.1:8080/health?full=1"})
    url = "http://127.0.0.1:8080/health?full=1"
    assert check == Health(kind="http", interval=10.0, failures=3, timeout=5.0,
                           target=Target("http", "127.0.0.1", 8080, "/health?full=1", url))
    assert check.describe() == "http http://127.0.0.1:8080/health?full=1"
    hash(check)


def test_health_forms():  # the targets in detail: test_probes.py
    check = parse_health({"http": "http://localhost", "interval": 2, "failures": 1})
    assert check.target == Target("http", "localhost", 80, "/", "http://localhost")
    assert (check.interval, check.failures, check.timeout) == (2.0, 1, 2.0)  # min(interval, 5)
    check = parse_health({"tcp": "localhost:7", "timeout": 0.5})
    assert (check.target, check.timeout) == (Target("tcp", "localhost", 7), 0.5)
    assert check.describe() == "tcp localhost:7"


def test_exec_health_forms():
    assert parse_health({"exec": ["test", "-e", "a b"]}).argv == ("test", "-e", "a b")
    check = parse_health({"exec": "sh -c 'test ! -e FILE'"})
    assert check.argv == ("sh", "-c", "test ! -e FILE")
    assert check.describe() == "exec sh -c 'test ! -e FILE'"


@pytest.mark.parametrize("value, words", [
    ("http://x", "must be a table"),
    ({}, "exactly one of http, tcp, exec"),
    ({"http": "http://127.0.0.1/", "tcp": 80}, "(has http, tcp)"),
    ({"http": "http://127.0.0.1/", "intervall": 1}, "unknown key 'intervall'"),
    ({"http": "https://127.0.0.1/"}, "health http must be a URL"),
    ({"tcp": "db.internal:5432"}, "health tcp host must be an IP address or localhost"),
    ({"exec": []}, "needs a program"),
    ({"exec": ""}, "needs a program"),
    ({"exec": [1]}, "list of strings"),
    ({"exec": "sh -c 'x"}, "health exec"),
    ({"tcp": 80, "interval": 0}, "interval must be a number of seconds > 0"),
    ({"tcp": 80, "interval": "5"}, "interval must be"),
    ({"tcp": 80, "timeout": -1}, "timeout must be"),
    ({"tcp": 80, "timeout": float("inf")}, "timeout must be"),
    ({"tcp": 80, "failures": 0}, "failures must be an integer >= 1"),
    ({"tcp": 80, "failures": 2.0}, "failures must be"),
    ({"tcp": 80, "failures": True}, "failures must be"),
])
def test_bad_health(value, words):
    with pytest.raises(ValueError) as info:
        parse_health(value)
    assert words in str(info.value)


def test_health_in_toml(tmp_path):
    spec = load_service(tmp_path, 'health = {tcp = 6379, interval = 1, failures = 2}\n')
    assert spec.health == Health(kind="tcp", interval=1.0, failures=2, timeout=1.0,
                                 target=Target("tcp", "127.0.0.1", 6379))
    spec = load_service(tmp_path, '[services.svc.health]\nexec = "true"\n')
    assert spec.health.argv == ("true",)
    assert load_service(tmp_path, "").health is None


def test_bad_health_names_the_key(tmp_path):
    err = service_error(tmp_path, 'health = {http = "http://db:80/"}\n', "health")
    assert "IP address or localhost" in err.message
    err = service_error(tmp_path, "health = {tcp = 80, failures = 0}\n", "health")
    assert "failures must be" in err.message


def test_health_in_python_config(tmp_path):
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent("""
        import corral
        application = corral.Application("a")
        corral.Service().supervise(health={"tcp": 80}, max_memory="1G").setServiceParent(application)
    """))
    spec = load(path).services[0]
    assert spec.health.target.port == 80 and spec.max_memory == 1 << 30
    path.write_text(path.read_text().replace('{"tcp": 80}', '{"tcp": "x"}'))
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.key == "health"


def test_changed_health_restarts_on_reload(tmp_path):
    a = load_service(tmp_path, "health = {tcp = 80}\n")
    b = load_service(tmp_path, "health = {tcp = 81}\n")
    c = load_service(tmp_path, "health = {tcp = 80}\n")
    assert a != b and a == c


# -- probes, on a real loop --------------------------------------------------------

async def http_server(status=200, answer=True):
    """A one-request-per-connection server on 127.0.0.1: (server, port, requests)."""
    requests = []

    async def handle(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        requests.append(head)
        if answer:
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
            writer.close()
        else:
            await asyncio.sleep(10)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], requests


class FakeMaster:
    """What health.probe uses of the master: its loop and the spawner's helpers."""

    def __init__(self, loop):
        self.loop = loop
        self.spawner = type("Spawner", (), {"helpers": set()})()


class Prober:
    def __init__(self, master):
        self.master = master

    async def probe(self, record, check):
        return await health.probe(self.master, record, check)


def monitor_on(loop):
    master = FakeMaster(loop)
    return master, Prober(master)


def running_record(**settings):
    record = Record.of(ServiceSpec(name="svc", command=("true",), **settings), 0)
    record.move(Event.START)
    record.move(Event.READY)
    return record


def test_http_probe_refused_and_timeout():  # the answers: test_probes.py
    async def main():
        master, monitor = monitor_on(asyncio.get_running_loop())
        record = running_record()
        refused = parse_health({"http": f"http://127.0.0.1:{free_port()}/"})
        assert await monitor.probe(record, refused) == (False, "connection refused")
        server, port, _ = await http_server(answer=False)
        async with server:
            slow = parse_health({"http": f"http://127.0.0.1:{port}/", "timeout": 0.1})
            t0 = time.monotonic()
            assert await monitor.probe(record, slow) == (False, "timed out after 0.1 s")
            assert time.monotonic() - t0 < 1

    run_without_threads(main())


def test_tcp_probe():
    async def main():
        master, monitor = monitor_on(asyncio.get_running_loop())
        record = running_record()
        server, port, _ = await http_server()
        async with server:
            assert await monitor.probe(record, parse_health({"tcp": port})) == (True, "connected")
            assert await monitor.probe(record, parse_health({"tcp": f"localhost:{port}"})) \
                == (True, "connected")
        assert await monitor.probe(record, parse_health({"tcp": free_port()})) \
            == (False, "connection refused")

    run_without_threads(main())


def test_exec_probe_exit_codes_env_and_reaping(tmp_path):
    async def main():
        master, monitor = monitor_on(asyncio.get_running_loop())
        record = running_record(env=(("GREETING", "hi"),), cwd=str(tmp_path))
        ok = parse_health({"exec": 'sh -c \'test "$GREETING" = hi && test "$CORRAL_INSTANCE" '
                                   '= svc/health && test "$(pwd)" = "$PWD"\''})
        assert await monitor.probe(record, ok) == (True, "exit 0")
        assert await monitor.probe(record, parse_health({"exec": "sh -c 'exit 3'"})) \
            == (False, "exit 3")
        assert await monitor.probe(record, parse_health({"exec": "/nonexistent/probe"})) \
            == (False, "cannot run /nonexistent/probe: No such file or directory")
        assert not master.spawner.helpers

    run_without_threads(main())


def test_exec_probe_killed_after_timeout_and_reaped():
    async def main():
        master, monitor = monitor_on(asyncio.get_running_loop())
        record = running_record()
        check = parse_health({"exec": ["sh", "-c", "sleep 30 & sleep 31; wait"],
                              "timeout": 0.2})
        t0 = time.monotonic()
        assert await monitor.probe(record, check) == (False, "timed out after 0.2 s")
        assert time.monotonic() - t0 < 1
        helpers = master.spawner.helpers
        assert len(helpers) == 1  # killed, not reaped yet: its watcher will
        pid = next(iter(helpers))
        deadline = time.monotonic() + 5
        while helpers and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not helpers
        with pytest.raises(ChildProcessError):  # reaped by its watcher
            os.waitpid(pid, os.WNOHANG)
        return pid

    pid = run_without_threads(main())
    out = subprocess.run(["ps", "-o", "stat=", "--sid", str(pid)], capture_output=True, text=True)
    assert all(stat.startswith("Z") for stat in out.stdout.split())  # its sleeps died too


# -- memory --------------------------------------------------------------------------

def test_tree_rss_counts_descendants():
    code = "import time; x = b'1' * (30 << 20); print(flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()
        found = report.UsageCache().refresh([], [os.getpid(), child.pid, 2 ** 22 + 1])
        mine, alone = found[os.getpid()].rss, found[child.pid].rss
        assert alone > 30 << 20
        assert mine > alone
        assert 2 ** 22 + 1 not in found  # no such pid
    finally:
        child.kill()
        child.wait()


def standin_processes(cpu):
    """A stand-in for psutil.Process with the calls UsageCache makes, and
    the list of those made: each starts at cpu (a list, to change it for
    the next one), is running until told, and counts is_running() calls."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    import psutil

    made, asked = [], []

    class Standin:
        def __init__(self, pid):
            self.pid, self.cpu, self.running = pid, cpu[0], True
            made.append(self)

        def is_running(self):
            asked.append(self.pid)
            return self.running

        def oneshot(self):
            return nullcontext()

        def status(self):
            return psutil.STATUS_SLEEPING

        def cpu_times(self):
            return SimpleNamespace(user=self.cpu, system=0.0)

        def memory_info(self):
            return SimpleNamespace(rss=1 << 20)

    return Standin, made, asked


def test_a_reused_pid_does_not_inherit_the_cpu_baseline():
    """UsageCache keeps one Process per pid with its CPU time of the last
    pass. Once psutil's is_running() says no (the pid now names a process
    with another create time) the next pass starts from a new object: 0.0 %,
    not the new process's CPU against the old one's baseline."""
    next_cpu = [0.0]
    Standin, made, _ = standin_processes(next_cpu)
    child = subprocess.Popen(["sleep", "30"])  # a real pid: the tree is read from /proc
    try:
        now = [100.0]
        cache = report.UsageCache(clock=lambda: now[0], process=Standin)
        assert cache.refresh([], [child.pid])[child.pid].cpu_percent == 0.0  # first sample
        made[0].cpu, now[0] = 0.5, 101.0
        assert cache.refresh([], [child.pid])[child.pid].cpu_percent == 50.0  # same process
        made[0].running, next_cpu[0], now[0] = False, 2.0, 102.0  # the pid is reused
        usage = cache.refresh([], [child.pid])[child.pid]
        assert len(made) == 2
        assert (usage.cpu_percent, usage.cpu_seconds) == (0.0, 2.0)  # not 150 %
    finally:
        child.kill()
        child.wait()


def test_a_worker_is_told_apart_by_its_spawn_not_by_is_running():
    """A record's pid is the master's child, which cannot be reused before
    the master reaps it: the spawn time on the record says whether it is
    the process of the last pass, and is_running() is not asked (it reads
    stat a second time)."""
    from types import SimpleNamespace

    Standin, made, asked = standin_processes([1.0])
    child = subprocess.Popen(["sleep", "30"])
    try:
        now = [100.0]
        record = SimpleNamespace(pid=child.pid, started_at=50.0)
        cache = report.UsageCache(clock=lambda: now[0], process=Standin)
        cache.refresh([record], [])
        made[0].cpu, now[0] = 1.5, 101.0
        assert cache.refresh([record], [])[child.pid].cpu_percent == 50.0
        assert len(made) == 1 and asked == []
        record.started_at, now[0] = 101.5, 102.0  # reaped and respawned under the same pid
        assert cache.refresh([record], [])[child.pid].cpu_percent == 0.0
        assert len(made) == 2 and asked == []
    finally:
        child.kill()
        child.wait()


def test_one_usage_sample_serves_metrics_status_and_max_memory(monkeypatch):
    """The max_memory check reads the master's one UsageCache, as status and
    /metrics do (api.Operations uses master.usage): within USAGE_MAX_AGE,
    one pass over the workers' trees serves all three."""
    from types import SimpleNamespace

    from corral.api import Operations
    from corral.core import messages as m
    from corral.supervisor.master import Master

    real_trees, scans = report._trees, []
    monkeypatch.setattr(report, "_trees", lambda roots: scans.append(1) or real_trees(roots))
    now = [100.0]
    record = SimpleNamespace(name="web", service="web", pid=os.getpid(), started_at=1.0)
    fed = []
    master = SimpleNamespace(records={"web": record}, usage=report.UsageCache(clock=lambda: now[0]),
                             event_topic=SimpleNamespace(subscribe=lambda callback: None), feed=fed.append,
                             clock=SimpleNamespace(now=lambda: now[0]))
    ops = Operations(master)
    usage = ops.usage()  # what /metrics and status read
    Master._sample_memory(master, m.SampleMemory(("web",)))
    assert len(scans) == 1
    assert fed == [m.MemorySampled((("web", usage["web"].rss),))]
    now[0] += report.USAGE_MAX_AGE  # stale: the next one reads the trees again
    Master._sample_memory(master, m.SampleMemory(("web",)))
    assert len(scans) == 2


def test_the_masters_own_usage_is_read_once_a_sample_age(monkeypatch):
    """/metrics' process_* series: the master's fds, CPU and RSS are read
    at most once in USAGE_MAX_AGE s, as the workers' usage is."""
    from types import SimpleNamespace

    import psutil

    from corral.api import Operations

    now, reads = [100.0], []
    real = psutil.Process.num_fds
    monkeypatch.setattr(psutil.Process, "num_fds", lambda self: reads.append(1) or real(self))
    master = SimpleNamespace(records={}, usage=report.UsageCache(clock=lambda: now[0]),
                             event_topic=SimpleNamespace(subscribe=lambda callback: None),
                             clock=SimpleNamespace(now=lambda: now[0]))
    ops = Operations(master)
    first = ops.master_process()
    assert first.pid == os.getpid() and first.open_fds > 0 and first.rss > 0
    now[0] += report.USAGE_MAX_AGE / 2
    assert ops.master_process() is first and len(reads) == 1
    now[0] += report.USAGE_MAX_AGE
    assert ops.master_process() is not first and len(reads) == 2
