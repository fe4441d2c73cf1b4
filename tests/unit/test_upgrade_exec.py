"""upgrade.exec_now when the exec itself fails, in-process: the old image
takes its pipes back, its signal mask and its fds' close-on-exec, and
supervises on (the other failures are tests/integration/test_upgrade.py's)."""

import asyncio
import os
import signal
import socket
import sys

import pytest

from corral.spec import Config, MasterSpec, ServiceSpec
from corral.supervisor import upgrade
from corral.supervisor.master import Master
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(30)

TALK = "import time\ni = 0\nwhile True:\n    i += 1\n    print(f'line {i}')\n    time.sleep(0.01)\n"
SPEC = ServiceSpec(name="talk", command=(sys.executable, "-u", "-c", TALK))


def said(master):
    return [d["line"] for d in master.loghub.tail("talk", 10**6) if d["stream"] == "out"]


class Control:
    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def listening_fd(self):
        return self.sock.fileno()


def test_an_exec_that_fails_leaves_the_old_image_supervising(tmp_path):
    async def main():
        master = Master(Config(str(tmp_path / "c.toml"), MasterSpec(), (SPEC,)))
        master.attach_loop(asyncio.get_running_loop())
        master.start_autostart()
        record = master.records["talk"]
        await eventually(lambda: record.state.value == "RUNNING", "talk running")
        await eventually(lambda: len(said(master)) >= 3, "its lines")
        control = Control()
        run = type("Run", (), {"argv": ["run", "c.toml"], "launch_cwd": str(tmp_path), "image": 0,
                               "undertaker": None, "pidfile": None, "control": control,
                               "http_token": None})()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
        error = upgrade.exec_now(master, run, str(tmp_path / "no-such-python"))
        assert "No such file" in error
        assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == mask
        child = master._children[record.pid]
        assert not os.get_inheritable(child.pidfd) and not os.get_inheritable(control.sock.fileno())
        seen = len(said(master))
        await eventually(lambda: len(said(master)) > seen + 3, "its lines read again")
        lines = said(master)
        assert lines == [f"line {i}" for i in range(1, len(lines) + 1)]
        assert any("upgrade failed: cannot exec" in d["line"]
                   for d in master.loghub.tail(None, 10**6))
        master.begin_shutdown()
        assert await master.done == 0
        master.close()
        master.loghub.close()
        control.sock.close()

    asyncio.run(asyncio.wait_for(main(), 25))
