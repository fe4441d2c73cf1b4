"""A Python config can say everything TOML can (issue 15 item 7): programs
as services (corral.Command) and the master's settings (configure())."""

import sys
import textwrap

import pytest

from corral import kinds
from corral.config import load
from corral.errors import ConfigError


def py(tmp_path, text):
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_commands_and_master_settings_in_a_python_config(tmp_path):
    (tmp_path / ".env").write_text("REGION=eu\n")
    config = load(py(tmp_path, f"""
        import corral
        application = corral.Application("shop").configure(
            socket="shop.sock", logfile="shop.log", log_dir="logs", on_fatal="shutdown",
            env_file=".env")
        corral.Command(["sleep", "1000"]).supervise(restart="always").setServiceParent(application)
        corral.Command({[sys.executable, "-c", "pass"]!r}, name="once").supervise(
            restart="never", sockets=["tcp://127.0.0.1:18765"], after=["sleep"]).setServiceParent(application)
        app = corral.Service(); app.setName("app"); app.setServiceParent(application)
        """))
    sleep, once, app = config.services
    assert sleep.name == "sleep" and sleep.kind is kinds.COMMAND
    assert sleep.command[0].endswith("/sleep") and sleep.command[1:] == ("1000",)
    assert once.command[0] == sys.executable and once.after == ("sleep",)
    assert once.sockets and dict(once.env) == {"REGION": "eu"}
    assert app.kind is kinds.PYTHON_TREE and dict(app.env) == {"REGION": "eu"}
    master = config.master
    assert master.socket == str(tmp_path / "shop.sock")
    assert master.logfile == str(tmp_path / "shop.log") and master.on_fatal == "shutdown"


@pytest.mark.parametrize("code, words", [
    ('corral.Command(["no-such-program-x"]).setServiceParent(application)',
     "service 'no-such-program-x': key 'command': "),
    ('corral.Command("").setServiceParent(application)', "key 'command': is empty"),
    ('application.configure(sockett="x.sock")', "unknown key 'sockett' (did you mean 'socket'?) in configure()"),
    ('application.configure(on_fatal="boom")', "key 'on_fatal': must be"),
])
def test_errors_name_the_service_or_key(tmp_path, code, words):
    path = py(tmp_path, f"""
        import corral
        application = corral.Application("shop")
        corral.Service().setServiceParent(application)
        {code}
        """)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert words in str(info.value), str(info.value)
