"""env_file: NAME=VALUE lines per service and in [corral], with errors that
name the env file and its line."""

import textwrap

import pytest

from corral.config import load
from corral.errors import ConfigError


def files(tmp_path, config):
    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent(config))
    return str(path)


def test_env_files_layer_under_env(tmp_path):
    (tmp_path / "shared.env").write_text('REGION=eu\nLEVEL=info\n')
    (tmp_path / "web.env").write_text(textwrap.dedent('''\
        # the web's own
        export LEVEL=debug
        GREETING="hello \\"world\\""   # quoted, escaped
        RAW='$HOME stays'
        PLAIN=a b  # a comment
        EMPTY=
        PORT=1
        '''))
    config = load(files(tmp_path, '''
        [corral]
        env_file = "shared.env"
        [services.web]
        command = ["sleep", "1"]
        env_file = "web.env"
        env = { PORT = "8080" }
        [services.db]
        command = ["sleep", "1"]
        '''))
    web, db = config.services
    assert dict(web.env) == {"REGION": "eu", "LEVEL": "debug", "GREETING": 'hello "world"',
                             "RAW": "$HOME stays", "PLAIN": "a b", "EMPTY": "", "PORT": "8080"}
    assert dict(db.env) == {"REGION": "eu", "LEVEL": "info"}


@pytest.mark.parametrize("line, words", [
    ("no equals sign", "expected NAME=VALUE"),
    ("1BAD=x", "expected NAME=VALUE"),
    ('Q="open', 'the value\'s " is never closed'),
    ("Q='a' b", "text after the closing '"),
])
def test_a_bad_line_names_the_env_file_and_line(tmp_path, line, words):
    (tmp_path / "web.env").write_text(f"OK=1\n\n{line}\n")
    path = files(tmp_path, '''
        [services.web]
        command = ["sleep", "1"]
        env_file = "web.env"
        ''')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value).startswith(f"{tmp_path / 'web.env'}:3: ") and words in str(info.value)


def test_a_missing_env_file_is_an_error_naming_it(tmp_path):
    path = files(tmp_path, '''
        [services.web]
        command = ["sleep", "1"]
        env_file = "nope.env"
        ''')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert "nope.env: cannot read the env_file: No such file or directory" in str(info.value)


def test_env_file_in_a_python_config(tmp_path):
    (tmp_path / ".env").write_text("TOKEN=abc\n")
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent('''
        import corral
        application = corral.Application("a")
        corral.Service().supervise(env_file=".env").setServiceParent(application)
        '''))
    (spec,) = load(str(path)).services
    assert dict(spec.env) == {"TOKEN": "abc"}
