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
