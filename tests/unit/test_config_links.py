"""`requires`, `on_fatal` and [groups.NAME] in TOML: what they load to, and
the errors that name the place."""

import textwrap

import pytest

from corral.config import load
from corral.errors import ConfigError
from corral.spec import GroupSpec


def toml(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


SHOP = """
[corral]
on_fatal = "shutdown"

[services.redis]
command = ["sleep", "1"]

[services.web]
command = ["sleep", "1"]
requires = ["redis"]

[services.a]
command = ["sleep", "1"]

[services.b]
command = ["sleep", "1"]

[groups.pair]
services = ["a", "b"]
strategy = "one_for_all"
max_restarts = 3
restart_window = 30
"""


def test_requires_is_also_after_and_groups_and_on_fatal_load(tmp_path):
    config = load(toml(tmp_path, SHOP))
    web = next(s for s in config.services if s.name == "web")
    assert web.requires == ("redis",) and web.after == ("redis",)
    assert config.master.on_fatal == "shutdown"
    assert config.groups == (GroupSpec("pair", ("a", "b"), "one_for_all", 3, 30),)


@pytest.mark.parametrize("body, words", [
    ('[services.x]\ncommand = ["sleep"]\nrequires = ["nope"]\n',
     "service 'x': key 'after': unknown service 'nope'"),
    ('[services.x]\ncommand = ["sleep"]\nrequires = ["x"]\n',
     "service 'x': key 'requires': a service cannot require itself"),
    ('[corral]\non_fatal = "explode"\n[services.x]\ncommand = ["sleep"]\n',
     "key 'on_fatal': must be"),
    ('[services.x]\ncommand = ["sleep"]\n[groups.g]\nservices = ["x", "y"]\n',
     "key 'groups.g.services': unknown service 'y'"),
    ('[services.x]\ncommand = ["sleep"]\n[groups.g]\nservices = ["x"]\nstrategy = "all"\n',
     "key 'groups.g.strategy': must be"),
    ('[services.x]\ncommand = ["sleep"]\n[groups.g]\nstrategy = "one_for_all"\n',
     "key 'groups.g.services': needs services"),
    ('[services.x]\ncommand = ["sleep"]\n[groups.g]\nservices = ["x"]\n'
     '[groups.h]\nservices = ["x"]\n', "'x' is in group 'g' already"),
    ('[services.x]\ncommand = ["sleep"]\n[groups.g]\nservices = ["x"]\nmax = 1\n',
     "key 'groups.g.max': unknown key 'max'"),
])
def test_errors_name_the_place(tmp_path, body, words):
    path = toml(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).startswith(path + ": ")
    assert words in str(info.value), str(info.value)


def py(tmp_path, text):
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_a_restart_group_in_a_python_config(tmp_path):
    config = load(py(tmp_path, """
        import corral
        application = corral.Application("shop")
        pair = corral.RestartGroup("pair", strategy="rest_for_one", max_restarts=2)
        pair.setServiceParent(application)
        db = corral.Service(); db.setName("db"); db.setServiceParent(pair)
        web = corral.Service(); web.setName("web")
        web.supervise(requires=["db"]).setServiceParent(pair)
        tool = corral.Service(); tool.setName("tool"); tool.setServiceParent(application)
        """))
    assert [s.name for s in config.services] == ["db", "web", "tool"]
    assert config.groups == (GroupSpec("pair", ("db", "web"), "rest_for_one", 2, 10.0),)
    assert config.services[1].requires == ("db",) and config.services[1].after == ("db",)


def test_a_bad_python_group_names_the_group(tmp_path):
    path = py(tmp_path, """
        import corral
        application = corral.Application("shop")
        g = corral.RestartGroup("g", strategy="all_for_one")
        g.setServiceParent(application)
        corral.Service().setServiceParent(g)
        """)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert "RestartGroup 'g' strategy" in str(info.value) and "must be" in str(info.value)


@pytest.mark.parametrize("logfile", ["logs/corral.log", "logs/./web.log"])
def test_a_logfile_that_log_dir_fills_already_is_refused(tmp_path, logfile):
    path = toml(tmp_path, f"""
        [corral]
        logfile = "{logfile}"
        log_dir = "logs"
        [services.web]
        command = ["sleep", "1"]
        """)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert "key 'logfile'" in str(info.value) and "written there twice" in str(info.value)


def test_a_logfile_beside_log_dir_is_fine(tmp_path):
    config = load(toml(tmp_path, """
        [corral]
        logfile = "logs/all.log"
        log_dir = "logs"
        [services.web]
        command = ["sleep", "1"]
        """))
    assert config.master.logfile.endswith("logs/all.log")
