"""The Twisted loader: a .tac (or .py) whose `application` is Twisted's.

The master's side of a Twisted application: is this file one, and what is
in it. Imports no Twisted: the file is loaded by a throwaway child
(probe.py), whose report becomes one ServiceSpec per top-level service, of
the TwistedTree kind (corral/kinds.py). Its workers load the file again.

It is one entry of corral/loaders/ (before the Python loader, which
claims every .py and .tac).

A .py or .tac file is a Twisted application when it imports twisted and
does not use corral's own Application. Without Twisted installed, such a
file gets one line saying what to install.

twistd plugins (IServiceMaker in twisted.plugins) come here too, from
`corral run NAME [options]` when NAME is none of corral's own plugins: the
probe makes the service from the options, and each worker makes it again
(load_plugin, plugin_list).
"""

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from types import SimpleNamespace

from corral import kinds
from corral.errors import ConfigError, CorralError
from corral.loaders import common
from corral.socketspec import Endpoint

name = "twisted"
IN_THREAD = True  # load() only waits on a child (the probe): reload runs it in a thread

PROBE_TIMEOUT = 60.0  # s the throwaway child may take to load the file
INSTALL = "pip install 'corral[twisted]'"

_IMPORTS_TWISTED = re.compile(rb"^[ \t]*(from[ \t]+twisted[\w.]*[ \t]+import|import[ \t]+twisted)\b",
                              re.M)
_CORRAL_APPLICATION = re.compile(rb"corral\s*\.\s*Application\b|"
                                 rb"from\s+corral(\.service)?\s+import\s+[^\n]*\bApplication\b")


def claims(path, head):
    """True for a .py/.tac file (head: its bytes) that is a Twisted application."""
    return os.path.splitext(path)[1] in (".py", ".tac") \
        and bool(_IMPORTS_TWISTED.search(head)) and not _CORRAL_APPLICATION.search(head)


@dataclass(frozen=True)
class TacService:
    """What the master knows of one top-level service of a Twisted
    application: where it is in the file and what the probe saw of it."""

    path: str  # the .tac/.py file, loaded again by each worker; "plugin NAME" for a plugin
    index: int  # its place among the application's children
    name: str
    cls: str  # module.Class
    addresses: tuple  # endpoints.Endpoint the master binds, in tree order
    shape: str = ""  # the probe's view of its subtree, as JSON (compared on reload)
    app_name: str = None
    plugin: tuple = ()  # a twistd plugin's (name, *options), made again by each worker
    folder: str = ""  # twistd's current folder for a plugin (its twisted/plugins/)

    @property
    def parent(self):  # the tree view names the application after it
        return SimpleNamespace(name=self.app_name)

    @property
    def subtree(self):
        return json.loads(self.shape) if self.shape else {}


class NoSuchPlugin(CorralError):
    """No twistd plugin has the name; plugins: the names there are."""

    def __init__(self, name, plugins):
        self.name, self.plugins = name, plugins
        super().__init__(f"no twistd plugin is named {name!r}")


class PluginOptionsDone(CorralError):
    """A twistd plugin's --help (code 0) or usage error (2): print text, exit code."""

    def __init__(self, code, text):
        self.code, self.text = code, text
        super().__init__(text.rstrip().splitlines()[-1] if text.strip() else f"exit {code}")


def load(path, argv=()):
    """The Config of the Twisted application at path."""
    path = os.path.abspath(path)
    common.read(path)  # a file that cannot be read says so, as for every loader
    _need_twisted(path)
    reply = probe(path)
    return _config(path, reply, path=path)


def load_plugin(name, argv=(), folder=None):
    """The Config of the twistd plugin NAME made with the options argv, in
    folder (twistd's current folder; default the cwd). Raises NoSuchPlugin,
    PluginOptionsDone (--help, a usage error) or ConfigError."""
    folder = os.path.abspath(folder or os.getcwd())
    source = f"plugin {name}"
    _need_twisted(source)
    reply = probe(source, ["--plugin", name, folder, *argv])
    if "missing" in reply:
        raise NoSuchPlugin(name, reply["plugins"])
    if "exit" in reply:
        raise PluginOptionsDone(reply["exit"], reply["text"])
    return _config(source, reply, path=source, plugin=(name, *argv), folder=folder)


def plugin_loader(name, argv, folder, first=None):
    """A loader for the master (start, reload) of a twistd plugin: first, the
    Config the command line made already, then load_plugin again."""
    made = [first] if first is not None else []

    def load_it(_source):
        return made.pop() if made else load_plugin(name, argv, folder)

    load_it.in_thread = lambda _source: True  # it only waits on the probe (reload.py)
    return load_it


