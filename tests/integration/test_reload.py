"""Reload with real processes: by control request and by SIGHUP."""

import os
import re
import signal
import sys

import pytest

from corral.errors import E_CONFIG, ControlError
from tests.integration.harness import argv, pid_alive, wait_until

WORKERS = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, "fixtures",
                                       "workers"))


def service(name, word=None, after=()):
    text = f"""
[services.{name}]
command = {argv("/bin/sh", "-c", f"echo {word or name} up; exec sleep 1000")}
stop_timeout = 2
"""
    return text + (f"after = {argv(*after)}\n" if after else "")


BEFORE = service("keep") + service("change", "old") + service("remove")
AFTER = service("keep") + service("change", "new") + service("add", after=["keep"])


def write(m, text):
    with open(m.config, "w") as f:
        f.write(text)


def check_applied(m, pids):
    rows = m.status()
    assert sorted(rows) == ["add", "change", "keep"]
    assert rows["keep"]["pid"] == pids["keep"] and rows["keep"]["state"] == "RUNNING"
    assert not pid_alive(pids["change"]) and not pid_alive(pids["remove"])
    m.wait_state("change", "RUNNING")
    m.wait_state("add", "RUNNING")
    assert m.status("change")["pid"] != pids["change"]
    m.wait_log(r"change\[\d+\] +new up")
    m.wait_log(r"add\[\d+\] +add up")
    with pytest.raises(ControlError) as info:
        m.call("status", names=["remove"])
    assert info.value.code == "no_such_service"


def running_pids(m, names):
    return {name: m.wait_state(name, "RUNNING")["pid"] for name in names}



def edit(m, name, old, new):
    """Replace old by new in the file `name` of the master's folder."""
    path = os.path.join(m.dir, name)
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace(old, new))

@pytest.mark.timeout(30)
def test_reload_applies_only_the_difference_and_refuses_a_broken_config(master):
    m = master(BEFORE)
    pids = running_pids(m, ("keep", "change", "remove"))

    write(m, AFTER)
    result = m.call("reload")
    assert result == {"added": ["add"], "removed": ["remove"], "changed": ["change"],
                      "scaled": [], "unchanged": ["keep"]}
    check_applied(m, pids)

    # A broken config is refused and changes nothing.
    now = {name: row["pid"] for name, row in m.status().items()}
    for broken in ("[services.x\ncommand = 1", service("keep") + "\n[services.bad]\nfoo = 1\n",
                   service("keep", after=["nowhere"])):
        write(m, broken)
        with pytest.raises(ControlError) as info:
            m.call("reload")
        assert info.value.code == E_CONFIG
        assert {name: row["pid"] for name, row in m.status().items()} == now
        assert all(row["state"] == "RUNNING" for row in m.status().values())
    m.wait_log(r"reload refused: ", count=3)
    assert all(map(pid_alive, now.values()))

    # Reloading the same file again changes nothing either.
    write(m, AFTER)
    assert m.call("reload")["unchanged"] == ["keep", "change", "add"]
    assert {name: row["pid"] for name, row in m.status().items()} == now


@pytest.mark.timeout(30)
def test_sighup_reloads(master):
    m = master(BEFORE)
    pids = running_pids(m, ("keep", "change", "remove"))
    write(m, AFTER)
    m.signal(signal.SIGHUP)
    m.wait_log(r"reload: added add; removed remove; changed change")
    wait_until(lambda: sorted(m.status()) == ["add", "change", "keep"], dump=m.output,
               message="the reload applied")
    check_applied(m, pids)

    # A broken config on SIGHUP: logged, refused, the master goes on.
    now = {name: row["pid"] for name, row in m.status().items()}
    write(m, "this is = = not toml")
    m.signal(signal.SIGHUP)
    m.wait_log(r"reload refused: .*invalid TOML")
    assert {name: row["pid"] for name, row in m.status().items()} == now
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


PY_CONFIG = '''
import corral


class Worker(corral.Service):
    def __init__(self, word):
        super().__init__()
        self.word = word

    def startService(self):
        super().startService()
        print(f"{self.name} says {self.word}", flush=True)


application = corral.Application("reloading")
for name, word in WORDS:
    worker = Worker(word)
    worker.setName(name)
    worker.setServiceParent(application)
'''


def py_config(words):
    return f"WORDS = {words!r}\n" + PY_CONFIG


