"""examples/twisted/ run under corral and answer real clients, as the README says."""

import os
import socket
import struct
import tempfile
import urllib.request

import pytest

from tests.helpers import free_port
from tests.integration.harness import wait_until
from tests.integration.test_examples import read_all, run_example
from tests.integration.test_plugins import PluginMaster, corral

pytestmark = pytest.mark.timeout(60)

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                                        "examples", "twisted"))


def example(name, **env):
    return run_example(os.path.join(EXAMPLES, name), {k: str(v) for k, v in env.items()})


def test_echo_tac_echoes():
    port = free_port()
    m = example("echo.tac", ECHO_PORT=port)
    try:
        m.wait_state("tcpserver", "RUNNING")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            f = conn.makefile("rwb")
            assert f.readline() == b"Welcome! There are currently 1 open connections.\n"
            f.write(b"ping\n")
            f.flush()
            assert f.readline() == b"ping\n"
    finally:
        m.close()


def test_service_tac_serves_files_with_twisted_web():
    port = free_port()
    m = example("service.tac", WEB_PORT=port)
    try:
        m.wait_state("tcpserver", "RUNNING")
        # The master's cwd is its folder (the harness's): the file server serves it.
        with open(os.path.join(m.dir, "hello.txt"), "w") as f:
            f.write("served by twisted.web\n")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=5) as reply:
            assert reply.read() == b"served by twisted.web\n"
    finally:
        m.close()


def dns_query(name, transport, port):
    """One A query over UDP or TCP with the bytes of RFC 1035; the answer's address."""
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + question + b"\0\1\0\1"
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(packet, ("127.0.0.1", port))
            reply, _ = sock.recvfrom(512)
    else:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(struct.pack(">H", len(packet)) + packet)
            size = struct.unpack(">H", sock.recv(2))[0]
            reply = b""
            while len(reply) < size:
                reply += sock.recv(size - len(reply))
    ident, flags, _, answers = struct.unpack(">HHHH", reply[:8])
    assert ident == 0x1234 and answers == 1, reply
    return socket.inet_ntoa(reply[-4:])


def free_tcp_and_udp_port():
    """A port free for TCP and UDP on all interfaces (dns.tac binds both there)."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        try:
            with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
                tcp.bind(("", port))
                udp.bind(("", port))
        except OSError:
            continue
        return port
    raise AssertionError("no port free for both TCP and UDP")


def test_dns_tac_answers_over_udp_and_tcp_from_one_worker():
    port = free_tcp_and_udp_port()
    m = example("dns.tac", DNS_PORT=port)
    try:
        m.wait_state("multiservice", "RUNNING")
        assert dns_query("corral.example", "udp", port) == "127.0.0.1"
        assert dns_query("other.example", "tcp", port) == "10.1.2.3"
    finally:
        m.close()


def test_fastpoetry_tac_serves_the_poem():
    port = free_port()
    m = example("fastpoetry.tac", POETRY_PORT=port)
    try:
        m.wait_state("multiservice", "RUNNING")
        with open(os.path.join(EXAMPLES, "ecstasy.txt"), "rb") as f:
            assert read_all(port) == f.read()
        m.wait_log(r"multiservice\[\d+\] +INFO .*: sending \d+ bytes of poetry")
        assert "loaded a poem from" in m.log_text()
    finally:
        m.close()


def test_logging_tac_logs_to_its_own_observer_and_to_corral():
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="corral-") as logs:
        m = example("logging.tac", ECHO_PORT=port, MY_LOG_DIR=logs)
        try:
            m.wait_state("echo", "RUNNING")
            mine = os.path.join(logs, "my.log")
            wait_until(lambda: os.path.exists(mine) and b"EchoFactory starting on"
                       in open(mine, "rb").read(), message="my.log has the start")
            assert "EchoFactory starting on" in m.log_text()
        finally:
            m.close()


def test_fastpoetry_twistd_plugin_runs_with_its_options():
    """examples/twisted/twisted/plugins/fastpoetry_plugin.py, as the README
    runs it: `corral run fastpoetry --port P --poem ecstasy.txt` from the
    example's folder, where twistd would find it too."""
    listed = corral("plugins", cwd=EXAMPLES)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("web ")  # corral's own first, then twistd's
    twistd = lines[lines.index("twistd plugins (IServiceMaker in twisted.plugins):") + 1:]
    assert "fastpoetry   A fast poetry service." in twistd
    assert any(line.startswith("web  ") and "(hidden by corral's 'web')" in line for line in twistd)

    shown = corral("run", "fastpoetry", "--help", cwd=EXAMPLES)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Usage: corral run [run options] fastpoetry [options]\n")
    assert "-p, --port=    The port number to listen on. [default: 10000]" in shown.stdout

    port = free_port()
    m = PluginMaster(["fastpoetry", "--port", str(port), "--poem", "ecstasy.txt"],
                     cwd=EXAMPLES).start()
    try:
        m.wait_state("fastpoetry", "RUNNING")
        with open(os.path.join(EXAMPLES, "ecstasy.txt"), "rb") as f:
            assert read_all(port) == f.read()
        m.wait_log(r"fastpoetry\[\d+\] +INFO .*: loaded a poem from: ecstasy.txt")
        # A restart makes the service again from the same options.
        first = m.status("fastpoetry")["pid"]
        assert m.cli("restart", "fastpoetry").returncode == 0
        wait_until(lambda: (row := m.status("fastpoetry"))["state"] == "RUNNING"
                   and row["pid"] != first, message="fastpoetry running again")
        with open(os.path.join(EXAMPLES, "ecstasy.txt"), "rb") as f:
            assert read_all(port) == f.read()
    finally:
        m.close()
