"""corral top's rendering and keys (corral/cli/topview.py), without a terminal or a master.

The live loop over a real master, through a pty, is tests/integration/test_terminal.py.
"""

import re

import pytest

from corral.cli import topview
from corral.cli.topview import View
from tests.unit.test_cli import error, fake, ok  # noqa: F401 (fake is a fixture)

pytestmark = pytest.mark.timeout(30)

_ANSI = re.compile(r"\033\[[0-9;?]*[A-Za-z]")


def row(name, state="RUNNING", pid=100, cpu=0.0, rss=1 << 20, restarts=0, description=""):
    return {"name": name, "service": name.split(":")[0], "state": state, "pid": pid, "uptime": 5.0,
            "restarts": restarts, "cpu_percent": cpu, "rss": rss, "description": description,
            "last_exit": None}


ITEMS = [row("db", cpu=1.0, rss=50 << 20), row("web:0", cpu=30.0, rss=10 << 20, restarts=2),
         row("web:1", "BACKOFF", pid=None, cpu=None, rss=None, restarts=7, description="exit 1"),
         row("cron", "FATAL", pid=None, cpu=None, rss=None, description="exited 6 times in 10 s")]


def names(items):
    return [item["name"] for item in items]


@pytest.mark.parametrize("sort, order", [
    ("config", ["db", "web:0", "web:1", "cron"]),
    ("name", ["cron", "db", "web:0", "web:1"]),
    ("state", ["cron", "web:1", "db", "web:0"]),  # problems first, then the master's order
    ("cpu", ["web:0", "db", "web:1", "cron"]),
    ("rss", ["db", "web:0", "web:1", "cron"]),
    ("restarts", ["web:1", "web:0", "db", "cron"]),
])
def test_sort_orders(sort, order):
    assert names(topview.visible(ITEMS, sort)) == order


def test_filter_matches_name_state_and_description_in_any_case():
    assert names(topview.visible(ITEMS, text="WEB")) == ["web:0", "web:1"]
    assert names(topview.visible(ITEMS, text="fatal")) == ["cron"]
    assert names(topview.visible(ITEMS, text="6 times")) == ["cron"]
    assert topview.visible(ITEMS, text="nothing like it") == []


def test_keys_from_one_read():
    assert topview.keys(b"jk\x1b[A\x1b[B\x1b[5~\x1b[6~q") == ["j", "k", "up", "down", "pgup", "pgdn", "q"]
    assert topview.keys(b"\x1b") == ["esc"]
    assert topview.keys(b"/we\x7f\r") == ["/", "w", "e", "backspace", "enter"]
    assert topview.keys(b"\x1b[15~r") == ["esc", "r"]  # an unknown sequence (F5) is skipped whole
    assert topview.keys("é".encode()) == ["é"]


def test_moves_and_actions_on_the_selection():
    view = View()
    assert view.rows(ITEMS) and view.selected == "db"
    for key, selected in (("down", "web:0"), ("j", "web:1"), ("end", "cron"), ("down", "cron"),
                          ("up", "web:1"), ("home", "db"), ("k", "db"), ("pgdn", "cron")):
        assert view.key(key, ITEMS) is None
        assert view.selected == selected, key
    assert view.key("r", ITEMS) == ("restart", "cron")
    assert view.key("s", ITEMS) == ("start", "cron")
    assert view.key("x", ITEMS) == ("stop", "cron")
    assert view.key("q", ITEMS) == ("quit",)
    assert View().key("r", []) is None  # nothing selected, nothing asked


def test_sort_follow_and_a_selection_that_goes_away():
    view = View()
    view.key("o", ITEMS)
    assert view.sort == "name" and view.selected == "db"  # the selection stays on its row
    for _ in topview.SORTS[1:]:
        view.key("o", ITEMS)
    assert view.sort == "config"
    view.key("f", ITEMS)
    assert view.follow is False
    view.key("f", ITEMS)
    assert view.follow is True
    view.selected = "web:1"
    assert names(view.rows(ITEMS[:2])) == ["db", "web:0"] and view.selected == "db"


def test_the_filter_applies_as_typed_enter_keeps_it_esc_puts_back():
    view = View()
    for key in ["/", "w", "e", "b", "x", "backspace"]:
        view.key(key, ITEMS)
    assert view.typing == "web" and view.filter == "web"
    assert names(view.rows(ITEMS)) == ["web:0", "web:1"] and view.selected == "web:0"
    assert view.key("q", ITEMS) is None and view.filter == "webq"  # typed, not quit
    view.key("backspace", ITEMS)
    view.key("enter", ITEMS)
    assert view.typing is None and view.filter == "web"
    for key in ["/", "c", "r", "esc"]:
        view.key(key, ITEMS)
    assert view.filter == "web" and view.typing is None
    view.key("esc", ITEMS)  # Esc outside typing clears the filter
    assert view.filter == ""


def test_frame_fits_the_terminal_and_marks_the_selection():
    view = View()
    view.key("down", ITEMS)
    logs = [{"time": 0, "line": f"line {i}"} for i in range(50)]
    lines = topview.frame(view, ITEMS, logs, "web:0", "/run/c.sock", (80, 20), now=0)
    assert len(lines) == 20
    assert all(len(line) <= 79 for line in lines)  # never the last column
    assert lines[0].startswith("corral top  /run/c.sock  4 instances: 2 RUNNING, 1 BACKOFF, 1 FATAL")
    assert lines[1].split()[:3] == ["NAME", "STATE", "PID"]
    assert lines[3].startswith("> web:0") and lines[2].startswith("  db")
    assert lines[6] == "-- logs: web:0 (following)"
    assert lines[-2].endswith("line 49") and lines[7].endswith(f"line {50 - 12}")  # the newest that fit
    assert lines[-1] == topview.FOOTER[:79]