def plugin_list(folder=None):
    """[{"name", "description"}] of the twistd plugins; [] without Twisted."""
    if not has_twisted():
        return []
    reply = probe("twistd plugins", ["--plugins", os.path.abspath(folder or os.getcwd())])
    if "error" in reply:
        raise ConfigError("twistd plugins", reply["error"], detail=reply.get("detail"))
    return reply["plugins"]


def has_twisted():
    return importlib.util.find_spec("twisted") is not None


def _need_twisted(source):
    if not has_twisted():
        raise ConfigError(source, f"is a Twisted application and Twisted is not installed: "
                          f"{INSTALL}")


def _config(source, reply, **where):
    """The Config of a probe's reply (an application's tree); where: the
    TacService fields that say where each worker finds it again."""
    from corral.settings import Bad, supervision
    from corral.spec import MasterSpec, ServiceSpec
    # A worker is a fork of the master: one that runs as a user who cannot
    # read this Python's standard library (privileges.unreadable_folder) has
    # only what the master imported, and Twisted imports zipfile
    # (twisted.python.zippath), which the master no longer needs itself.
    import zipfile  # noqa: F401

    if "error" in reply:
        raise ConfigError(source, reply["error"], line=reply.get("line"),
                          detail=reply.get("detail"))
    folder = where.get("folder") or os.path.dirname(source)
    code = _digest(([source] if os.path.isabs(source) else []) + reply["files"])
    specs = []
    for index, found in enumerate(reply["services"]):
        name = found["name"]
        common.check_name(source, name)
        settings = dict(found["supervision"])
        # Application(name, uid, gid): twistd runs the whole application as them.
        if reply.get("uid") is not None and "user" not in settings:
            settings["user"] = reply["uid"]
        if reply.get("gid") is not None and "group" not in settings:
            settings["group"] = reply["gid"]
        if settings.get("sockets"):
            raise ConfigError(source, "is for commands (socket activation); the master holds "
                              "the sockets of a Twisted service's servers itself",
                              service=name, key="sockets")
        tree = TacService(index=index, name=name, cls=found["class"],
                          addresses=tuple(_endpoint(a) for a in found["addresses"]),
                          shape=json.dumps(found["tree"], sort_keys=True),
                          app_name=reply.get("app"), **where)
        try:
            checked = supervision(name, settings, folder)
        except Bad as bad:
            raise bad.error(source, name) from None
        specs.append(ServiceSpec(name=name, tree=tree, kind=kinds.TWISTED_TREE, source=source,
                                 fingerprint=(tree, code), **checked))
    return common.finish(source, MasterSpec(), specs)


def probe(path, args=None):
    """Run probe.py on path (args: its command line, default [path]) in a
    child of its own; its JSON reply. path names it in errors.

    At a reload this runs in a thread (reload.py), and the master's
    subreaper may reap the child before subprocess does: its exit status
    then reads 0. Only the reply on stdout counts, so nothing is lost."""
    env = dict(os.environ)
    # corral itself, wherever it is imported from (an editable install, a checkout)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run([sys.executable, "-m", "corral.twisted.probe",
                               *(args if args is not None else [path])],
                              stdin=subprocess.DEVNULL, capture_output=True, env=env,
                              timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ConfigError(path, f"loading it took more than {PROBE_TIMEOUT:g} s") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot start Python to load it: {exc}") from None
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        err = done.stderr.decode("utf-8", "replace").strip()
        last = err.splitlines()[-1] if err else f"exit {done.returncode}"
        raise ConfigError(path, f"loading it failed: {last}", detail=err or None) from None


def _endpoint(found):
    kind = found["kind"]
    if kind in ("unix", "unixgram"):
        # Relative to the cwd, as under twistd: the master's (the probe's too).
        path = found["path"] if found["path"].startswith("\0") else os.path.abspath(found["path"])
        shown = "@" + path[1:] if path.startswith("\0") else path
        return Endpoint(kind, path=path, url=f"{kind}://{shown}")
    host = found.get("host") or ""
    shown = f"[{host}]" if ":" in host else host
    return Endpoint(kind, host=host, port=found["port"], url=f"{kind}://{shown}:{found['port']}")


def _digest(paths):
    sha = hashlib.sha256()
    for path in paths:
        try:
            with open(path, "rb") as f:
                sha.update(path.encode() + b"\0" + f.read())
        except OSError:
            sha.update(path.encode() + b"\0-")
    return sha.hexdigest()
