"""The `corral` command against a fake master serving canned replies."""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from corral.cli import render
from corral.cli.client import Client, Dropped, NoMaster
from corral.cli import discovery
from corral.cli.main import build_parser, main
from corral.errors import ControlError

pytestmark = pytest.mark.timeout(30)

STATUS = [
    {
        "name": "web:0",
        "service": "web",
        "state": "RUNNING",
        "pid": 4242,
        "uptime": 7380.0,
        "restarts": 0,
        "last_exit": None,
        "cpu_percent": 1.5,
        "rss": 12_900_000,
        "description": "http on :8080",
    },
    {
        "name": "worker-long-name:1",
        "service": "worker-long-name",
        "state": "BACKOFF",
        "pid": None,
        "uptime": None,
        "restarts": 12,
        "last_exit": "exit 3",
        "cpu_percent": None,
        "rss": None,
        "description": "",
    },
]


class FakeMaster:
    """Serves a unix socket in a thread; `handler(request) -> [message, ...]`.

    Messages are dicts (sent as JSON lines) or bytes (sent raw). After the
    messages the connection is closed, which ends any stream.
    """

    def __init__(self, path, handler):
        self.path = path
        self.handler = handler
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.sock.settimeout(0.1)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(5)
                buffer = b""
                try:
                    while b"\n" not in buffer:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        buffer += chunk
                except OSError:
                    continue
                if b"\n" not in buffer:
                    continue
                request = json.loads(buffer.split(b"\n", 1)[0])
                self.requests.append(request)
                for message in self.handler(request):
                    data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
                    try:
                        conn.sendall(data)
                    except OSError:
                        break

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def ok(request, result):
    return {"id": request["id"], "ok": True, "result": result}


def error(request, code, message):
    return {"id": request["id"], "ok": False, "error": {"code": code, "message": message}}


@pytest.fixture
def fake(short_dir, monkeypatch):
    """fake(handler) starts a FakeMaster at $CORRAL_SOCKET and returns it."""
    masters = []
    monkeypatch.delenv("NO_COLOR", raising=False)

    def start(handler, name="corral.sock", env=True):
        path = os.path.join(short_dir, name)
        master = FakeMaster(path, handler)
        masters.append(master)
        if env:
            monkeypatch.setenv("CORRAL_SOCKET", path)
        return master

    yield start
    for master in masters:
        master.close()


def canned(results):
    """A handler answering each command from a dict cmd -> result."""

    def handler(request):
        return [ok(request, results[request["cmd"]])]

    return handler


# -- rendering -------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, text",
    [
        (None, "-"),
        (0, "0.0s"),
        (12.34, "12.3s"),
        (65, "1m 05s"),
        (2 * 3600 + 3 * 60 + 9, "2h 03m"),
        (3 * 86400 + 4 * 3600 + 59, "3d 4h"),
    ],
)
def test_duration(seconds, text):
    assert render.duration(seconds) == text


@pytest.mark.parametrize(
    "nbytes, text", [(None, "-"), (512, "512B"), (4096, "4.0K"), (12_900_000, "12.3M"), (3 << 30, "3.0G")]
)
def test_size(nbytes, text):
    assert render.size(nbytes) == text


def test_status_table_is_aligned(fake, capsys):
    fake(canned({"status": STATUS}))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "\033[" not in out  # not a tty: no colour
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "CPU", "RSS", "DESCRIPTION"]
    assert lines[1].split() == ["web:0", "RUNNING", "4242", "2h", "03m", "0", "1.5%", "12.3M", "http", "on", ":8080"]
    assert lines[2].split() == ["worker-long-name:1", "BACKOFF", "-", "-", "12", "-", "-", "last", "exit:", "exit", "3"]
    # every column starts at the same offset on every line
    for column in ("STATE", "DESCRIPTION"):
        start = lines[0].index(column)
        assert lines[1][start - 2 : start] == "  " and lines[1][start] != " "
    assert lines[1].index("RUNNING") == lines[2].index("BACKOFF") == lines[0].index("STATE")