def test_frame_cuts_wide_and_hostile_text():
    items = [row("web", description="\u6f22\u5b57" * 40)]
    logs = [{"time": 0, "line": "evil \x1b[2J\x1b]0;title\x07 and\ttab"}]
    lines = topview.frame(View(), items, logs, "web", "s", (60, 8), colour=True, now=0)
    assert len(lines) == 8
    for line in lines:
        plain = _ANSI.sub("", line)
        width = sum(2 if "\u4e00" <= ch <= "\u9fff" else 1 for ch in plain)
        assert width <= 59, plain
    assert "\u6f22" in lines[2]  # cut inside the description, not before it
    joined = "\n".join(lines)
    assert "\x1b[2J" not in joined and "\x07" not in joined and "\x1b]" not in joined
    assert "evil ?[2J?]0;title? and" in _ANSI.sub("", joined)


def test_frame_scrolls_the_table_to_keep_the_selection_shown():
    items = [row(f"w:{i}") for i in range(40)]
    view = View()
    for _ in range(30):
        view.key("down", items)
    lines = topview.frame(view, items, [], None, "s", (60, 24), now=0)
    table = lines[2:2 + 10]  # (24 - 4) // 2 rows of the table
    assert "> w:30" in "\n".join(table) and lines[2 + 10].startswith("-- logs")
    view.key("home", items)
    lines = topview.frame(view, items, [], None, "s", (60, 24), now=0)
    assert lines[2].startswith("> w:0")


@pytest.mark.parametrize("size", [(1, 1), (10, 3), (5, 4), (200, 5)])
def test_tiny_terminals_get_a_frame_of_their_size(size):
    lines = topview.frame(View(), ITEMS, [{"time": 0, "line": "x"}], "db", "s", size, now=0)
    assert len(lines) == size[1]
    assert all(len(line) <= max(1, size[0] - 1) for line in lines)


def test_colour_marks_states_and_reverses_the_selection():
    view = View()
    lines = topview.frame(view, ITEMS, [], None, "s", (120, 12), colour=True, now=0)
    assert lines[2].startswith("\033[7m> db") and lines[2].endswith("\033[0m")
    assert "\033[31mFATAL\033[0m" in lines[5]
    plain = topview.frame(View(), ITEMS, [], None, "s", (120, 12), colour=False, now=0)
    assert [_ANSI.sub("", line) for line in lines] == plain


def test_snapshot_is_plain_and_whole():
    logs = [{"time": 0, "line": "x" * 300}, {"dropped": 3}]
    text = topview.snapshot(View(filter="web"), ITEMS, logs, "web:0")
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "4 instances: 2 RUNNING, 1 BACKOFF, 1 FATAL"
    assert [line.split()[0] for line in lines[1:4]] == ["NAME", "web:0", "web:1"]
    assert lines[4] == "-- logs: web:0" and lines[5].endswith("x" * 300)
    assert lines[6] == "[corral: 3 lines dropped: this client fell behind]"


def test_footer_says_what_is_typed_or_answered():
    view = View()
    view.key("/", ITEMS)
    view.key("d", ITEMS)
    assert topview.footer(view).startswith("filter: d_")
    view.key("enter", ITEMS)
    view.message = "web:0: RUNNING"
    assert topview.footer(view) == "web:0: RUNNING"
    assert topview.log_title(View(follow=False), "db") == "-- logs: db (paused: f to follow)"


# -- the live view's requests, against a fake master (no terminal) ------------------


def make_top(path, monkeypatch):
    from types import SimpleNamespace

    from corral.cli import top

    monkeypatch.setattr(top, "STATUS_TIMEOUT", 0.3)
    args = SimpleNamespace(names=[], interval=1.0)
    return top.Top(path, args, View(), SimpleNamespace(colour=False))


def test_a_master_that_is_gone_or_hangs_is_said_and_tried_again(short_dir, monkeypatch):
    import os
    import socket

    path = os.path.join(short_dir, "c.sock")
    view = make_top(path, monkeypatch)
    view.poll()
    assert view.items == [] and view.trouble.endswith("no such socket; trying again")
    hung = socket.socket(socket.AF_UNIX)
    hung.bind(path)
    hung.listen(4)  # accepts (in the backlog), never answers
    try:
        view.poll()
        assert view.trouble == "no answer within 0.3 s; trying again" and view.client is None
    finally:
        hung.close()


def test_an_action_is_answered_later_on_its_own_connection(fake, monkeypatch):
    import select

    def handler(request):
        if request["cmd"] == "restart":
            return [ok(request, [{"name": "web", "state": "RUNNING", "ok": True, "message": ""}])]
        return [error(request, "no_such_service", "no service matches 'x'")]

    master = fake(handler)
    view = make_top(master.path, monkeypatch)
    view.act("restart", "web")
    assert view.view.message == "restart web: asked"
    (client,) = view.actions
    while not view.answered(client):
        select.select([client], [], [], 5)
    assert view.view.message == "web: RUNNING" and view.actions == {}
    view.act("stop", "x")
    (client,) = view.actions
    while not view.answered(client):
        select.select([client], [], [], 5)
    assert view.view.message == "stop x: no service matches 'x'"
    assert [r["cmd"] for r in master.requests] == ["restart", "stop"]
