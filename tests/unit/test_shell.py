"""corral shell's lines, completion and script mode, against a fake master.

The prompt itself (readline, TAB, history, Ctrl-D) runs through a pty with
a real master in tests/integration/test_terminal.py.
"""

import io
import json
import sys

import pytest

from corral.cli import parser as grammar
from corral.cli.commands import Output
from corral.cli.main import main
from corral.cli.shell import Leave, Shell, history_path
from tests.unit.test_cli import STATUS, error, fake, ok  # noqa: F401 (fake is a fixture)

pytestmark = pytest.mark.timeout(30)


def make_shell(names=("web", "web:0", "web:1", "db")):
    parser, args = grammar.parse(["status"])
    shell = Shell("/nowhere.sock", args.reparse, parser, Output(io.StringIO()))
    shell.names = lambda: list(names)
    return shell


@pytest.mark.parametrize("before, expected", [
    ("sta", ["start", "status"]),
    ("restart w", ["web", "web:0", "web:1"]),
    ("restart web:0 d", ["db"]),
    ("stop ", ["all", "db", "web", "web:0", "web:1"]),
    ("logs --f", ["--follow"]),
    ("restart --r", ["--rolling"]),
    ("help st", ["start", "status", "stop"]),
    ("top d", ["db"]),
    ("tree ", []),
    ("q", ["quit"]),
])
def test_completion(before, expected):
    assert make_shell().candidates(before) == expected


def test_completion_offers_every_command_but_run_and_shell():
    offered = make_shell().candidates("")
    assert {"status", "restart", "logs", "top", "help", "quit", "exit", "check"} <= set(offered)
    assert not {"run", "shell", "_names"} & set(offered)


def test_lines_that_never_reach_the_master(capsys):
    shell = make_shell()
    assert shell.execute("") == 0 and shell.execute("   # a comment") == 0
    assert shell.execute("bogus web") == 2
    assert shell.execute("run app.toml") == 2
    assert shell.execute("shell") == 2
    assert shell.execute("stop 'web") == 2
    assert shell.execute("stop") == 2  # argparse: NAME is required
    err = capsys.readouterr().err
    assert "corral: error: unknown command 'bogus' (help lists them)" in err
    assert "corral: error: run: start a master from your system's shell" in err
    assert "corral: error: shell: this is corral shell already" in err
    assert "corral: error: stop 'web: No closing quotation" in err
    assert "corral stop: error: the following arguments are required: NAME" in err
    for word in ("quit", "exit", " quit  "):
        with pytest.raises(Leave):
            shell.execute(word)


def test_help_lists_the_commands_and_shows_one(capsys):
    shell = make_shell()
    assert shell.help([]) == 0
    listed = shell.out.stream.getvalue()
    assert "  restart " in listed and "  quit " in listed and "  run " not in listed
    assert shell.execute("help restart") == 0
    assert "--rolling" in capsys.readouterr().out


def test_script_mode_runs_each_line_on_a_fresh_connection(fake, monkeypatch, capsys):
    def handler(request):
        if request["cmd"] == "start":
            return [error(request, "no_such_service", "no service matches 'nope'")]
        return [ok(request, STATUS)]

    master = fake(handler)
    monkeypatch.setattr(sys, "stdin", io.StringIO("status\nstart nope\nstatus web:0 --json\nquit\nstatus\n"))
    assert main(["shell"]) == 0  # the last command's code, before quit
    out, err = capsys.readouterr()
    assert out.count("NAME") == 1 and "worker-long-name:1" in out
    assert json.loads(out[out.index("["):]) == STATUS
    assert "corral: error: no service matches 'nope'" in err
    assert [(r["cmd"], r.get("args")) for r in master.requests] == [
        ("status", {}), ("start", {"names": ["nope"]}), ("status", {"names": ["web:0"]})]
    monkeypatch.setattr(sys, "stdin", io.StringIO("start nope\n"))
    assert main(["shell"]) == 1


def test_history_lives_in_the_state_folder(monkeypatch):
    assert history_path({"XDG_STATE_HOME": "/s"}) == "/s/corral/shell_history"
    monkeypatch.setenv("HOME", "/home/ann")
    assert history_path({}) == "/home/ann/.local/state/corral/shell_history"
