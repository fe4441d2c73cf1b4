"""corral.plugins: discovery, options, building the config; `corral plugins` and `corral run NAME`."""

import argparse
import os
import sys
from importlib import metadata

import pytest

from corral import plugins
from corral.cli.main import main
from corral.errors import ConfigError
from corral.service import MultiService, Service

pytestmark = pytest.mark.timeout(30)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "plugins")


def ep(name, value):
    return metadata.EntryPoint(name, value, plugins.GROUP)


@pytest.fixture
def fixture_path(monkeypatch):
    """The fixture plugin modules importable; forgets them afterwards."""
    monkeypatch.syspath_prepend(FIXTURES)
    yield
    for module in ("corral_fixture_plugins", "corral_fixture_broken"):
        sys.modules.pop(module, None)


@pytest.fixture
def installed(fixture_path, monkeypatch):
    """plugins.entry_points() returns the given list (default: web + the fixtures')."""

    def install(eps=None):
        if eps is None:
            dist = next(metadata.distributions(path=[FIXTURES]))
            eps = [ep("web", "corral.services.web:plugin"),
                   *(e for e in dist.entry_points if e.group == plugins.GROUP)]
        monkeypatch.setattr(plugins, "entry_points", lambda: list(eps))
        return eps

    return install


class CountingEntryPoint:
    """An entry point that records its loads."""

    def __init__(self, name, obj):
        self.name, self.value, self.obj, self.loads = name, f"fake:{name}", obj, 0

    def load(self):
        self.loads += 1
        if isinstance(self.obj, BaseException):
            raise self.obj
        return self.obj


# -- discovery ------------------------------------------------------------------------


def test_discover_reports_a_broken_plugin_by_name_and_loads_the_others(installed):
    installed()
    found = {f.name: f for f in plugins.discover()}
    assert sorted(found) == ["broken", "countdown-timer", "hello", "web"]
    assert found["broken"].plugin is None
    assert found["broken"].error == "ModuleNotFoundError: No module named 'corral_fixture_not_installed'"
    assert "corral_fixture_broken.py" in found["broken"].detail
    assert found["hello"].error is None and found["hello"].plugin.name == "hello"
    assert found["hello"].description == "Prints a greeting now and then."
    # An entry point naming a class gets an instance.
    countdown = found["countdown-timer"].plugin
    assert type(countdown).__name__ == "Countdown"
    assert found["web"].plugin.name == "web"


def test_listing_aligns_names_and_shows_broken(installed):
    installed()
    text = plugins.listing(plugins.discover())
    lines = text.splitlines()
    assert lines == [
        "broken           (broken: ModuleNotFoundError: No module named 'corral_fixture_not_installed')",
        "countdown-timer  Counts down (a plugin class with add_arguments).",
        "hello            Prints a greeting now and then.",
        "web              " + plugins.find("web").description,
    ]
    assert plugins.listing([]).startswith("no plugins installed")


def test_find_loads_only_the_named_plugin():
    good = CountingEntryPoint("good", plugins.Plugin(name="good", make_service=lambda o: Service()))
    bad = CountingEntryPoint("bad", ImportError("nope"))
    found = plugins.find("good", [good, bad])
    assert found.plugin is good.obj and (good.loads, bad.loads) == (1, 0)
    assert plugins.find("missing", [good, bad]) is None
    assert plugins.names([bad, good]) == ["bad", "good"]
    assert bad.loads == 0


def test_any_exception_on_load_is_contained():
    eps = [CountingEntryPoint("exits", SystemExit(3)),
           CountingEntryPoint("raises", RuntimeError("boom\nsecond line")),
           CountingEntryPoint("ok", plugins.Plugin(name="ok", make_service=lambda o: Service()))]
    found = {f.name: f for f in plugins.discover(eps)}
    assert found["exits"].error == "SystemExit: 3"
    assert found["raises"].error == "RuntimeError: boom"
    assert found["ok"].error is None


def test_objects_that_are_not_plugins_are_broken(installed):
    installed([
        ep("wrong-name", "corral_fixture_plugins:NotAPlugin"),
        ep("no-maker", "corral_fixture_plugins:no_maker"),
        ep("missing-attr", "corral_fixture_plugins:nothing_here"),
    ])
    found = {f.name: f for f in plugins.discover()}
    assert "has name 'nameless-wrong', not the entry point's name 'wrong-name'" in found["wrong-name"].error
    assert "has no make_service(options)" in found["no-maker"].error
    assert found["missing-attr"].error.startswith("AttributeError")


def test_a_plugin_without_a_name_takes_the_entry_points():
    class Maker:
        description = "no name of its own"

        def make_service(self, options):
            return Service()

    found = plugins.find("maker", [CountingEntryPoint("maker", Maker())])
    assert found.error is None and found.plugin.name == "maker"


def test_duplicate_names():
    one = plugins.Plugin(name="x", make_service=lambda o: Service())
    same = [CountingEntryPoint("x", one), CountingEntryPoint("x", one)]
    assert plugins.find("x", same).plugin is one  # one value twice: one plugin
    other = CountingEntryPoint("x", one)
    other.value = "elsewhere:x"
    found = plugins.find("x", [same[0], other])
    assert found.error == "registered more than once: fake:x, elsewhere:x"


