"""Start order across `after`, readiness of Python workers, ordered shutdown."""

import os
import signal

import pytest

from tests.integration.harness import argv, pid_alive, wait_until

WORKERS = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "fixtures",
                                       "workers"))


def services_module():
    with open(os.path.join(WORKERS, "corral_test_services.py")) as f:
        return {"corral_test_services.py": f.read()}


def first(events, name, to):
    """Index of the first event that moved `name` to state `to`."""
    for index, item in enumerate(events):
        if item["name"] == name and item["to"] == to:
            return index
    raise AssertionError(f"no event {name} -> {to} in {events}")


def log_index(text, pattern):
    index = text.find(pattern)
    assert index >= 0, f"{pattern!r} not in the log:\n{text}"
    return index


def sleeper(word):
    return argv("/bin/sh", "-c", f"echo {word} up; exec sleep 1000")


@pytest.mark.timeout(30)
def test_start_in_dependency_order_and_stop_in_reverse(master):
    # Written in the reverse of the order they must start in.
    m = master(f"""
[services.c]
command = {sleeper("c")}
after = ["b"]

[services.b]
command = {sleeper("b")}
after = ["a"]

[services.a]
command = {sleeper("a")}
""")
    pids = {name: m.wait_state(name, "RUNNING")["pid"] for name in "abc"}
    events = m.events()
    assert first(events, "a", "RUNNING") < first(events, "b", "STARTING")
    assert first(events, "b", "RUNNING") < first(events, "c", "STARTING")
    text = m.log_text()
    assert log_index(text, "a: spawned") < log_index(text, "b: spawned") \
        < log_index(text, "c: spawned")
    m.wait_log(r"c\[\d+\] +c up")

    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    assert not os.path.exists(m.socket)
    assert not any(map(pid_alive, pids.values()))
    text = m.log_text()
    # Each one has stopped before the one it runs after is asked to stop.
    assert log_index(text, "c: stopping pid") < log_index(text, "c: stopped (SIGTERM)") \
        < log_index(text, "b: stopping pid") < log_index(text, "b: stopped (SIGTERM)") \
        < log_index(text, "a: stopping pid") < log_index(text, "a: stopped (SIGTERM)") \
        < log_index(text, "all services stopped")


@pytest.mark.timeout(30)
def test_dependent_of_a_python_service_waits_for_its_ready(master):
    m = master(f"""
[services.slow]
service = "corral_test_services:make_slow"
args = {{ delay = 0.3 }}

[services.dependent]
command = {sleeper("dependent")}
after = ["slow"]

[services.py_dependent]
service = "corral_test_services:make_chatty"
args = {{ word = "pydep" }}
after = ["slow"]
""", files=services_module())
    for name in ("slow", "dependent", "py_dependent"):
        m.wait_state(name, "RUNNING")
    events = m.events()
    starting = events[first(events, "slow", "STARTING")]
    ready = events[first(events, "slow", "RUNNING")]
    for name in ("dependent", "py_dependent"):
        assert first(events, "slow", "RUNNING") < first(events, name, "STARTING")
    assert ready["time"] - starting["time"] >= 0.29
    text = m.log_text()
    assert log_index(text, "slow start done") < log_index(text, "slow: ready") \
        < log_index(text, "dependent: spawned") < log_index(text, "dependent up")
    assert log_index(text, "slow: ready") < log_index(text, "py_dependent: spawned")


@pytest.mark.timeout(30)
def test_dependents_of_a_fatal_service_are_not_started(master):
    m = master(f"""
[services.base]
service = "corral_test_services:make_bootfail"

[services.top]
command = {sleeper("top")}
after = ["base"]
""", files=services_module())
    m.wait_state("base", "FATAL")
    wait_until(lambda: "not started" in m.status("top")["description"], dump=m.output,
               message="top given up on")
    row = m.status("top")
    assert row["state"] == "STOPPED" and row["pid"] is None
    assert "top up" not in m.log_text()
    m.wait_log(r"top: not started: base is FATAL")
