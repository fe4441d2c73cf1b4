"""The merged log with real workers: floods, huge lines, bad bytes, many workers."""

import os
import re
import signal
import sys

import pytest

from corral.errors import ControlError
from tests.integration.harness import argv, wait_until

WORKERS = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "fixtures",
                                       "workers"))
COUNT = 120_000
MAX_LINE = 65536  # LogHub's default piece size for over-long lines


def read_log(m):
    with open(m.logfile, "rb") as f:
        return f.read()


def lines_of(data, instance):
    """The text of every `instance[pid] out:` line of the log, in order."""
    regex = re.compile(rb"^\S+ \S+ " + re.escape(instance.encode()) + rb"\[\d+\] +(.*)$",
                       re.MULTILINE)
    return regex.findall(data)


@pytest.mark.timeout(45)
def test_flood_huge_line_bad_bytes_and_partial_last_line_all_arrive(master):
    m = master(f"""
[services.burst]
command = {argv(sys.executable, os.path.join(WORKERS, "burst.py"), str(COUNT))}
restart = "never"
start_seconds = 0

[services.bystander]
command = {argv("/bin/sh", "-c", "echo bystander up; exec sleep 1000")}
start_seconds = 0
""")
    m.wait_state("burst", "EXITED", timeout=30)
    m.wait_log(r"burst: exited: exit 0")
    lines = lines_of(read_log(m), "burst")

    numbered = lines[:COUNT]
    assert numbered == [b"burst line %d" % i for i in range(COUNT)]
    rest = lines[COUNT:]
    big = b"big:" + b"x" * (200 * 1024) + b":end"
    pieces = -(-len(big) // MAX_LINE)
    assert all(len(piece) <= MAX_LINE for piece in rest[:pieces])
    assert b"".join(rest[:pieces]) == big
    rest = rest[pieces:]
    assert rest[0] == b"bad utf8 \xff\xfe\xc3\x28 here"  # the file keeps the bytes
    assert rest[1:] == [b"after bad", b"partial last line without newline"]

    # The master is fine: it answers, the ring decodes the bad bytes, others run.
    tail = [item["line"] for item in m.call("logs", name="burst", lines=10)
            if item["stream"] == "out"][-3:]
    assert tail == ["bad utf8 \ufffd\ufffd\ufffd( here", "after bad",
                    "partial last line without newline"]
    assert m.status("bystander")["state"] == "RUNNING"
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


TWO_TREES = '''
import logging
import os

import corral

log = logging.getLogger("trees")


class Talker(corral.Service):
    def startService(self):
        super().startService()
        print(f"{self.name} prints", flush=True)
        log.info("%s logs", self.name)


class Pair(corral.MultiService):
    pass


application = corral.Application("two")
for name in ("alpha", "beta"):
    tree = Pair()
    tree.setName(name)
    talker = Talker()
    talker.setName(f"{name}-talker")
    talker.setServiceParent(tree)
    tree.supervise(backoff_initial=0.05)
    tree.setServiceParent(application)
'''


@pytest.mark.timeout(30)
def test_two_python_trees_run_in_two_workers_with_merged_output(master):
    m = master(TWO_TREES, suffix=".py")
    alpha = m.wait_state("alpha", "RUNNING")["pid"]
    beta = m.wait_state("beta", "RUNNING")["pid"]
    assert alpha != beta and os.getpid() not in (alpha, beta)
    m.wait_log(rf"alpha\[{alpha}\] +alpha-talker prints")
    m.wait_log(rf"beta\[{beta}\] +beta-talker prints")
    m.wait_log(rf"alpha\[{alpha}\] +INFO trees: alpha-talker logs")
    m.wait_log(rf"beta\[{beta}\] +INFO trees: beta-talker logs")

    os.kill(alpha, signal.SIGKILL)
    row = wait_until(lambda: (r := m.status("alpha"))["state"] == "RUNNING"
                     and r["pid"] != alpha and r, dump=m.output, message="alpha back")
    m.wait_log(rf"alpha\[{row['pid']}\] +alpha-talker prints")
    assert m.status("beta")["pid"] == beta
    assert m.status("beta")["restarts"] == 0
    assert len(re.findall(r"beta\[\d+\] +beta-talker prints", m.log_text())) == 1


@pytest.mark.timeout(30)
def test_logs_after_a_seq_resumes_without_repeats_or_gaps(master):
    m = master(f"""
[services.counter]
command = {argv("/bin/sh", "-c", "for i in $(seq 1 50); do echo line $i; done; exec sleep 1000")}
""")
    out = lambda items: [item for item in items if item["stream"] == "out"]  # noqa: E731
    wait_until(lambda: len(out(m.call("logs", name="counter", lines=1000))) == 50)
    seen = out(m.call("logs", name="counter", lines=1000))
    seqs = [item["seq"] for item in seen]
    assert seqs == sorted(set(seqs))                               # grow, never repeat
    resumed = out(m.call("logs", name="counter", lines=1000, after=seen[19]["seq"]))
    assert [item["line"] for item in resumed] == [f"line {i}" for i in range(21, 51)]
    assert m.call("logs", name="counter", after=seqs[-1] + 10**6) == []
    with pytest.raises(ControlError, match="bad value for 'after'"):
        m.call("logs", name="counter", after=-1)