@pytest.mark.timeout(30)
def test_reload_of_a_python_config_compares_the_trees(master):
    m = master(py_config([("keep", "same"), ("change", "old"), ("remove", "bye")]), suffix=".py")
    pids = running_pids(m, ("keep", "change", "remove"))
    # Loading the very same file again is no change at all.
    assert m.call("reload")["unchanged"] == ["keep", "change", "remove"]
    assert {name: row["pid"] for name, row in m.status().items()} == pids

    write(m, py_config([("keep", "same"), ("change", "new"), ("add", "hi")]))
    result = m.call("reload")
    assert result == {"added": ["add"], "removed": ["remove"], "changed": ["change"],
                      "scaled": [], "unchanged": ["keep"]}
    assert m.status("keep")["pid"] == pids["keep"]
    assert m.wait_state("change", "RUNNING")["pid"] != pids["change"]
    m.wait_state("add", "RUNNING")
    m.wait_log(r"change\[\d+\] +change says new")
    m.wait_log(r"add\[\d+\] +add says hi")
    assert not pid_alive(pids["remove"]) and not pid_alive(pids["change"])

    # The class's code changed: every service made of it runs the new code.
    write(m, py_config([("keep", "same"), ("change", "new"), ("add", "hi")]).replace(
        'print(f"{self.name} says {self.word}"', 'print(f"{self.name} now says {self.word}"'))
    assert m.call("reload")["changed"] == ["keep", "change", "add"]
    m.wait_log(r"keep\[\d+\] +keep now says same")

    write(m, "raise RuntimeError('broken on purpose')\n")
    with pytest.raises(ControlError) as info:
        m.call("reload")
    assert info.value.code == E_CONFIG and "broken on purpose" in info.value.message
    assert sorted(m.status()) == ["add", "change", "keep"]


WEBMOD = """
import corral
from wordmod import word  # a module of the user's that webmod uses: followed too


class Web(corral.Service):
    def startService(self):
        super().startService()
        print(f"web runs {VERSION} with {word()}", flush=True)


VERSION = "v1"


def make():
    return Web()
"""


@pytest.mark.timeout(60)
def test_reload_runs_changed_python_code_and_restarts_only_what_uses_it(master):
    m = master(service("cmd") + '[services.web]\nservice = "webmod:make"\n',
               files={"webmod.py": WEBMOD, "wordmod.py": 'def word():\n    return "w1"\n'},
               start=False)
    # With bytecode written, as on most hosts: an edit within the same second
    # as the import, of the same size, must still be seen.
    m.start(env={"PYTHONDONTWRITEBYTECODE": None})
    pids = running_pids(m, ("cmd", "web"))
    m.wait_log(r"web\[\d+\] +web runs v1 with w1")
    assert m.call("reload")["unchanged"] == ["cmd", "web"]

    edit(m, "webmod.py", '"v1"', '"v2"')
    assert m.call("reload") == {"added": [], "removed": [], "changed": ["web"],
                                "scaled": [], "unchanged": ["cmd"]}
    m.wait_log(r"web\[\d+\] +web runs v2 with w1")
    edit(m, "wordmod.py", '"w1"', '"w2"')
    assert m.call("reload")["changed"] == ["web"]
    m.wait_log(r"web\[\d+\] +web runs v2 with w2")
    assert m.status("cmd")["pid"] == pids["cmd"]  # not touched by any of it

    # A module that no longer imports: refused, and the code loaded before runs on.
    edit(m, "webmod.py", "def make():", "def make(:")
    with pytest.raises(ControlError) as info:
        m.call("reload")
    assert info.value.code == E_CONFIG and "SyntaxError" in info.value.message
    before = m.status("web")["pid"]
    m.call("restart", names=["web"])
    assert running_pids(m, ("web",))["web"] != before
    m.wait_log(r"web\[\d+\] +web runs v2 with w2", count=2)


@pytest.mark.timeout(30)
def test_sighup_during_shutdown_is_refused(master):
    stubborn = os.path.join(WORKERS, "stubborn.py")
    config = f"""
[services.stubborn]
command = {argv(sys.executable, stubborn)}
stop_timeout = 1
"""
    m = master(config)
    m.wait_log(r"stubborn parent \d+ child \d+")  # it ignores SIGTERM from now on
    m.signal(signal.SIGTERM)
    m.wait_log(r"stubborn: stopping pid")
    write(m, config + service("extra"))
    m.signal(signal.SIGHUP)
    m.wait_log(r"reload refused: shutting down")
    assert m.wait_exit() == 0
    text = m.log_text()
    assert "reload: added" not in text and "extra" not in text
    assert "stubborn: stopped (killed after its stop_timeout of 1 s)" in text