# -- options ----------------------------------------------------------------------------


def test_options_as_flag_kwargs_pairs(installed):
    installed()
    hello = plugins.find("hello").plugin
    assert vars(plugins.parse_options(hello, [])) == {"greeting": "hello", "every": 1.0}
    options = plugins.parse_options(hello, ["--greeting", "hi", "-e", "0.5"])
    assert (options.greeting, options.every) == ("hi", 0.5)


def test_options_as_a_callable_and_as_add_arguments(installed):
    installed()
    countdown = plugins.find("countdown-timer").plugin
    assert plugins.parse_options(countdown, ["10"]).start == 10

    def declare(parser):
        parser.add_argument("--flag", action="store_true")

    plugin = plugins.Plugin(name="p", options=declare, make_service=lambda o: Service())
    assert plugins.parse_options(plugin, ["--flag"]).flag is True


def test_bad_option_declaration_names_the_entry():
    plugin = plugins.Plugin(name="p", options=["--port"])
    with pytest.raises(TypeError, match="a \\(flags, kwargs\\) pair, not '--port'"):
        plugins.option_parser(plugin)


def test_help_shows_description_and_options(installed, capsys):
    installed()
    with pytest.raises(SystemExit) as exit_info:
        plugins.parse_options(plugins.find("hello").plugin, ["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: corral run [run options] hello [options]")
    assert "Prints a greeting now and then." in out
    assert "--greeting GREETING" in out and "-e EVERY, --every EVERY" in out
    assert "go before the plugin's name 'hello'" in out


def test_bad_option_is_a_usage_error(installed, capsys):
    installed()
    with pytest.raises(SystemExit) as exit_info:
        plugins.parse_options(plugins.find("hello").plugin, ["--every", "soon"])
    assert exit_info.value.code == 2
    assert "corral run hello: error: argument -e/--every: invalid float value: 'soon'" in capsys.readouterr().err


def test_web_options(short_cwd):
    web = plugins.find("web").plugin
    options = plugins.parse_options(web, [])
    assert vars(options) == {"port": 8080, "path": short_cwd, "interface": "127.0.0.1"}
    os.mkdir("site")
    options = plugins.parse_options(web, ["-p", "0", "--path", "site", "--interface", "::1"])
    assert vars(options) == {"port": 0, "path": os.path.join(short_cwd, "site"), "interface": "::1"}
    for bad in (["--port", "70000"], ["--port", "http"], ["--path", "missing"]):
        with pytest.raises(SystemExit) as exit_info:
            plugins.parse_options(web, bad)
        assert exit_info.value.code == 2


@pytest.fixture
def short_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return str(tmp_path)


# -- the config ---------------------------------------------------------------------------


def test_make_config_one_top_level_service(installed, tmp_path):
    installed()
    hello = plugins.find("hello").plugin
    config = plugins.make_config(hello, plugins.parse_options(hello, ["--greeting", "hi"]), str(tmp_path))
    assert config.path == "plugin hello"
    [spec] = config.services
    assert (spec.name, spec.source, spec.restart, spec.numprocs) == ("hello", "plugin hello", "always", 1)
    assert spec.tree.name == "hello" and spec.tree.greeting == "hi"
    assert spec.fingerprint is not None
    # Building it again from the same options (a reload) changes nothing.
    again = plugins.loader(hello, plugins.parse_options(hello, ["--greeting", "hi"]))("plugin hello")
    assert again.services == config.services
    changed = plugins.make_config(hello, plugins.parse_options(hello, ["--greeting", "ho"]))
    assert changed.services != config.services


def test_make_config_keeps_supervise_settings(installed):
    installed()
    countdown = plugins.find("countdown-timer").plugin
    [spec] = plugins.make_config(countdown, plugins.parse_options(countdown, ["3"])).services
    assert spec.name == "countdown-timer" and spec.restart == "never"


def test_make_config_keeps_the_services_own_name():
    tree = MultiService()
    tree.setName("inner")
    plugin = plugins.Plugin(name="outer", make_service=lambda o: tree)
    [spec] = plugins.make_config(plugin, argparse.Namespace()).services
    assert spec.name == "outer" and spec.tree.name == "inner"


def test_make_config_errors(installed):
    installed()

    def raises(options):
        raise ValueError("no poem given")

    with pytest.raises(ConfigError) as error:
        plugins.make_config(plugins.Plugin(name="p", make_service=raises), argparse.Namespace())
    assert str(error.value) == "plugin p: service 'p': make_service raised ValueError: no poem given"
    assert "no poem given" in error.value.detail

    junk = plugins.find("junk", [ep("junk", "corral_fixture_plugins:junk")]).plugin
    with pytest.raises(ConfigError, match="make_service returned 'not a service', not a corral Service"):
        plugins.make_config(junk, argparse.Namespace())

    bad = plugins.Plugin(name="p", make_service=lambda o: Service().supervise(restart="sometimes"))
    with pytest.raises(ConfigError, match="plugin p: service 'p': key 'restart': must be one of"):
        plugins.make_config(bad, argparse.Namespace())

    after = plugins.Plugin(name="p", make_service=lambda o: Service().supervise(after=["db"]))
    with pytest.raises(ConfigError, match="key 'after'"):
        plugins.make_config(after, argparse.Namespace())

    reserved = plugins.Plugin(name="all", make_service=lambda o: Service())
    with pytest.raises(ConfigError, match="'all' is reserved"):
        plugins.make_config(reserved, argparse.Namespace())


# -- the command line ---------------------------------------------------------------------


def test_cli_plugins_lists_them(installed, capsys, monkeypatch):
    from corral.loaders import tac

    monkeypatch.setattr(tac, "has_twisted", lambda: False)  # twistd's: tests/integration
    installed()
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "broken           (broken: ModuleNotFoundError" in out
    assert "hello            Prints a greeting now and then.\n" in out
    assert main(["plugins", "--json"]) == 0
    import json

    items = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    assert items["hello"] == {"name": "hello", "kind": "corral",
                              "description": "Prints a greeting now and then.", "error": None}
    assert items["broken"]["error"].startswith("ModuleNotFoundError")


def test_cli_run_plugin(installed, fake_run_master, short_cwd):
    installed()
    argv = ["run", "--socket", "c.sock", "--logfile", "all.log", "hello", "--greeting", "hi", "--every", "2"]
    assert main(argv) == 0
    [(source, kwargs)] = fake_run_master
    assert source == "plugin hello"
    assert kwargs["socket"] == os.path.join(short_cwd, "c.sock")
    assert kwargs["logfile"] == os.path.join(short_cwd, "all.log")
    config = kwargs["loader"](source)
    [spec] = config.services
    assert (spec.name, spec.tree.greeting, spec.tree.every) == ("hello", "hi", 2.0)


def test_cli_run_options_after_the_name_are_the_plugins(installed, fake_run_master, capsys):
    installed()
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "hello", "--socket", "c.sock"])
    assert exit_info.value.code == 2
    assert "corral run hello: error: unrecognized arguments: --socket c.sock" in capsys.readouterr().err
    assert fake_run_master == []


