"""Runtime scale with real processes (core/scale.py, Operations.scale): a new
instance serves on the socket the master holds, a scale down stops the
highest index and leaves the others' pids, a reload with another numprocs
scales instead of restarting. The decisions themselves are in
tests/replay/test_scale.py."""

import pytest

from corral.errors import ControlError
from tests.helpers import free_port
from tests.integration.harness import ask, wait_until
from tests.integration.test_sockets import activated_config, pid_of_reply, tree_config


def serves(m, port, pid):
    """Some reply on port comes from pid (the kernel spreads accepts)."""
    seen = set()
    wait_until(lambda: seen.add(pid_of_reply(ask(port))) or pid in seen, timeout=8,
               interval=0, message=f"a reply from the new pid {pid} (seen {seen})", dump=m.output)


@pytest.mark.timeout(40)
def test_scale_up_starts_an_instance_that_serves_on_the_shared_port(master):
    port = free_port()
    m = master(tree_config(port, numprocs=2), suffix=".py")
    old = {f"echo:{i}": m.wait_state(f"echo:{i}", "RUNNING")["pid"] for i in range(2)}
    done = m.cli("scale", "echo", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == ["echo:0: RUNNING", "echo:1: RUNNING", "echo:2: RUNNING"]
    new = m.status("echo:2")["pid"]
    assert {n: m.status(n)["pid"] for n in old} == old and new not in old.values()
    serves(m, port, new)
    tree = m.call("tree")["children"][0]
    assert [i["name"] for i in tree["instances"]] == ["echo:0", "echo:1", "echo:2"]
    assert ("echo:2", "RUNNING") in [(e["name"], e["to"]) for e in m.events()]
    # refused, changing nothing
    refused = m.cli("scale", "nope", "2")
    assert refused.returncode == 1 and "no service named 'nope'" in refused.stderr
    for service, count, code, words in [
            ("nope", 2, "no_such_service", "no service named 'nope'"),
            ("echo:1", 2, "no_such_service", "scale its service, echo"),
            ("echo", 0, "bad_argument", "1 or more, not 0 (to stop every instance"),
            ("echo", 1000, "bad_argument", "256 or less"),
            ("echo", -1, "bad_argument", "bad value for 'count': -1")]:
        with pytest.raises(ControlError) as refused:
            m.call("scale", service=service, count=count)
        assert (refused.value.code, words in refused.value.message) == (code, True), refused.value
    assert len(m.status()) == 3


@pytest.mark.timeout(40)
def test_scale_down_stops_the_highest_index_and_the_others_keep_their_pids(master):
    port = free_port()
    m = master(activated_config(port, numprocs=3))
    pids = {f"echo:{i}": m.wait_state(f"echo:{i}", "RUNNING")["pid"] for i in range(3)}
    seen = len(m.events())
    done = m.call("scale", service="echo", count=2)
    assert [(o["name"], o["state"]) for o in done] == [
        ("echo:0", "RUNNING"), ("echo:1", "RUNNING"), ("echo:2", "STOPPED")]
    assert done[-1]["message"] == "removed (echo scaled to 2)"
    assert sorted(m.status()) == ["echo:0", "echo:1"]
    assert {n: m.status(n)["pid"] for n in ("echo:0", "echo:1")} == {
        n: pids[n] for n in ("echo:0", "echo:1")}
    assert [(e["name"], e["to"]) for e in m.events()[seen:]] == [
        ("echo:2", "STOPPING"), ("echo:2", "STOPPED")]
    wait_until(lambda: not _alive(pids["echo:2"]), message="echo:2's process gone")
    replies = {pid_of_reply(ask(port)) for _ in range(20)}
    assert replies <= {pids["echo:0"], pids["echo:1"]}
    m.wait_log(r"echo:2: stopping pid \d+ with SIGTERM")


@pytest.mark.timeout(40)
def test_reload_with_another_numprocs_scales_and_keeps_the_unchanged_pids(master):
    """A Python tree: the new instance serves on the sockets its old tree holds."""
    port = free_port()
    config = tree_config
    m = master(config(port, numprocs=2), suffix=".py")
    pids = {f"echo:{i}": m.wait_state(f"echo:{i}", "RUNNING")["pid"] for i in range(2)}
    with open(m.config, "w") as f:
        f.write(config(port, numprocs=3))
    result = m.call("reload")
    assert result["scaled"] == ["echo"] and result["changed"] == []
    new = m.wait_state("echo:2", "RUNNING")["pid"]
    assert {n: m.status(n)["pid"] for n in pids} == pids
    serves(m, port, new)
    with open(m.config, "w") as f:
        f.write(config(port, numprocs=1))  # from more to one: replaced
    assert m.call("reload")["scaled"] == ["echo"]
    assert sorted(m.status()) == ["echo"]
    serves(m, port, m.wait_state("echo", "RUNNING")["pid"])


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
