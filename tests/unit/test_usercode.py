"""usercode: which modules are the user's, forgetting them, digests of a tree's code."""

import importlib
import json
import sys

import pytest

import corral
from corral import usercode
from corral.service import MultiService


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    usercode.forget(tmp_path)


def write(folder, name, text):
    (folder / name).write_text(text)


def test_python_corral_and_installed_packages_are_never_the_users():
    found = usercode.modules("/")                       # an ancestor of everything
    assert not {"json", "asyncio", "corral", "corral.usercode", "pytest"} & set(found)
    assert json is sys.modules["json"]


def test_forget_takes_the_users_modules_out_and_gives_them_back(folder):
    write(folder, "mine_a.py", "X = 1\n")
    importlib.import_module("mine_a")
    gone = usercode.forget(folder)
    assert list(gone) == ["mine_a"] and "mine_a" not in sys.modules
    write(folder, "mine_a.py", "X = 2\n")
    assert importlib.import_module("mine_a").X == 2     # imported afresh
    assert gone["mine_a"].X == 1


def test_digest_follows_the_classes_modules_and_what_they_use(folder):
    write(folder, "mine_words.py", "def word():\n    return 'w1'\n")
    write(folder, "mine_web.py", "import corral\nfrom mine_words import word\n\n"
                                 "class Web(corral.Service):\n    pass\n")
    write(folder, "mine_other.py", "Z = 1\n")

    def load():
        usercode.forget(folder)
        importlib.import_module("mine_other")
        tree = MultiService()
        importlib.import_module("mine_web").Web().setServiceParent(tree)
        corral.Service().setServiceParent(tree)         # corral's own class: not followed
        return usercode.follow(tree, folder).digest

    first = load()
    assert [part.split(":")[0] for part in first] == ["mine_web", "mine_words"]
    assert load() == first                              # nothing changed
    write(folder, "mine_other.py", "Z = 2\n")           # not used by the tree
    assert load() == first
    write(folder, "mine_words.py", "def word():\n    return 'w2'\n")
    assert load() != first


def test_digest_follows_what_a_services_attributes_hold_but_not_its_siblings(folder):
    write(folder, "mine_proto.py", "class Proto:\n    version = 1\n")
    write(folder, "mine_side.py", "class Side(object):\n    pass\n")

    def load():
        usercode.forget(folder)
        proto = importlib.import_module("mine_proto").Proto
        side = importlib.import_module("mine_side").Side
        tree = MultiService()
        server = corral.Service()
        server.factory = {"protocol": proto}           # a class, in a dict, on corral's class
        server.setServiceParent(tree)
        sibling = corral.Service()
        sibling.thing = side()
        sibling.setServiceParent(tree)
        return usercode.follow(server, folder).digest, usercode.follow(sibling, folder).digest

    first = load()
    assert [part.split(":")[0] for part in first[0]] == ["mine_proto"]
    write(folder, "mine_proto.py", "class Proto:\n    version = 2\n")
    again = load()
    assert again[0] != first[0] and again[1] == first[1]  # the sibling is not restarted


CONFIG = """\
import corral
from corral.services.internet import TCPServer
import mine_helpers

PREFIX = b"v1:"

def shout(data):
    return PREFIX + tail(data)

def tail(data):
    return data.upper()

def unused():
    return 1

class Echo:
    def data(self, data):
        return shout(data) + mine_helpers.SUFFIX

class Other(corral.Service):
    pass

application = corral.Application("t")
TCPServer(0, Echo, interface="127.0.0.1").setServiceParent(application)
Other().setServiceParent(application)
"""


def fingerprints(path):
    from corral.loaders import python

    return {s.name: s.fingerprint for s in python.load(str(path)).services}


def test_a_configs_functions_a_class_calls_by_name_are_followed(folder):
    """Editing a function the protocol calls by name (and what that calls)
    restarts that service only; editing one nobody calls restarts nothing."""
    config = folder / "app.py"
    write(folder, "mine_helpers.py", "SUFFIX = b'!'\n")
    config.write_text(CONFIG)
    first = fingerprints(config)
    [server, other] = first
    config.write_text(CONFIG.replace("return 1", "return 2"))  # nobody calls unused()
    assert fingerprints(config) == first
    config.write_text(CONFIG.replace("data.upper()", "data.lower()"))  # tail, via shout
    again = fingerprints(config)
    assert again[server] != first[server] and again[other] == first[other]
    config.write_text(CONFIG)
    assert fingerprints(config) == first
    write(folder, "mine_helpers.py", "SUFFIX = b'?'\n")  # a module the class names
    again = fingerprints(config)
    assert again[server] != first[server] and again[other] == first[other]


def test_what_cannot_be_followed_is_named(folder, tmp_path_factory, monkeypatch):
    """A class made without source, and a module from a folder beside the
    config's, are named: nothing changes without a word."""
    beside = tmp_path_factory.mktemp("src")
    (beside / "mine_beside.py").write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(beside))
    config = folder / "app.py"
    config.write_text("import corral, mine_beside\n"
                      "Made = type('Made', (corral.Service,), {})\n"
                      "application = corral.Application('t')\n"
                      "s = Made()\ns.thing = mine_beside.Thing()\ns.setServiceParent(application)\n")
    from corral.loaders import python

    try:
        [spec] = python.load(str(config)).services
    finally:
        sys.modules.pop("mine_beside", None)
    assert spec.unfollowed[0] == "Made: its source cannot be read"
    assert spec.unfollowed[1].startswith(f"mine_beside ({beside / 'mine_beside.py'}): outside the config's "
                                         "folder, not imported afresh")
    assert len(spec.unfollowed) == 2
