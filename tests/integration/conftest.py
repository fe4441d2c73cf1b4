import pytest

from tests.integration.harness import Master


@pytest.fixture
def master():
    """master(config_text, suffix=".toml", files={name: text}, args=()) -> a started Master."""
    started = []

    def make(config_text, suffix=".toml", files=None, args=(), start=True):
        m = Master(config_text, suffix=suffix, files=files, args=args)
        started.append(m)
        return m.start() if start else m

    yield make
    for m in started:
        m.close()