@pytest.mark.timeout(30)
def test_reload_names_the_corral_keys_it_does_not_apply(master):
    """[corral] is the master's own (the HTTP listener among it): a reload
    says which keys changed and need a master restart, and applies the
    services' changes as usual. The master's --socket and --logfile
    (the harness's) are no change of the file."""
    m = master("[corral]\non_fatal = \"stay\"\n" + service("keep"))
    m.wait_state("keep", "RUNNING")
    assert "not_applied" not in m.call("reload")
    write(m, "[corral]\non_fatal = \"shutdown\"\n"
             f"http = \"unix://{m.dir}/web.sock\"\nhttp_auth = \"none\"\n" + service("keep"))
    result = m.call("reload")
    assert result["not_applied"] == ["on_fatal", "http", "http_auth"]
    assert result["unchanged"] == ["keep"]
    m.wait_log(r"reload: \[corral\] on_fatal, http, http_auth changed: not applied; "
               r"they take effect when the master is started again")
    assert not os.path.exists(os.path.join(m.dir, "web.sock"))  # as it says: no listener
    done = m.cli("reload")
    assert done.returncode == 0
    assert done.stdout == ("no changes (1 unchanged)\nnot applied, the master must be started again for: "
                           "[corral] on_fatal, http, http_auth\n")


PROTO = """
import asyncio


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(b"v1 " + data)
"""

SERVERS = """
import asyncio
import corral
from proto import Echo


class Upper(asyncio.Protocol):  # a protocol class in the config itself
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(b"u1 " + data.upper())


application = corral.Application("shop")
for name, port, protocol in (("echo", {echo}, Echo), ("upper", {upper}, Upper)):
    server = corral.TCPServer(port, protocol, interface="127.0.0.1")
    server.setName(name)
    server.setServiceParent(application)
"""


def ask(port):
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"hi")
            return conn.recv(100)
    except OSError as exc:  # a restart under way: asked again
        return exc


@pytest.mark.timeout(60)
def test_reload_follows_the_code_a_built_in_server_is_given(master):
    """Issue 15 item 4: the service's class is corral's own TCPServer; the
    code it runs is a protocol class, from a module of the project or from
    the config. An edit to either is a change, and only its server restarts."""
    from tests.helpers import free_port

    echo, upper = free_port(), free_port()
    m = master(SERVERS.format(echo=echo, upper=upper), suffix=".py", files={"proto.py": PROTO},
               start=False)
    m.start(env={"PYTHONDONTWRITEBYTECODE": None})
    pids = running_pids(m, ("echo", "upper"))
    assert ask(echo) == b"v1 hi" and ask(upper) == b"u1 HI"
    assert m.call("reload")["unchanged"] == ["echo", "upper"]

    edit(m, "proto.py", 'b"v1 "', 'b"v2 "')  # the module the echo server's protocol is in
    # restart alone runs the code of the last load, and says so
    [done] = m.call("restart", names=["echo"])
    assert done["ok"] and f"{os.path.join(m.dir, 'proto.py')} changed since" in done["message"], done
    m.wait_log(r"echo: restarted, but it runs the code of the last load")
    assert ask(echo) == b"v1 hi"
    [done] = m.call("restart", names=["upper"])  # its code did not change: nothing to say
    assert done["ok"] and "changed since" not in done["message"]
    pids["upper"] = m.status("upper")["pid"]
    assert m.call("reload") == {"added": [], "removed": [], "changed": ["echo"],
                                "scaled": [], "unchanged": ["upper"]}
    wait_until(lambda: m.status("echo")["state"] == "RUNNING" and ask(echo) == b"v2 hi",
               dump=m.output, message="the echo server on the new code")
    assert m.status("upper")["pid"] == pids["upper"]
    edit(m, os.path.basename(m.config), 'b"u1 "', 'b"u2 "')  # a protocol class in the config
    assert m.call("reload")["changed"] == ["upper"]
    wait_until(lambda: m.status("upper")["state"] == "RUNNING" and ask(upper) == b"u2 HI",
               dump=m.output, message="the upper server on the new code")


@pytest.mark.timeout(30)
def test_reload_names_the_code_it_cannot_follow(master, tmp_path):
    """Issue 15 item 4: code a reload would not see change (a module from a
    folder beside the config's) is named at start and in reload's answer."""
    (tmp_path / "beside_mod.py").write_text("class Greeter:\n    word = 'hi'\n")
    m = master(f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
import corral, beside_mod

class Web(corral.Service):
    def startService(self):
        super().startService()
        print("web says", self.greeter.word, flush=True)

application = corral.Application("t")
web = Web()
web.setName("web")
web.greeter = beside_mod.Greeter()
web.setServiceParent(application)
""", suffix=".py")
    m.wait_state("web", "RUNNING")
    where = f"beside_mod ({tmp_path / 'beside_mod.py'}): outside the config's folder"
    m.wait_log(r"web: not followed by reload: " + re.escape(where))
    assert m.call("reload")["unfollowed"]["web"][0].startswith(where)
    done = m.cli("reload")
    assert done.returncode == 0 and f"not followed by reload in web: {where}" in done.stdout