def test_status_colour_only_on_tty_and_without_no_color(monkeypatch):
    table = render.status_table(STATUS, colour=True)
    assert "\033[32mRUNNING\033[0m" in table and "\033[33mBACKOFF\033[0m" in table
    plain = render.status_table(STATUS, colour=False)
    # colour does not move columns
    strip = table.replace("\033[32m", "").replace("\033[33m", "").replace("\033[0m", "")
    assert strip == plain

    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert render.use_colour(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not render.use_colour(Tty())


def test_status_json_and_names(fake, capsys):
    master = fake(canned({"status": STATUS}))
    assert main(["status", "web", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == STATUS
    assert master.requests == [{"id": 1, "cmd": "status", "args": {"names": ["web"]}}]


DETAIL = {**STATUS[0], "since": 1_795_000_000.0, "config": "/srv/shop/corral.toml", "kind": "command",
          "command": ["redis-server", "--port", "6390", "--save", ""], "class": None,
          "after": ["db"], "requires": [], "group": None, "sockets": ["tcp://127.0.0.1:8000"],
          "transitions": [{"time": 1_795_000_000.5, "name": "web:0", "service": "web",
                           "from": "STARTING", "to": "BACKOFF", "pid": None, "exit": "exit 1",
                           "reason": "exit 1 after 0.20 s, within start_seconds = 1: a failed start"}],
          "log": [{"time": 1_795_000_000.4, "name": "web:0", "service": "web", "pid": 42,
                   "stream": "err", "line": "bind: address in use"}]}


def test_status_of_one_name_asks_for_the_detailed_view(fake, capsys):
    master = fake(canned({"status": [DETAIL]}))
    assert main(["status", "web:0"]) == 0
    out = capsys.readouterr().out
    assert master.requests[-1]["args"] == {"names": ["web:0"], "detail": True}
    lines = out.splitlines()
    assert lines[0] == "\u25cf web:0 - command: redis-server --port 6390 --save ''"
    assert "    Config: /srv/shop/corral.toml" in lines
    assert any(line.startswith("     State: RUNNING since ") for line in lines)
    assert "     After: db" in lines and "   Sockets: tcp://127.0.0.1:8000" in lines
    at = lines.index("Recent transitions:")
    assert lines[at + 1].endswith("STARTING -> BACKOFF  exit 1 after 0.20 s, within start_seconds = 1: "
                                  "a failed start")
    at = lines.index("Last 1 log lines:")
    assert lines[at + 1].endswith(" web:0 bind: address in use")
    # several names, a glob, 'all' or --json: the table (or the rows) as before
    for argv in (["status", "web", "db"], ["status", "web:*"], ["status", "all"], ["status", "web", "--json"]):
        main(argv)
        assert "detail" not in master.requests[-1]["args"], argv
    capsys.readouterr()
    assert main(["status", "--detail", "--json"]) == 0
    assert master.requests[-1]["args"] == {"detail": True}
    assert json.loads(capsys.readouterr().out) == [DETAIL]


def test_detail_without_process_history_or_lines():
    item = {"name": "cron", "state": "STOPPED", "since": None, "kind": "python",
            "class": "app.Cron", "command": None, "restarts": 0}
    text = render.detail(item, unicode=False)
    assert text.splitlines()[0] == "* cron - python: app.Cron"
    assert "Recent transitions: none since the master started" in text and "Log: no lines yet" in text
    assert "PID" not in text


def test_status_check(fake, capsys):
    fake(canned({"status": STATUS}))
    assert main(["status", "--check"]) == 1
    capsys.readouterr()


def test_status_check_all_running(fake, capsys):
    fake(canned({"status": STATUS[:1]}))
    assert main(["status", "--check", "web"]) == 0


def test_options_before_and_after_the_command(fake, short_dir, capsys):
    master = fake(canned({"status": STATUS}), env=False)
    assert main(["--socket", master.path, "--json", "status"]) == 0
    assert json.loads(capsys.readouterr().out) == STATUS
    assert main(["status", "--socket", master.path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == STATUS


# -- exit codes ---------------------------------------------------------------------


def test_error_reply_exits_1_with_one_line(fake, capsys):
    fake(lambda request: [error(request, "no_such_service", "no service named 'nope'")])
    assert main(["restart", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "corral: error: no service named 'nope'\n"


def test_actions_print_one_line_per_item(fake, capsys):
    result = [
        {"name": "web:0", "state": "RUNNING", "ok": True, "message": ""},
        {"name": "web:1", "state": "FATAL", "ok": False, "message": "exited 6 times in 10 s"},
    ]
    master = fake(canned({"start": result, "stop": result[:1]}))
    assert main(["start", "web"]) == 1
    assert capsys.readouterr().out == "web:0: RUNNING\nweb:1: FATAL: exited 6 times in 10 s\n"
    assert main(["stop", "web", "db"]) == 0
    assert capsys.readouterr().out == "web:0: RUNNING\n"
    assert master.requests[1]["args"] == {"names": ["web", "db"]}


def test_signal_arguments(fake, capsys):
    master = fake(canned({"signal": [{"name": "web:0", "state": "RUNNING", "ok": True, "message": ""}]}))
    assert main(["signal", "HUP", "web"]) == 0
    assert main(["signal", "9", "web", "db"]) == 0
    assert main(["signal", "-15", "web"]) == 0
    assert [r["args"] for r in master.requests] == [
        {"names": ["web"], "signal": "HUP"},
        {"names": ["web", "db"], "signal": 9},
        {"names": ["web"], "signal": 15},
    ]


def test_no_socket_exits_3_naming_the_path(short_dir, monkeypatch, capsys):
    path = os.path.join(short_dir, "missing.sock")
    monkeypatch.setenv("CORRAL_SOCKET", path)
    assert main(["status"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("corral: error: no master answering on ") and path in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_refused_exits_3(short_dir, monkeypatch, capsys):
    path = os.path.join(short_dir, "dead.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # bound, never listening: a master that died
    dead.close()
    assert main(["status", "--socket", path]) == 3
    assert path in capsys.readouterr().err


def test_closed_before_reply_exits_3(fake, capsys):
    master = fake(lambda request: [])
    assert main(["status"]) == 3
    assert master.path in capsys.readouterr().err


def test_partial_reply_exits_3(fake, capsys):
    fake(lambda request: [b'{"id": 1, "ok": tr'])
    assert main(["tree"]) == 3
    capsys.readouterr()


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["start"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["logs", "-n", "-3"])
    assert exc.value.code == 2
    capsys.readouterr()


# -- socket discovery -----------------------------------------------------------------


def parse(*argv):
    return build_parser().parse_args(list(argv))


def find_socket(args, environ, cwd):
    """The first place discovery would try."""
    return discovery.places(args, environ, cwd)[0][0]


def test_discovery_order(short_dir):
    config = os.path.join(short_dir, "app.toml")
    with open(config, "w") as file:
        file.write('[corral]\nsocket = "run/ctl.sock"\n')
    env = {"CORRAL_SOCKET": "/tmp/env.sock"}
    cwd = "/somewhere"
    assert find_socket(parse("--socket", "s.sock", "-c", config, "status"), env, cwd) == "/somewhere/s.sock"
    assert find_socket(parse("-c", config, "status"), env, cwd) == "/tmp/env.sock"
    assert find_socket(parse("status", "-c", config), {}, cwd) == os.path.join(short_dir, "run/ctl.sock")
    assert find_socket(parse("status"), {}, cwd) == "/somewhere/corral.sock"
    assert find_socket(parse("status"), {"CORRAL_SOCKET": ""}, cwd) == "/somewhere/corral.sock"


def test_discovery_config_without_socket_is_beside_it(short_dir):
    """Without a socket setting, the default of socketpath: beside the config,
    then under $XDG_RUNTIME_DIR, whatever the current folder is."""
    toml = os.path.join(short_dir, "app.toml")
    with open(toml, "w") as file:
        file.write('[services.db]\ncommand = ["true"]\n')
    py = os.path.join(short_dir, "shop.py")
    with open(py, "w") as file:
        file.write("application = None\n")
    env = {"XDG_RUNTIME_DIR": "/run/user/7"}
    paths, how, explicit = discovery.places(parse("status", "-c", toml), env, "/w")
    assert paths[0] == os.path.join(short_dir, "app.sock") and explicit and how == f"config {toml}"
    assert paths[1].startswith("/run/user/7/corral/app-") and paths[1].endswith(".sock")
    assert discovery.places(parse("status", "-c", py), {}, "/w")[0] == [os.path.join(short_dir, "shop.sock")]


def test_discovery_missing_config_is_a_usage_error(short_dir, capsys):
    assert main(["status", "-c", os.path.join(short_dir, "none.toml")]) == 2
    assert "none.toml: no such file" in capsys.readouterr().err


def test_discovery_in_the_current_folder(short_dir):
    """No option: ./corral.sock, then the default place of each config here."""
    for name in ("b.py", "a.toml", "notes.txt"):
        open(os.path.join(short_dir, name), "w").close()
    paths, how, explicit = discovery.places(parse("status"), {}, short_dir)
    assert paths == [os.path.join(short_dir, name) for name in ("corral.sock", "a.sock", "b.sock")]
    assert not explicit and how == "the current folder"


def test_no_master_lists_every_place_tried(short_dir, monkeypatch, capsys):
    monkeypatch.delenv("CORRAL_SOCKET", raising=False)
    config = os.path.join(short_dir, "app.py")
    open(config, "w").close()
    runtime = os.path.join(short_dir, "run")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    assert main(["status", "-c", config]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"(socket from config {config})" in err
    assert f"{short_dir}/app.sock: no such socket" in err and f"{runtime}/corral/app-" in err


def test_two_masters_in_one_folder_is_a_usage_error(fake, short_dir, monkeypatch, capsys):
    monkeypatch.delenv("CORRAL_SOCKET", raising=False)
    for name in ("a", "b"):
        open(os.path.join(short_dir, name + ".toml"), "w").close()
        fake(canned({"version": {"version": "0.1.0", "pid": 1}}), name=name + ".sock", env=False)
    monkeypatch.chdir(short_dir)
    assert main(["version"]) == 2
    assert "say which with -c CONFIG" in capsys.readouterr().err
    os.unlink(os.path.join(short_dir, "b.toml"))  # one config here: its master
    assert main(["version"]) == 0
    assert "master pid 1" in capsys.readouterr().out


def test_discovery_via_config_end_to_end(fake, short_dir, monkeypatch, capsys):
    master = fake(canned({"version": {"version": "0.1.0", "pid": 77}}), name="m.sock", env=False)
    monkeypatch.delenv("CORRAL_SOCKET", raising=False)
    config = os.path.join(short_dir, "corral.toml")
    with open(config, "w") as file:
        file.write('[corral]\nsocket = "m.sock"\n')
    monkeypatch.chdir("/")
    assert main(["version", "-c", config]) == 0
    assert capsys.readouterr().out == "corral 0.1.0 (master pid 77)\n"
    assert len(master.requests) == 1


def test_discovery_env_end_to_end(fake, short_dir, monkeypatch, capsys):
    fake(canned({"version": {"version": "0.1.0", "pid": 5}}), name="env.sock")  # sets $CORRAL_SOCKET
    monkeypatch.chdir(short_dir)  # ./corral.sock does not exist: only the variable finds the master
    assert main(["version"]) == 0
    assert "master pid 5" in capsys.readouterr().out


def test_bad_toml_is_one_line_error(short_dir, monkeypatch, capsys):
    monkeypatch.delenv("CORRAL_SOCKET", raising=False)
    config = os.path.join(short_dir, "bad.toml")
    with open(config, "w") as file:
        file.write("[corral\n")
    assert main(["status", "-c", config]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"corral: error: config {config}: ") and err.count("\n") == 1


# -- logs and events -------------------------------------------------------------------


def log(text, pid=4242, time_=1_795_000_000.123, stream="out"):
    return {"time": time_, "name": "web:0", "service": "web", "pid": pid, "stream": stream, "line": text}


def test_log_line_format():
    item = log("hello")
    expected_time = render.timestamp(item["time"])
    assert expected_time.endswith(".123") and len(expected_time) == 23
    assert render.log_line(item) == f"{expected_time} web:0 hello"
    assert render.log_line(item, width=8, date=False) == f"{expected_time[11:]} web:0    hello"
    assert render.log_line(log("x", pid=None, stream="log")) == f"{expected_time} web:0 x"


def test_log_line_colours_by_name_and_by_what_the_line_says():
    info = render.log_line(log("INFO:app:listening on 8000", stream="err"), colour=True)
    name = f"\033[{render.colour_of('web:0')}mweb:0\033[0m"
    assert info.endswith(f" {name} INFO:app:listening on 8000")  # stderr alone is no alarm
    assert render.log_line(log("ERROR:app:db down"), colour=True).endswith("\033[31mERROR:app:db down\033[0m")
    assert render.log_line(log("Traceback (most recent call last):", stream="err"), colour=True).endswith(
        "\033[31mTraceback (most recent call last):\033[0m")
    assert "\033[33m" in render.log_line(log("WARNING:app:slow"), colour=True)


def test_name_colours_are_the_foregrounds():
    from corral.supervisor import logs

    for name in ("web:0", "db", "corral", "a-very-long-service-name:12"):
        assert render.colour_of(name) == logs.color_of(name)


def test_event_line():
    item = {"time": 1_795_000_000.5, "name": "web:0", "service": "web", "from": "RUNNING",
            "to": "BACKOFF", "pid": 42, "exit": "exit 1"}
    text = render.event_line(item, width=7)
    assert text.endswith(" web:0   RUNNING -> BACKOFF  pid 42  exit 1")
    item.update(to="STARTING", pid=43, reason="spawned, pid 43")  # the reason says it: no repeats
    assert render.event_line(item).endswith(" web:0 RUNNING -> STARTING  spawned, pid 43")


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200),
                                           ("1h30m", 5400), ("1d", 86400), ("0.5s", 0.5)])
def test_since_durations(text, seconds):
    from corral.cli.streams import duration

    assert duration(text) == seconds


@pytest.mark.parametrize("argv", [["logs", "--since", "10x"], ["logs", "--since", "m"], ["logs", "--grep", "("]])
def test_bad_logs_filters_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    capsys.readouterr()


def test_logs_since_and_grep_filter_on_the_client(fake, capsys):
    now = time.time()
    history = [log("old match", time_=now - 3600), log("new match", time_=now - 60),
               log("new other", time_=now - 30), log("newest match", time_=now - 1)]
    master = fake(canned({"logs": history}))
    assert main(["logs", "--since", "10m", "--grep", "match"]) == 0
    assert [line.split(" ", 3)[3] for line in capsys.readouterr().out.splitlines()] == ["new match", "newest match"]
    assert master.requests[0]["args"]["lines"] >= 1 << 20  # all the master has
    assert main(["logs", "--grep", "match", "-n", "1"]) == 0
    assert capsys.readouterr().out.endswith(" web:0 newest match\n")


def test_names_are_aligned(fake, capsys):
    items = [log("a"), {**log("b"), "name": "corral"}, {**log("c"), "name": "worker-long:1"}]
    fake(canned({"logs": items}))
    assert main(["logs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len({line.rindex(" ") for line in lines}) == 1, lines


def test_logs_follow_with_dropped_notice(fake, capsys):
    def handler(request):
        rid = request["id"]
        return [
            ok(request, [log("one"), log("two")]),
            {"id": rid, "stream": log("three")},
            {"id": rid, "dropped": 5},
            {"id": rid, "stream": log("nine", stream="err")},
        ]

    master = fake(handler)
    assert main(["logs", "web", "-n", "10", "-f"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 3)[3] for line in lines if not line.startswith("[")] == [
        "one",
        "two",
        "three",
        "nine",
    ]
    assert lines[3] == "[corral: 5 lines dropped: this client fell behind]"
    assert master.requests[0]["args"] == {"name": "web", "lines": 10, "follow": True}


def test_logs_without_follow(fake, capsys):
    master = fake(canned({"logs": [log("a")]}))
    assert main(["logs"]) == 0
    assert capsys.readouterr().out.endswith(" web:0 a\n")
    assert master.requests[0]["args"] == {}  # the master's defaults: nothing to send


def test_client_stream_yields_dropped_marker(fake):
    def handler(request):
        return [ok(request, []), {"id": request["id"], "dropped": 2}, {"id": request["id"], "stream": {"x": 1}}]

    master = fake(handler)
    with Client(master.path) as client:
        assert list(client.stream("events", follow=True)) == [[], Dropped(2), {"x": 1}]


def test_client_call_raises_control_error(fake):
    master = fake(lambda request: [error(request, "bad_argument", "logs: bad value")])
    with Client(master.path) as client:
        with pytest.raises(ControlError) as exc:
            client.call("logs", lines=-1)
    assert exc.value.code == "bad_argument"


def test_client_no_master(short_dir):
    with pytest.raises(NoMaster) as exc:
        Client(os.path.join(short_dir, "none.sock"))
    assert "none.sock" in str(exc.value)


def test_events_are_json_lines(fake, capsys):
    events = [
        {"time": 1.5, "name": "web:0", "service": "web", "from": "STARTING", "to": "RUNNING", "pid": 3, "exit": None},
        {"time": 2.5, "name": "web:0", "service": "web", "from": "RUNNING", "to": "BACKOFF", "pid": 3, "exit": "exit 1"},
    ]

    def handler(request):
        return [ok(request, events[:1]), {"id": request["id"], "dropped": 1}, {"id": request["id"], "stream": events[1]}]

    master = fake(handler)
    assert main(["events", "-f", "-n", "0"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line) for line in captured.out.splitlines()] == events
    assert "1 lines dropped" in captured.err  # notices keep stdout pure JSON
    assert master.requests[0]["args"] == {"lines": 0, "follow": True}


def test_ctrl_c_while_following_is_quiet(fake, monkeypatch, capsys):
    fake(canned({}))

    def interrupted(self, cmd, **args):
        yield []
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "stream", interrupted)
    assert main(["logs", "-f"]) == 130
    assert capsys.readouterr().err == ""


# -- tree, reload, version, reopen --------------------------------------------------------


TREE = {
    "name": "shop",
    "children": [
        {
            "name": "db",
            "kind": "command",
            "state": "RUNNING",
            "pid": 10,
            "class": None,
            "children": [],
            "instances": [{"name": "db:0", "state": "RUNNING", "pid": 10}],
        },
        {
            "name": "web",
            "kind": "python",
            "state": "RUNNING",
            "pid": None,
            "class": "myapp.Web",
            "children": [{"name": "http", "class": "TCPServer", "children": [{"name": "h", "class": "H", "children": []}]}],
            "instances": [{"name": "web:0", "state": "RUNNING", "pid": 11}, {"name": "web:1", "state": "FATAL", "pid": None}],
            "after": ["db"], "requires": ["db"], "group": "shop",
        },
    ],
}


def test_tree(fake, capsys):
    fake(canned({"tree": TREE}))
    assert main(["tree"]) == 0
    text = capsys.readouterr().out
    assert render.tree(TREE, unicode=False) == textwrap.dedent(
        """\
        shop
        |- db [command]  RUNNING  pid 10
        `- web [python myapp.Web]  RUNNING  (after db; requires db; group shop)
           |- web:0  RUNNING  pid 11
           |- web:1  FATAL
           `- http (TCPServer)
              `- h (H)"""
    )
    assert text.splitlines()[0] == "shop" and "web:1  FATAL" in text


def test_reload_summary(fake, capsys):
    fake(canned({"reload": {"added": ["cache"], "removed": [], "changed": ["web"], "unchanged": ["db", "x"]}}))
    assert main(["reload"]) == 0
    assert capsys.readouterr().out == "added: cache\nchanged: web\nunchanged: 2\n"
    assert render.reload_summary({"added": [], "removed": [], "changed": [], "unchanged": ["a"]}) == (
        "no changes (1 unchanged)"
    )
    assert render.reload_summary({"added": ["b"], "removed": [], "changed": [], "unchanged": [],
                                  "not_applied": ["http", "http_auth"]}) == (
        "added: b\nunchanged: 0\nnot applied, the master must be started again for: [corral] http, http_auth")


def test_master_changes_names_the_corral_keys_that_differ():
    from corral.spec import MasterSpec, master_changes

    old = MasterSpec(socket="/a.sock", http="127.0.0.1:9001")
    assert master_changes(old, old) == []
    assert master_changes(old, MasterSpec(socket="/a.sock", http="127.0.0.1:9002", http_token="t" * 16,
                                          on_fatal="shutdown")) == ["on_fatal", "http", "http_token"]


def test_scale_sends_the_service_and_count_and_prints_each_instance(fake, capsys):
    seen = []

    def handler(request):
        seen.append((request["cmd"], request["args"]))
        return [ok(request, [
            {"name": "web:0", "state": "RUNNING", "ok": True, "message": ""},
            {"name": "web:2", "state": "STOPPED", "ok": True, "message": "removed (web scaled to 2)"}])]

    fake(handler)
    assert main(["scale", "web", "2"]) == 0
    assert seen == [("scale", {"service": "web", "count": 2})]
    assert capsys.readouterr().out == "web:0: RUNNING\nweb:2: STOPPED: removed (web scaled to 2)\n"
    fake(lambda request: [error(request, "bad_argument", "scale web: the count must be 1 or more")],
         name="second.sock")
    assert main(["scale", "web", "-1"]) == 1  # a count, not an option: the master says why
    assert capsys.readouterr().err == "corral: error: scale web: the count must be 1 or more\n"
    with pytest.raises(SystemExit) as usage:
        main(["scale", "web", "many"])
    assert usage.value.code == 2 and "not a number: 'many'" in capsys.readouterr().err
    assert render.reload_summary({"scaled": ["web"], "unchanged": ["db"]}) == "scaled: web\nunchanged: 1"


def test_reload_config_error(fake, capsys):
    fake(lambda request: [error(request, "config_error", "app.toml: service 'web': key 'x': unknown key")])
    assert main(["reload"]) == 1
    assert capsys.readouterr().err == "corral: error: app.toml: service 'web': key 'x': unknown key\n"


def test_reopen_and_shutdown_print_nothing(fake, capsys):
    master = fake(canned({"reopen": None, "shutdown": None}))
    assert main(["reopen"]) == 0
    assert main(["shutdown"]) == 0
    assert capsys.readouterr().out == ""
    assert [r["cmd"] for r in master.requests] == ["reopen", "shutdown"]


def test_version_without_master(short_dir, monkeypatch, capsys):
    monkeypatch.setenv("CORRAL_SOCKET", os.path.join(short_dir, "none.sock"))
    assert main(["version"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "corral 0.1.0\n"
    assert "no master answering" in captured.err and "none.sock" in captured.err


# -- run ------------------------------------------------------------------------------


def test_run_passes_absolute_paths(fake_run_master, short_dir, monkeypatch):
    monkeypatch.chdir(short_dir)
    assert main(["run", "app.toml", "--socket", "c.sock", "--log-dir", "logs"]) == 0
    assert fake_run_master == [
        (
            "app.toml",
            {"socket": os.path.join(short_dir, "c.sock"), "logfile": None, "log_dir": os.path.join(short_dir, "logs"),
             "daemon": False, "pidfile": None, "uid": None, "gid": None, "umask": None, "rundir": None,
             "reset_state": False},
        )
    ]


def test_run_daemon_options(fake_run_master, short_dir, monkeypatch):
    monkeypatch.chdir(short_dir)
    argv = ["run", "app.toml", "-d", "--pidfile", "c.pid", "--uid", "nobody", "--gid", "0",
            "--umask", "0o027", "--rundir", "run"]
    assert main(argv) == 0
    kwargs = fake_run_master[0][1]
    assert kwargs["daemon"] is True
    assert kwargs["pidfile"] == os.path.join(short_dir, "c.pid")
    assert kwargs["rundir"] == os.path.join(short_dir, "run")
    assert (kwargs["uid"], kwargs["gid"], kwargs["umask"]) == ("nobody", "0", 0o27)
    assert main(["run", "app.toml", "-n", "--umask", "022"]) == 0
    assert (fake_run_master[1][1]["daemon"], fake_run_master[1][1]["umask"]) == (False, 0o22)


@pytest.mark.parametrize("argv", [["-d", "-n"], ["--umask", "999"], ["--umask", "u=rwx"]])
def test_run_bad_daemon_options_are_usage_errors(fake_run_master, argv):
    with pytest.raises(SystemExit) as exc:
        main(["run", "app.toml", *argv])
    assert exc.value.code == 2
    assert fake_run_master == []


def test_run_config_error(fake_run_master, capsys):
    assert main(["run", "bad.toml"]) == 1
    err = capsys.readouterr().err
    assert err == "  context line\ncorral: error: bad.toml: service 'web': key 'colour': unknown key\n"


# -- startup cost -------------------------------------------------------------------------


HEAVY_ROOTS = ("asyncio", "multiprocess", "multiprocessing", "dill", "psutil", "dataclasses", "hashlib")
HEAVY_CORRAL = ("corral.supervisor", "corral.config", "corral.workers", "corral.services", "corral.service",
                "corral.settings", "corral.plugins")


def imported_by(argv, cwd, env=None):
    """The modules `python -m corral ARGV` imports, from -X importtime (the real entry point)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "corral", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=20, env={**os.environ, **(env or {})})
    names = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return done.returncode, names[1:]  # the first row is the header


def test_client_path_imports_nothing_heavy(short_dir):
    """No client command loads asyncio, multiprocess or the master side; run and check do."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for name, text in (("app.toml", "[services.x]\ncommand = ['true']\n"), ("app.py", "application = None\n")):
        with open(os.path.join(short_dir, name), "w") as file:
            file.write(text)
    sock = os.path.join(short_dir, "x.sock")
    runs = [["status", "--socket", sock], ["status"], ["-c", "app.toml", "status"], ["-c", "app.py", "logs", "-f"],
            ["events", "--socket", sock], ["start", "web", "--socket", sock], ["version"], ["_names"],
            ["top", "--socket", sock], ["shell", "--socket", sock]]
    for argv in runs:
        code, names = imported_by(argv, short_dir, {"PYTHONPATH": root, "CORRAL_SOCKET": ""})
        assert code in (0, 3), (argv, code)
        heavy = [n for n in names if n.split(".")[0] in HEAVY_ROOTS or n.startswith(HEAVY_CORRAL)]
        assert heavy == [], (argv, heavy)
    code, names = imported_by(["check", "app.toml"], short_dir, {"PYTHONPATH": root})
    assert code == 0 and "corral.config" in names  # the test can see heavy imports


def test_socket_path_longer_than_sun_path(fake, short_dir, capsys):
    fake(canned({"version": {"version": "0.1.0", "pid": 9}}), env=False)
    deep = os.path.join(short_dir, "d" * 60, "e" * 60)
    os.makedirs(deep)
    os.symlink(short_dir, os.path.join(deep, "link"))
    path = os.path.join(deep, "link", "corral.sock")
    assert len(path) > 108
    assert main(["version", "--socket", path]) == 0
    assert "master pid 9" in capsys.readouterr().out
    assert main(["status", "--socket", os.path.join(deep, "none.sock")]) == 3
    assert "none.sock" in capsys.readouterr().err


def test_run_elsewhere_than_linux_is_one_line(fake_run_master, monkeypatch, capsys):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert main(["run", "app.toml"]) == 1
    err = capsys.readouterr().err
    assert err == ("corral: error: corral run needs Linux (5.3 or later: pidfd_open, prctl, /proc); "
                   "this is darwin. The client commands work anywhere.\n")
    assert fake_run_master == []


def test_every_command_of_the_table_is_on_the_command_line():
    """protocol.REGISTRY is the one table: each command is a subcommand with
    each of its arguments, and each has a handler."""
    from corral import protocol
    from corral.cli import parser

    assert set(parser.CLIENT_HANDLERS) == set(protocol.REGISTRY)
    assert set(protocol.COMMANDS) == set(protocol.REGISTRY)
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, command in protocol.REGISTRY.items():
        dests = {action.dest for action in sub.choices[name]._actions}
        assert {arg.name for arg in command.args} <= dests, name


def test_a_new_argument_in_the_table_reaches_the_wire(fake, monkeypatch, capsys):
    """An argument added to the table is parsed and sent with no CLI change."""
    from corral import protocol

    signal_command = protocol.REGISTRY["signal"]
    extra = protocol.Arg("dry_run", bool, False, "say what would be signalled", ("--dry-run",))
    monkeypatch.setitem(protocol.REGISTRY, "signal", signal_command._replace(args=(*signal_command.args, extra)))
    master = fake(canned({"signal": []}))
    assert main(["signal", "HUP", "web", "--dry-run"]) == 0
    assert main(["signal", "HUP", "web", "--group"]) == 0
    assert [r["args"] for r in master.requests] == [
        {"signal": "HUP", "names": ["web"], "dry_run": True},
        {"signal": "HUP", "names": ["web"], "group": True}]


def test_events_are_text_on_a_terminal(fake, monkeypatch, capsys):
    events = [{"time": time.time(), "name": "web:0", "service": "web", "from": "STARTING", "to": "RUNNING",
               "pid": 3, "exit": None}]
    fake(canned({"events": events}))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert main(["events"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} web:0 STARTING -> RUNNING  pid 3\n", out), out


def test_every_command_is_in_docs_cli_md():
    from corral.cli.completion import grammar

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", "cli.md")) as file:
        doc = file.read()
    parser = build_parser()
    commands, _, _ = grammar(parser)
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in commands:
        assert re.search(rf"^\| `{name}[ `]", doc, re.MULTILINE), name
        for action in sub.choices[name]._actions:
            if action.option_strings and action.dest != "help":
                assert any(re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", doc)
                           for flag in action.option_strings), (
                    name, action.option_strings)


def test_the_table_keeps_the_wire_format():
    """REGISTRY's request view is the table the protocol had before it (docs/protocol.md)."""
    from corral import protocol

    names, many = (list, None), (list, [])
    history = {"lines": (int, 100), "follow": (bool, False)}
    assert protocol.COMMANDS == {
        "status": {"names": many, "detail": (bool, False)}, "start": {"names": names}, "stop": {"names": names},
        "restart": {"names": names, "rolling": (bool, False)},
        "scale": {"service": (str, None), "count": (int, None)},
        "signal": {"names": names, "signal": ((str, int), None), "group": (bool, False)},
        "logs": {"name": ((str, type(None)), None), **history, "after": (int, 0)}, "events": history,
        "tree": {}, "reload": {}, "reopen": {}, "shutdown": {}, "version": {},
        "upgrade": {"python": ((str, type(None)), None)},
    }
    assert protocol.STREAMING == {"logs", "events"}
    assert protocol.parse_request(b'{"id": 1, "cmd": "logs"}') == (1, "logs", {"name": None, **{
        "lines": 100, "follow": False, "after": 0}})
