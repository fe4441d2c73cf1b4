"""sdnotify: the settled rule, the STATUS text, and a real datagram socket."""

import asyncio
import socket
import types

import pytest

from corral.supervisor import sdnotify
from corral.core.states import State
from corral.supervisor.subscriptions import Topic

pytestmark = pytest.mark.timeout(10)


def rec(name, state, after=(), autostart=True):
    spec = types.SimpleNamespace(after=tuple(after), order_after=(), autostart=autostart)
    return types.SimpleNamespace(name=name, service=name, state=state, spec=spec)


def fake_master(*records, shutting_down=False):
    by_name = {r.name: r for r in records}
    logged = []
    return types.SimpleNamespace(
        records=by_name, shutting_down=shutting_down, event_topic=Topic(), log=logged.append,
        logged=logged, instances_of=lambda name: [r for r in records if r.service == name])


S = State


@pytest.mark.parametrize("records, expected", [
    ([rec("a", S.RUNNING), rec("b", S.RUNNING)], True),
    ([rec("a", S.RUNNING), rec("b", S.STARTING)], False),
    ([rec("a", S.RUNNING), rec("b", S.WAITING)], False),   # about to spawn
    ([rec("a", S.FATAL), rec("b", S.EXITED), rec("c", S.BACKOFF)], True),
    ([rec("a", S.STOPPED, autostart=False), rec("b", S.RUNNING)], True),
    # waits for a dependency that is not coming up soon: settled
    ([rec("db", S.BACKOFF), rec("web", S.WAITING, after=["db"])], True),
    ([rec("db", S.FATAL), rec("web", S.WAITING, after=["db"])], True),
    ([rec("db", S.BACKOFF), rec("mid", S.WAITING, after=["db"]),
      rec("top", S.WAITING, after=["mid"])], True),
    # waits for a dependency that is starting: not yet
    ([rec("db", S.STARTING), rec("web", S.WAITING, after=["db"])], False),
    ([rec("a", S.STOPPING)], False),
    ([], True),
])
def test_settled(records, expected):
    assert sdnotify.settled(fake_master(*records)) is expected


def test_status_text():
    m = fake_master(rec("a", S.RUNNING), rec("b", S.RUNNING), rec("c", S.STARTING),
                    rec("d", S.FATAL), rec("e", S.BACKOFF))
    assert sdnotify.status_text(m, True) == "2 running, 1 starting, 1 backoff, 1 fatal; " \
                                            "not up: d, e"
    assert sdnotify.status_text(m, False).startswith("starting: 2 running")
    many = fake_master(*[rec(f"x{i}", S.FATAL) for i in range(8)], shutting_down=True)
    assert sdnotify.status_text(many, True) == \
        "stopping: 8 fatal; not up: x0, x1, x2, x3, x4 and 3 more"


@pytest.fixture
def listener(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "n.sock"))
    sock.settimeout(2)
    yield sock, str(tmp_path / "n.sock")
    sock.close()


def received(sock):
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode().split("\n"))
    except BlockingIOError:
        pass
    return out


def test_ready_once_then_status_changes_then_reload_and_stop(listener):
    sock, path = listener
    a = rec("a", S.STARTING)
    m = fake_master(a)
    n = sdnotify.Notifier(path)
    n.watch(m)
    assert received(sock) == [["STATUS=starting: 1 starting"]]
    a.state = S.RUNNING
    m.event_topic.publish([{}])
    m.event_topic.publish([{}])                           # no change: nothing sent
    assert received(sock) == [["READY=1", "STATUS=1 running"]]

    async def reload():
        async with n.reloading():
            a.state = S.STARTING
        a.state = S.RUNNING
    asyncio.run(reload())
    got = received(sock)
    assert got[0][0] == "RELOADING=1" and got[0][1].startswith("MONOTONIC_USEC=")
    assert got[1] == ["READY=1", "STATUS=1 starting"]
    m.shutting_down = True
    n.stopping()
    assert received(sock) == [["STOPPING=1", "STATUS=stopping: 1 running"]]
    n.close()


def test_abstract_address_and_environment(monkeypatch):
    name = "corral-unit-test-abstract"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        env = {"NOTIFY_SOCKET": "@" + name, "OTHER": "x"}
        n = sdnotify.Notifier.from_environment(env)
        assert env == {"OTHER": "x"}                         # children do not get it
        n.send("READY=1")
        sock.settimeout(2)
        assert sock.recv(100) == b"READY=1"
        n.close()
    finally:
        sock.close()
    assert sdnotify.Notifier.from_environment({}).address is None


def test_send_failure_logged_once_never_raises(tmp_path):
    m = fake_master(rec("a", S.RUNNING))
    n = sdnotify.Notifier(str(tmp_path / "nobody.sock"))
    n.watch(m)
    n.send("STATUS=x")
    n.stopping()
    assert len(m.logged) == 1 and "cannot notify systemd" in m.logged[0]
    sdnotify.Notifier(None).send("READY=1")                 # disabled: nothing at all