def test_cli_run_plugin_help(installed, fake_run_master, capsys):
    installed()
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "hello", "--help"])
    assert exit_info.value.code == 0
    assert "Prints a greeting now and then." in capsys.readouterr().out
    assert fake_run_master == []


def test_cli_run_unknown_name_lists_plugins(installed, fake_run_master, capsys, short_cwd,
                                            monkeypatch):
    from corral.loaders import tac

    # Without Twisted, corral's own plugins are all there is (with it, the
    # twistd plugins are listed too: tests/integration/test_twisted_examples.py).
    monkeypatch.setattr(tac, "has_twisted", lambda: False)
    installed()
    assert main(["run", "nope"]) == 2
    err = capsys.readouterr().err
    assert err == ("corral: error: 'nope' is neither a config file nor a plugin "
                   "(plugins: broken, countdown-timer, hello, web)\n")
    installed([])
    assert main(["run", "nope"]) == 2
    assert "(plugins: none installed)" in capsys.readouterr().err
    # `corral run app` beside app.py: the file was meant.
    with open("nope.py", "w") as f:
        f.write("")
    assert main(["run", "nope"]) == 2
    assert capsys.readouterr().err.endswith("; did you mean 'nope.py'?\n")
    assert fake_run_master == []


def test_cli_run_broken_plugin(installed, fake_run_master, capsys):
    installed()
    assert main(["run", "broken", "--x"]) == 1
    err = capsys.readouterr().err
    assert "corral_fixture_broken.py" in err  # the traceback comes first
    assert err.endswith("corral: error: plugin 'broken' (corral_fixture_broken:plugin) is broken: "
                        "ModuleNotFoundError: No module named 'corral_fixture_not_installed'\n")
    assert fake_run_master == []


def test_cli_run_a_file_wins_over_a_plugin(installed, fake_run_master, short_cwd):
    installed()
    with open("hello", "w") as file:
        file.write("")
    assert main(["run", "hello", "--logfile", "x.log"]) == 0
    [(source, kwargs)] = fake_run_master
    assert source == "hello" and "loader" not in kwargs
    assert kwargs["logfile"] == os.path.join(short_cwd, "x.log")


def test_cli_run_config_options_after_the_file(installed, fake_run_master, short_cwd, capsys):
    installed()
    assert main(["run", "--socket", "s.sock", "app.toml", "--log-dir", "logs"]) == 0
    [(source, kwargs)] = fake_run_master
    assert source == "app.toml" and "loader" not in kwargs
    assert kwargs["socket"] == os.path.join(short_cwd, "s.sock")
    assert kwargs["log_dir"] == os.path.join(short_cwd, "logs")
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "app.toml", "extra", "--logfile", "x"])
    assert exit_info.value.code == 2
    assert "corral run: error: unexpected argument 'extra' after app.toml" in capsys.readouterr().err
