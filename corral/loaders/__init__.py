"""Loaders: one per config format, chosen by the file's suffix or content.

    LOADERS   the registered loaders, in the order they are asked
    load(path, argv=()) -> Config   the first loader that claims path loads it

A loader is a module (or any object) with `name`, `claims(path, head)` and
`load(path, argv=())`. head is the file's first HEAD_BYTES bytes (b"" when
there is no file), so a loader can claim by content as well as by suffix.
The first claim wins: a loader that claims by content goes before one that
claims by suffix alone. A new format is one more entry in LOADERS.

Invariant: load() returns a fully checked, frozen Config or raises one
ConfigError naming the file (and the line, service and key where there is
one); it starts nothing. Loaders import the specs, the settings checks and
the Service classes, never the master side (a test checks it).
"""

import os

from corral.errors import ConfigError
from corral.loaders import plugin, python, supervisord, tac, toml

HEAD_BYTES = 4096
LOADERS = [toml, tac, python, supervisord, plugin]  # tac: Twisted's .tac/.py, before python's


def _head(path):
    try:
        with open(path, "rb") as f:
            return f.read(HEAD_BYTES)
    except OSError:
        return b""


def find(path):
    """The loader that claims path; ConfigError naming the file when none does."""
    path = os.fspath(path)
    head = _head(path)
    for loader in LOADERS:
        if loader.claims(path, head):
            return loader
    ext = os.path.splitext(path)[1]
    raise ConfigError(os.path.abspath(path),
                      f"unknown config type {ext or '(no extension)'!r}; expected a .toml, "
                      ".py or .tac file, a supervisord.conf (.conf, .ini, or a first section "
                      "[supervisord] or [program:NAME]), or a plugin's name")


def load(path, argv=()):
    """Read the config at path (a plugin's name: argv are its options)."""
    return find(path).load(os.fspath(path), argv)


def in_thread(path):
    """Whether load(path) may run in a thread while the master's loop goes
    on (reload.py): a loader whose load only waits on a child process says
    so with IN_THREAD (the Twisted loader's probe). The others import the
    user's code, which stays on the loop's thread: a worker's tree is
    pickled by reference to those modules."""
    try:
        return bool(getattr(find(path), "IN_THREAD", False))
    except ConfigError:
        return False


load.in_thread = in_thread  # what reload asks of the master's loader (plugin loaders too)
