"""The `ready`, `start_timeout` and `watchdog` settings, the environment they
give a worker, and the notify socket's sender check (no master needed)."""

import asyncio
import os
import socket
import stat
import textwrap

import pytest

from corral.config import load
from corral.errors import ConfigError
from corral.probes import Target
from corral.spec import ServiceSpec
from corral.kinds import READINESS_VARS
from corral.supervisor import spawn
from corral.supervisor.notify_socket import NotifySocket
from corral.readyspec import describe, parse_ready


@pytest.mark.parametrize("value, parsed", [
    ("notify", ("notify",)),
    ({"tcp": 8080}, ("tcp", Target("tcp", "127.0.0.1", 8080))),
    ({"tcp": "localhost:81"}, ("tcp", Target("tcp", "localhost", 81))),
    ({"http": "http://localhost/"}, ("http", Target("http", "localhost", 80, "/",
                                                    "http://localhost/"))),
])
def test_parse_ready(value, parsed):
    assert parse_ready(value) == parsed


@pytest.mark.parametrize("value, message", [
    ("tcp", "must be \"notify\", {tcp = PORT}"),
    ({"tcp": 0}, "tcp must be a port (1-65535)"),  # the forms in detail: test_probes.py
    ({"tcp": "db.example:5432"}, "must be an IP address or localhost"),
    ({"http": "https://127.0.0.1/"}, 'http must be a URL "http://HOST:PORT/PATH"'),
    ({"seconds": 2}, "{seconds = 2} is written start_seconds = 2"),  # one way to say it
    ({"tcp": 1, "seconds": 1}, "must be \"notify\""),
])
def test_parse_ready_errors(value, message):
    with pytest.raises(ValueError) as info:
        parse_ready(value)
    assert message in str(info.value)


def test_describe():
    assert describe(None) == "READY=1"
    assert describe(parse_ready({"tcp": "[::1]:80"})) == "tcp [::1]:80"
    assert describe(parse_ready({"http": "http://[::1]/x"})) == "http://[::1]/x"
    assert describe(("seconds", 1.5)) == "1.5 s up"


def _load(tmp_path, body):
    path = tmp_path / "corral.toml"
    path.write_text("[services.svc]\ncommand = ['true']\n" + textwrap.dedent(body))
    return load(path).services[0]


def test_toml_keys_and_defaults(tmp_path):
    spec = _load(tmp_path, "")  # a command: started once it stayed up 1 s
    assert (spec.ready, spec.start_timeout, spec.watchdog) == (("seconds", 1.0), 60.0, None)
    assert _load(tmp_path, "start_seconds = 2.5\n").ready == ("seconds", 2.5)
    assert _load(tmp_path, "start_seconds = 0\n").ready is None  # RUNNING at spawn
    assert _load(tmp_path, "ready = 'notify'\n").ready == ("notify",)  # no window then
    spec = _load(tmp_path, "ready = {tcp = 9000}\nstart_timeout = 5\nwatchdog = 2\n")
    assert (spec.ready, spec.start_timeout, spec.watchdog) == \
        (("tcp", Target("tcp", "127.0.0.1", 9000)), 5.0, 2.0)
    assert _load(tmp_path, "watchdog = 0\nstart_timeout = 0\n").watchdog is None


@pytest.mark.parametrize("body, key, message", [
    ("ready = 'tcp'\n", "ready", "must be \"notify\""),
    ("start_seconds = 5\nstart_timeout = 3\n", "start_timeout",
     "start_seconds = 5 can never pass within start_timeout = 3"),
    ("start_seconds = 90\n", "start_seconds", "within start_timeout = 60"),
    ("start_timeout = 0.5\n", "start_timeout",
     "start_seconds = 1 (the default for a command) can never pass within start_timeout = 0.5"),
    ("start_seconds = -1\n", "start_seconds", "must be >= 0"),
    ("start_seconds = 1\nready = 'notify'\n", "start_seconds",
     "give ready or start_seconds, not both"),
    ("start_timeout = -1\n", "start_timeout", "must be >= 0"),
    ("watchdog = 'often'\n", "watchdog", "must be a number"),
])
def test_toml_errors_name_the_key(tmp_path, body, key, message):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, body)
    assert info.value.key == key
    assert message in str(info.value)


def test_environment_of_commands_and_workers(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")  # the master's own: never passed on
    monkeypatch.setenv("WATCHDOG_USEC", "1")

    def ready_vars(spec):
        env = spawn.child_env(spec, "a", 0, "/tmp/x/notify")
        return {name: env[name] for name in READINESS_VARS if name in env}

    assert ready_vars(ServiceSpec(name="a", command=("true",))) == {}
    assert ready_vars(ServiceSpec(name="a", command=("true",), ready=("notify",))) == {
        "NOTIFY_SOCKET": "/tmp/x/notify"}
    assert ready_vars(ServiceSpec(name="a", command=("true",), watchdog=1.5)) == {
        "NOTIFY_SOCKET": "/tmp/x/notify", "WATCHDOG_USEC": "1500000"}
    assert ready_vars(ServiceSpec(name="a", tree=object(), watchdog=0.3)) == {
        "CORRAL_WATCHDOG_USEC": "300000"}


def test_notify_socket_knows_the_sender_and_cleans_up():
    async def main():
        got = asyncio.get_running_loop().create_future()
        sock = NotifySocket(asyncio.get_running_loop(),
                            lambda pid, lines: got.done() or got.set_result((pid, lines)))
        sock.open()
        try:
            assert stat.S_IMODE(os.stat(sock.dir).st_mode) == 0o700
            assert stat.S_IMODE(os.stat(sock.address).st_mode) == 0o600
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
                client.sendto(b"READY=1\nSTATUS=up\n", sock.address)
            pid, lines = await asyncio.wait_for(got, 5)
            assert pid == os.getpid() and lines == ["READY=1", "STATUS=up"]
            sock.share()
            assert stat.S_IMODE(os.stat(sock.dir).st_mode) == 0o711
            assert stat.S_IMODE(os.stat(sock.address).st_mode) == 0o666
        finally:
            folder = sock.dir
            sock.close()
        assert not os.path.exists(folder)

    asyncio.run(main())
