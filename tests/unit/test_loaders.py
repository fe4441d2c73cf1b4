"""The loader registry, the one size syntax, and the layering of the spec side."""

import os
import pathlib
import subprocess
import sys

import pytest

import corral
from corral import loaders, readyspec, socketspec
from corral.errors import ConfigError
from corral.sizes import format_bytes, parse_size

CORRAL = pathlib.Path(corral.__file__).parent


def test_each_format_has_its_loader(tmp_path):
    (tmp_path / "a.toml").write_text("")
    (tmp_path / "a.py").write_text("")
    (tmp_path / "supervisord.conf").write_text("")
    (tmp_path / "any.cfg").write_text("; a comment first\n[program:x]\ncommand=true\n")
    (tmp_path / "plain").write_text("[supervisord]\n")
    found = {name: loaders.find(str(tmp_path / name)).name
             for name in ("a.toml", "a.py", "supervisord.conf", "any.cfg", "plain")}
    assert found == {"a.toml": "toml", "a.py": "python", "supervisord.conf": "supervisord",
                     "any.cfg": "supervisord", "plain": "supervisord"}
    assert loaders.find("no-such-plugin-name").name == "plugin"


def test_registry_is_a_plain_ordered_list():
    assert [loader.name for loader in loaders.LOADERS] == ["toml", "twisted", "python",
                                                           "supervisord", "plugin"]
    for loader in loaders.LOADERS:
        assert callable(loader.claims) and callable(loader.load)


def test_an_unclaimed_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(ConfigError) as info:
        loaders.load(path)
    assert str(path) in str(info.value) and "unknown config type '.txt'" in str(info.value)


def test_a_plugin_name_that_is_none_says_so(monkeypatch):
    monkeypatch.setattr("corral.plugins.entry_points", lambda: [])
    with pytest.raises(ConfigError, match="neither a config file nor a plugin"):
        loaders.load("nosuchplugin")


def test_config_load_is_the_registry():
    from corral import config

    assert config.load is loaders.load


@pytest.mark.parametrize("value, minimum, expected", [
    (0, 0, 0), ("0", 0, 0), ("50MB", 0, 50 << 20), ("50M", 0, 50 << 20), ("1 MiB", 0, 1 << 20),
    ("1.5G", 1, 3 << 29), ("512kb", 0, 512 << 10), ("1T", 1, 1 << 40), (4096, 1, 4096),
])
def test_one_size_syntax(value, minimum, expected):
    assert parse_size(value, minimum) == expected


@pytest.mark.parametrize("value, minimum", [
    (-1, 0), (0, 1), ("0", 1), ("10X", 0), ("", 0), (True, 0), (1.5, 0), ("iB", 0), (None, 0),
])
def test_bad_sizes(value, minimum):
    with pytest.raises(ValueError, match="must be a size"):
        parse_size(value, minimum)


def test_format_bytes_reads_back():
    for size in (12, 900 << 10, 512 << 20, 3 << 29):
        assert parse_size(format_bytes(size)) == size


def test_ready_and_socket_rules_are_spec_side():
    assert readyspec.up_for(2) == ("seconds", 2.0) and readyspec.up_for(0) is None
    assert readyspec.describe(("seconds", 2.0)) == "2 s up"
    assert socketspec.check_list(["tcp://*:80"], "/") == ("tcp://:80",)


# -- layering ------------------------------------------------------------------------

# Reading every import of the spec side and the loaders: tests/unit/test_layers.py.


def test_loading_every_format_imports_no_master_module(tmp_path):
    code = ("import sys; import corral.loaders, corral.config, corral.settings; "
            "print(sorted(m for m in sys.modules if m.startswith('corral.supervisor')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.fspath(tmp_path)).stdout
    assert out.strip() == "[]"
