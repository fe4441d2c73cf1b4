"""systemd notify: a real master talking to a datagram socket that plays systemd."""

import os
import signal
import socket
import time

import pytest

from tests.integration.harness import DEADLINE, WaitTimeout, argv

WORKERS = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "fixtures",
                                       "workers"))


def services_file():
    with open(os.path.join(WORKERS, "corral_test_services.py")) as f:
        return {"corral_test_services.py": f.read()}


class FakeSystemd:
    """A bound AF_UNIX datagram socket; collects every message it receives."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.messages = []  # each a list of "NAME=value" lines

    def receive(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return
        self.messages.append(data.decode().split("\n"))

    def lines(self):
        return [line for message in self.messages for line in message]

    def wait_for(self, line, m, after=0, timeout=DEADLINE):
        """Index of the first message from `after` on that has `line`."""
        end = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self.messages[after:], after):
                if line in message:
                    return i
            left = end - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"no {line!r} from the master in {timeout} s; got "
                                  f"{self.messages}\n{m.output()}")
            self.receive(min(left, 0.2))

    def close(self):
        self.sock.close()


@pytest.fixture
def systemd_master(master):
    made = []

    def make(config_text, suffix=".toml", files=None, abstract=False):
        m = master(config_text, suffix=suffix, files=files, start=False)
        if abstract:
            name = f"corral-test-{os.getpid()}-{os.path.basename(m.dir)}"
            fake, env = FakeSystemd("\0" + name), "@" + name
        else:
            env = os.path.join(m.dir, "notify.sock")
            fake = FakeSystemd(env)
        made.append(fake)
        m.start(env={"NOTIFY_SOCKET": env})
        return m, fake

    yield make
    for fake in made:
        fake.close()


CONFIG = f"""
[services.db]
service = "corral_test_services:make_slow"
args = {{delay = 0.6}}

[services.web]
command = {argv("/bin/sh", "-c", 'echo "web sees NOTIFY_SOCKET=${NOTIFY_SOCKET:-unset}"; '
                'exec sleep 1000')}
after = ["db"]
numprocs = 2

[services.manual]
command = ["sleep", "1000"]
autostart = false
"""


@pytest.mark.timeout(40)
@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_status_reloading_stopping(systemd_master, abstract):
    m, fake = systemd_master(CONFIG, files=services_file(), abstract=abstract)
    ready = fake.wait_for("READY=1", m)
    # READY=1 came once every autostart instance was up, not before.
    rows = m.status()
    assert {name: row["state"] for name, row in rows.items()} == {
        "db": "RUNNING", "web:0": "RUNNING", "web:1": "RUNNING", "manual": "STOPPED"}
    before = [line for msg in fake.messages[:ready] for line in msg]
    assert any(line.startswith("STATUS=starting: ") for line in before), fake.messages
    assert "READY=1" not in before
    assert "STATUS=3 running, 1 stopped" in fake.messages[ready]
    m.wait_log(r"web sees NOTIFY_SOCKET=unset", count=2)  # workers do not inherit it

    # A state change after READY: a STATUS= line, no second READY=1.
    m.call("start", names=["manual"])
    fake.wait_for("STATUS=4 running", m, after=ready + 1)

    mark = len(fake.messages)
    m.call("reload")
    reloading = fake.wait_for("RELOADING=1", m, after=mark)
    assert any(line.startswith("MONOTONIC_USEC=") for line in fake.messages[reloading])
    fake.wait_for("READY=1", m, after=reloading + 1)

    mark = len(fake.messages)
    m.signal(signal.SIGTERM)
    stopping = fake.wait_for("STOPPING=1", m, after=mark)
    assert m.wait_exit() == 0
    fake.wait_for("STATUS=stopping: 4 stopped", m, after=stopping)
    assert fake.lines().count("READY=1") == 2   # start-up and the reload


@pytest.mark.timeout(30)
def test_ready_does_not_wait_for_a_crash_loop(systemd_master):
    # Python workers are RUNNING only once they say so: "bad" dies before that.
    m, fake = systemd_master("""
import os
import corral

class Bad(corral.Service):
    def startService(self):
        os._exit(3)

application = corral.Application("t")
good = corral.Service(); good.setName("good"); good.setServiceParent(application)
bad = Bad(); bad.setName("bad")
bad.supervise(backoff_initial=30, backoff_max=30).setServiceParent(application)
needs = corral.Service(); needs.setName("needs_bad")
needs.supervise(after=["bad"]).setServiceParent(application)
""", suffix=".py")
    ready = fake.wait_for("READY=1", m)
    status = [line for line in fake.messages[ready] if line.startswith("STATUS=")]
    assert status == ["STATUS=1 running, 1 waiting, 1 backoff; not up: bad"], fake.messages
    assert m.status("good")["state"] == "RUNNING"
    assert m.status("bad")["state"] == "BACKOFF"


@pytest.mark.timeout(30)
def test_unreachable_notify_socket_is_logged_once_and_ignored(master):
    m = master('[services.a]\ncommand = ["sleep", "1000"]\n', start=False)
    m.start(env={"NOTIFY_SOCKET": os.path.join(m.dir, "nobody-listens.sock")})
    m.wait_state("a", "RUNNING")
    m.call("stop", names=["a"])
    m.call("start", names=["a"])
    m.wait_log(r"corral\[\d+\] +a: spawned", count=2)
    assert m.log_text().count("cannot notify systemd") == 1
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
