import asyncio
import shutil
import sys
import tempfile
import types

import pytest

from corral.errors import ConfigError
from corral.supervisor.logs import LogHub
from tests.helpers import WALL


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def hubs(loop):
    """hubs(**kw) -> a LogHub on `loop` with the fixed clock WALL; all closed at the end."""
    made = []

    def make(**kw):
        kw.setdefault("wallclock", lambda: WALL)
        hub = LogHub(loop, **kw)
        made.append(hub)
        return hub
    yield make
    for hub in made:
        hub.close()


@pytest.fixture
def short_dir():
    """A short folder for UNIX socket paths (they are limited to ~107 bytes)."""
    path = tempfile.mkdtemp(prefix="corral-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake_run_master(monkeypatch):
    """`corral run` without a master: the calls to run_master, which returns 0,
    or fails on "bad.toml" as a config error would."""
    calls = []
    module = types.ModuleType("corral.serve")

    def run_master(config, **kwargs):
        calls.append((config, kwargs))
        if config == "bad.toml":
            raise ConfigError("bad.toml", "unknown key", service="web", key="colour", detail="  context line\n")
        return 0

    module.run_master = run_master
    monkeypatch.setitem(sys.modules, "corral.serve", module)
    return calls
