"""corral/loaders/tac.py without processes: which files it claims, the
one line without Twisted installed, and the endpoints the master binds."""

import importlib.util

import pytest

from corral.errors import ConfigError
from corral.loaders import tac as loader
from corral.twisted import supervise


@pytest.mark.parametrize("path, text, claimed", [
    ("a.tac", b"from twisted.application import service\n", True),
    ("a.py", b"import twisted.application.service as s\n", True),
    ("a.py", b"   from twisted.internet import reactor\n", True),
    ("a.toml", b"from twisted.application import service\n", False),
    ("a.py", b"import corral\nfrom twisted.internet import defer\n"
             b"application = corral.Application('x')\n", False),
    ("a.py", b"from corral import Application, Service\nimport twisted\n", False),
    ("a.tac", b"# twisted is great\nimport corral\n", False),
])
def test_claims_twisted_applications_only(path, text, claimed):
    assert loader.claims(path, text) is claimed


def test_without_twisted_one_line_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "app.tac"
    path.write_text("from twisted.application import service\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "twisted" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        loader.load(str(path))
    assert str(err.value) == (f"{path}: is a Twisted application and Twisted is not "
                              "installed: pip install 'corral[twisted]'")


def test_addresses_become_the_endpoints_the_master_binds():
    assert loader._endpoint({"kind": "tcp", "host": "", "port": 80}).url == "tcp://:80"
    assert loader._endpoint({"kind": "udp", "host": "::1", "port": 53}).url == "udp://[::1]:53"
    unix = loader._endpoint({"kind": "unixgram", "path": "/run/x"})
    assert (unix.kind, unix.path) == ("unixgram", "/run/x")


def test_supervise_attaches_settings_to_any_object():
    class Plain:
        pass

    svc = supervise(Plain(), restart="never")
    assert supervise(svc, numprocs=2) is svc
    assert svc.supervision == {"restart": "never", "numprocs": 2}


# -- twistd plugins: their options, as twistd parses them (servicemakers.py) --


class PoetryMaker:
    """An IServiceMaker as the fast poetry plugin has (the finding is tested
    with the real plugin, tests/integration/test_twisted_examples.py)."""

    tapname = "poetry"
    description = "A fast poetry service."

    @property
    def options(self):
        from twisted.python import usage

        class Options(usage.Options):
            optParameters = [["port", "p", 10000, "The port number to listen on."]]

        return Options


def test_a_plugins_options_are_parsed_as_twistd_does():
    from corral.twisted import servicemakers

    options = servicemakers.parse(PoetryMaker(), ["-p", "10001"])
    assert options["port"] == "10001"
    with pytest.raises(servicemakers.OptionsDone) as shown:
        servicemakers.parse(PoetryMaker(), ["--help"])
    assert shown.value.code == 0
    assert shown.value.text.startswith("Usage: corral run [run options] poetry [options]\n")
    assert "A fast poetry service." in shown.value.text  # not python -m's own docstring
    with pytest.raises(servicemakers.OptionsDone) as wrong:
        servicemakers.parse(PoetryMaker(), ["--rhyme"])
    assert wrong.value.code == 2
    assert wrong.value.text.endswith("corral run poetry: option --rhyme not recognized\n")


def test_a_twistd_plugin_loader_gives_the_command_lines_config_first(monkeypatch):
    made = []
    monkeypatch.setattr(loader, "load_plugin", lambda *args: made.append(args) or "again")
    load = loader.plugin_loader("poetry", ["-p", "1"], "/srv", first="first")
    assert load.in_thread("plugin poetry") is True  # reload does not wait on the loop
    assert (load("plugin poetry"), made) == ("first", [])
    assert load("plugin poetry") == "again" and made == [("poetry", ["-p", "1"], "/srv")]
