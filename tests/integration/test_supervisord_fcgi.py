"""[fcgi-program:x] under corral: the master holds the socket and gives it to
the program as its stdin (fd 0), across restarts, as supervisord does."""

import socket
import sys

from tests.helpers import free_port, wait_until

APP = """
import os, socket
listener = socket.socket(fileno=0)
while True:
    conn, _ = listener.accept()
    conn.sendall(b"%d %s\\n" % (os.getpid(), os.environ.get("LISTEN_FDS", "-").encode()))
    conn.close()
"""


def ask(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return conn.makefile("rb").readline().split()


def test_the_socket_is_fd_0_and_outlives_the_program(master):
    port = free_port()
    m = master(f"[fcgi-program:app]\ncommand = {sys.executable} %(here)s/app.py\n"
               f"socket = tcp://127.0.0.1:{port}\nstartsecs = 0\n", suffix=".conf",
               files={"app.py": APP})
    m.wait_state("app", "RUNNING")
    first = m.status("app")["pid"]
    assert ask(port) == [str(first).encode(), b"-"]  # fd 0, not socket activation
    m.cli("restart", "app")
    wait_until(lambda: m.status("app")["pid"] not in (None, first)
               and m.status("app")["state"] == "RUNNING", message="app restarted")
    assert ask(port)[0] == str(m.status("app")["pid"]).encode()
