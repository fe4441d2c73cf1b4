"""A restart does not cut a request in flight: the stopping worker's server
drains (services/internet.py) before the worker exits, while the socket the
master holds queues new clients for the next worker."""

import socket
import threading

import pytest

from tests.helpers import free_port
from tests.integration.harness import ask

SLOW_SERVER = """
import asyncio, os
import corral
from corral.services.internet import TCPServer

class Slow(asyncio.Protocol):
    # Answers a line 0.5 s after it comes: a request in flight during a restart.
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        reply = f"{{os.getpid()}} done {{data.decode().strip()}}\\n".encode()
        asyncio.get_running_loop().call_later(0.5, self.transport.write, reply)

application = corral.Application("drain")
server = TCPServer({port}, Slow, interface="127.0.0.1", drain={drain})
server.setName("slow")
server.setServiceParent(application)
"""


def restart_mid_request(m, port):
    """(reply to a request sent before the restart, the restart's CLI result)."""
    old = m.wait_state("slow", "RUNNING")["pid"]
    replies = []
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"first\n")
    reader = threading.Thread(target=lambda: replies.append(_read_line(conn)))
    reader.start()
    done = m.cli("restart", "slow")
    reader.join(10)
    conn.close()
    assert m.status("slow")["pid"] not in (None, old)
    return replies[0], done, old


def _read_line(conn):
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = conn.recv(4096)
        except OSError as exc:
            return repr(exc)
        if not chunk:
            return f"closed after {data!r}"
        data += chunk
    return data.decode()


@pytest.mark.timeout(60)
def test_restart_waits_for_the_request_in_flight(master):
    port = free_port()
    m = master(SLOW_SERVER.format(port=port, drain=5), suffix=".py")
    m.wait_state("slow", "RUNNING")
    reply, done, old = restart_mid_request(m, port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert reply == f"{old} done first\n"  # answered by the old worker, whole
    assert "waiting up to 5 s for 1 open connection(s)" in m.log_text()
    assert ask(port, b"next", timeout=10).endswith(" done next")  # the new worker serves


@pytest.mark.timeout(60)
def test_drain_zero_cuts_the_request_as_twisted_would(master):
    # The control case: proves the test above can fail.
    port = free_port()
    m = master(SLOW_SERVER.format(port=port, drain=0), suffix=".py")
    m.wait_state("slow", "RUNNING")
    reply, done, _ = restart_mid_request(m, port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done first" not in reply
