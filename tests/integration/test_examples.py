"""The examples in examples/ run and serve, as the README promises."""

import os
import shutil
import socket

import pytest

from tests.helpers import free_port
from tests.integration.harness import Master, wait_until

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def read_all(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def run_example(path, env):
    """A master on an example file (not a copy: its relative paths must hold)."""
    m = Master("", suffix=".unused")
    m.config = os.path.abspath(path)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        m.start()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return m


@pytest.mark.timeout(30)
def test_echo_example_echoes():
    port = free_port()
    m = run_example(os.path.join(EXAMPLES, "echo.py"), {"ECHO_PORT": str(port)})
    try:
        m.wait_state("echo", "RUNNING")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            f = conn.makefile("rwb")
            assert f.readline().startswith(b"Welcome! There are currently 1 open")
            f.write(b"ping\n")
            f.flush()
            assert f.readline() == b"ping\n"
    finally:
        m.close()


@pytest.mark.timeout(30)
def test_poetry_example_serves_the_poem():
    port = free_port()
    m = run_example(os.path.join(EXAMPLES, "poetry", "poetry.py"), {"POETRY_PORT": str(port)})
    try:
        m.wait_state("fastpoetry", "RUNNING")
        with open(os.path.join(EXAMPLES, "poetry", "ecstasy.txt"), "rb") as f:
            assert read_all(port) == f.read()
        tree = m.call("tree")
        (node,) = tree["children"]
        assert [c["name"] for c in node["children"]] == ["poem", "listener"]
        m.wait_log(r"loaded a poem from")
    finally:
        m.close()


@pytest.mark.timeout(30)
def test_two_programs_example_starts_in_order():
    m = run_example(os.path.join(EXAMPLES, "two-programs.toml"), {})
    try:
        m.wait_state("checker", "RUNNING")
        events = [(e["name"], e["to"]) for e in m.events()]
        assert events.index(("web", "RUNNING")) < events.index(("checker", "STARTING"))
        wait_until(lambda: "web answered 200" in m.log_text(), dump=m.output)
        # web was RUNNING once it answered: the checker's first fetch found it.
        first = next(line for line in m.log_text().splitlines() if "checker" in line
                     and ("web answered" in line or "did not answer" in line))
        assert "web answered 200" in first, first
    finally:
        m.close()
        shutil.rmtree(os.path.join(EXAMPLES, "logs"), ignore_errors=True)
