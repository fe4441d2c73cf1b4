"""Load a config (.toml, or .py/.tac defining `application`) into a Config.

Invariant: load() either returns a fully checked, frozen Config or raises
one ConfigError naming the file, the service and the key; it starts
nothing. Its only lasting side effects are the ones a Python tree needs in
its workers later: the config's folder stays at the front of sys.path and
imported modules stay imported; the user's own modules (usercode.py) are
imported afresh by each load, so that a reload runs changed code.

TOML services and Python services (settings from Service.supervise()) go
through the same supervision() check, so one key means one thing in both.
"""

import math
import os
import re
import shlex
import shutil
import sys
import tomllib
import traceback
import types
from collections.abc import Mapping

from corral import usercode
from corral.errors import ConfigError
from corral.order import find_cycle, format_cycle
from corral.settings import MASTER_CHECKS, Bad, resolve, supervision, unknown
from corral.service import MultiService, Service
from corral.spec import (
    MASTER_DEFAULTS, Config, MasterSpec, ServiceSpec,
)

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,200}")  # <service>.log must fit a file name
RESERVED_NAMES = ("all", "corral")
WHAT_KEYS = ("command", "service", "args")  # what runs: TOML only
_PYTHON_SOCKETS = ("is for commands (socket activation); a Python service binds its own "
                   "(TCPServer, UNIXServer, UDPServer...) and the master holds those")
_CORRAL_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NO_APPLICATION = (
    "defines no variable 'application'; a config must create one, e.g. "
    '`application = corral.Application("myapp")`, and add services to it '
    "with `svc.setServiceParent(application)`"
)


def load(path):
    """Read the config at path and return a checked corral.spec.Config."""
    path = os.path.abspath(os.fspath(path))
    ext = os.path.splitext(path)[1]
    loaders = {".toml": _load_toml, ".py": _load_python, ".tac": _load_python}
    if ext not in loaders:
        raise ConfigError(path, f"unknown config type {ext or '(no extension)'!r}; "
                          "expected a .toml, .py or .tac file")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(path, f"cannot read config: {exc.strerror or exc}") from None
    # The user's code imported again: a reload runs changed code (usercode.py).
    with usercode.imported_afresh(os.path.dirname(path)):
        master, specs = loaders[ext](path, data)
        if not specs:
            raise ConfigError(path, "defines no services")
        _check_after(path, specs)
    return Config(path=path, master=master, services=tuple(specs))


# -- TOML --------------------------------------------------------------------

def _load_toml(path, data):
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not UTF-8 text: {exc.reason}") from None
    except tomllib.TOMLDecodeError as exc:
        text, line = str(exc), None
        where = re.search(r"\s*\(at line (\d+), column (\d+)\)", text)
        if where:  # the line goes into the place, "path:3: ..."
            text, line = text[:where.start()] + f" (column {where[2]})", int(where[1])
        raise ConfigError(path, f"invalid TOML: {text}", line=line) from None
    for key in doc:
        if key not in ("corral", "services"):
            raise ConfigError(path, unknown(key, ("corral", "services"), "top-level key")
                              + "; a config has a [corral] table and [services.NAME] "
                              "tables", key=key)
    folder = os.path.dirname(path)
    master = _master(path, doc.get("corral", {}), folder)
    services = doc.get("services", {})
    if not isinstance(services, dict):
        raise ConfigError(path, "must be a table of [services.NAME] tables", key="services")
    specs = []
    for name, table in services.items():
        _check_name(path, name)
        try:
            specs.append(_toml_service(path, folder, name, table))
        except Bad as bad:
            raise bad.error(path, name) from None
    return master, specs


def _master(path, table, folder):
    if not isinstance(table, dict):
        raise ConfigError(path, "must be a table ([corral])", key="corral")
    settings = {}
    for key, value in table.items():
        if key not in MASTER_DEFAULTS:
            raise ConfigError(path, unknown(key, MASTER_DEFAULTS, "key") + " in [corral]",
                              key=key)
        if key in MASTER_CHECKS:
            try:
                settings[key] = MASTER_CHECKS[key](value, folder)
            except Bad as bad:
                raise ConfigError(path, bad.message, key=key) from None
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError(path, f"must be a non-empty path string, not {value!r}", key=key)
        # Only paths given in the file are resolved: the default socket stays
        # relative, for the CLI to resolve against its own cwd.
        settings[key] = resolve(folder, value)
    return MasterSpec(**settings)


def _toml_service(path, folder, name, table):
    if not isinstance(table, dict):
        raise Bad("must be a table ([services.NAME])")
    has = [key for key in ("command", "service") if key in table]
    if not has:
        raise Bad("needs 'command' (a program to run) or 'service' "
                   '(a Python factory, "module:callable")')
    if len(has) == 2:
        raise Bad("has both 'command' and 'service'; give exactly one", "service")
    if "args" in table and "service" not in table:
        raise Bad("'args' goes with 'service' (a factory), not with 'command'", "args")
    rest = {k: v for k, v in table.items() if k not in WHAT_KEYS}
    settings = supervision(name, rest, folder, extra=WHAT_KEYS)
    common = dict(name=name, source=path, **settings)
    if "command" in table:
        base = settings["cwd"] or folder
        return ServiceSpec(command=_command(table["command"], base, settings["env"]), **common)
    if settings["sockets"]:
        raise Bad(_PYTHON_SOCKETS, "sockets")
    factory, args, tree = _factory(folder, table["service"], table.get("args", {}))
    return ServiceSpec(factory=factory, args=args, tree=tree,
                       fingerprint=("factory", factory, args, usercode.digest(tree, folder)),
                       **common)


def _command(value, base, env):
    """argv as a tuple with argv[0] made absolute; never goes through a shell."""
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise Bad(f"cannot split {value!r}: {exc}", "command") from None
    elif isinstance(value, list) and all(isinstance(a, str) for a in value):
        argv = value
    else:
        raise Bad(f"must be a string or a list of strings, not {value!r}", "command")
    if not argv or not argv[0]:
        raise Bad("is empty; give the program to run", "command")
    if "/" in argv[0]:
        found = resolve(base, argv[0])
        if not os.path.isfile(found):
            raise Bad(f"program {found!r} does not exist", "command")
        if not os.access(found, os.X_OK):
            raise Bad(f"program {found!r} is not executable", "command")
    else:
        # Search the PATH the program will get: the service's env wins.
        own = dict(env).get("PATH")
        found = shutil.which(argv[0], path=own or os.environ.get("PATH", os.defpath))
        if found is None:
            where = f"the service's env PATH ({own})" if own else "PATH"
            raise Bad(f"program {argv[0]!r} not found on {where}", "command")
    return (os.path.abspath(found), *argv[1:])


def _factory(folder, value, args):
    """Import "module:callable" and call it with args: (factory, args, tree)."""
    if not isinstance(value, str) or not re.fullmatch(r"[\w.]+:[\w.]+", value):
        raise Bad(f'must be "module:callable", e.g. "myapp.web:make_service", '
                   f"not {value!r}", "service")
    if not isinstance(args, dict):
        raise Bad(f"must be a table of keyword arguments, not {args!r}", "args")
    module_name, attr = value.split(":")
    _put_on_path(folder)
    try:
        # __import__, not importlib.import_module: one frame less to hide.
        obj = __import__(module_name, fromlist=["_"])
    except (Exception, SystemExit) as exc:
        missing = getattr(exc, "name", None)
        if isinstance(exc, ModuleNotFoundError) and missing and \
                (module_name + ".").startswith(missing + "."):
            raise Bad(f"cannot import {module_name!r}: no module named {missing!r} "
                       "(looked in the config's folder and sys.path)", "service") from None
        raise Bad(f"importing {module_name!r} raised {_summary(exc)}", "service",
                   _user_tb(exc)) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise Bad(f"{module_name!r} has no attribute {attr!r}", "service")
        obj = getattr(obj, part)
    if not callable(obj):
        raise Bad(f"{value} is a {type(obj).__name__}, not a callable", "service")
    try:
        tree = obj(**args)
    except (Exception, SystemExit) as exc:
        raise Bad(f"{value}(...) raised {_summary(exc)}", "service", _user_tb(exc)) from None
    if not isinstance(tree, Service):
        raise Bad(f"{value}(...) returned {tree!r}, not a corral Service", "service")
    return value, _freeze(args), tree


def _freeze(value):
    """TOML data made hashable: arrays -> tuples, tables -> sorted pairs."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


# -- Python (.py / .tac) -----------------------------------------------------

def _load_python(path, data):
    folder = os.path.dirname(path)
    try:
        # Compiled under the user's file name: tracebacks point at their lines.
        code = compile(data, path, "exec")
    except SyntaxError as exc:
        raise ConfigError(path, f"raised SyntaxError: {exc.msg}",
                          line=exc.lineno if exc.filename == path else None,
                          detail="".join(traceback.format_exception_only(exc))) from None
    except ValueError as exc:  # e.g. null bytes in the source
        raise ConfigError(path, f"cannot compile: {exc}") from None
    # A real module, so that classes defined in the config pickle by
    # reference once it is registered (only after it loaded).
    module = types.ModuleType(usercode.CONFIG_MODULE)
    module.__file__ = path
    _put_on_path(folder)
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__)
                 if f.filename == path]  # the deepest is the user's own line
        raise ConfigError(path, f"raised {_summary(exc)}", line=lines[-1] if lines else None,
                          detail=_user_tb(exc)) from None
    if "application" not in module.__dict__:
        raise ConfigError(path, _NO_APPLICATION)
    app = module.application
    if not isinstance(app, MultiService):
        raise ConfigError(path, f"'application' is {app!r}, not a corral Application; "
                          'write `application = corral.Application("myapp")`')
    children = list(app)
    if not children:
        raise ConfigError(path, "defines no services; add one to 'application' with "
                          "`svc.setServiceParent(application)`")
    # Registered before the specs: their code digests read the classes'
    # source through it (a load that fails puts the old one back: usercode.py).
    sys.modules[usercode.CONFIG_MODULE] = module
    specs = [_python_spec(path, folder, name, child)
             for child, name in zip(children, _child_names(children))]
    return MasterSpec(), specs


def _python_spec(path, folder, name, tree, user_code=True):
    """The ServiceSpec of one top-level Python service (settings from supervise()).
    user_code: its fingerprint holds the digest of the code it runs from the
    config's folder (not for a plugin: installed code is not imported again)."""
    _check_name(path, name)
    try:
        settings = _supervise_settings(tree)
        return ServiceSpec(name=name, tree=tree,
                           fingerprint=(tree_fingerprint(tree),
                                        usercode.digest(tree, folder) if user_code else ()),
                           source=path, **supervision(name, settings, folder))
    except Bad as bad:
        raise bad.error(path, name) from None


def config_from_service(name, service, source, folder=None):
    """A Config of one top-level Python service, checked as load() checks a file.

    For plugins (corral.plugins): source names where the service came from
    ("plugin web") in messages and is the Config's path; relative paths in
    its supervise() settings resolve against folder (default: the cwd).
    """
    if not isinstance(service, Service):
        raise ConfigError(source, f"{service!r} is not a corral Service", service=name)
    spec = _python_spec(source, folder or os.getcwd(), name, service, user_code=False)
    _check_after(source, [spec])
    return Config(path=source, master=MasterSpec(), services=(spec,))


def _supervise_settings(child):
    settings = getattr(child, "supervision", {})
    if not isinstance(settings, Mapping):
        raise Bad(f"supervision must be a dict (set by supervise()), not {settings!r}")
    for key in WHAT_KEYS:
        if key in settings:
            raise Bad(f"{key!r} is not a supervise() setting: in a Python config the "
                       "service object itself is what runs", key)
    if settings.get("sockets"):
        raise Bad(_PYTHON_SOCKETS, "sockets")
    return settings


def _child_names(children):
    """child.name, else its class name lowercased, then -2, -3... for repeats."""
    taken = {c.name for c in children if c.name is not None}
    names = []
    for child in children:
        name = child.name
        if name is None:
            base = name = type(child).__name__.lower()
            n = 1
            while name in taken:  # also skips names given explicitly
                n += 1
                name = f"{base}-{n}"
            taken.add(name)
        names.append(name)
    return names


_SKIP_ATTRS = {"parent", "services", "namedServices", "running"}
_NOT_PLAIN = object()


def tree_fingerprint(service):
    """A hashable stand-in for a tree, equal across reloads iff nothing changed.

    (module.qualname of the class, name, plain-data attributes, children's
    fingerprints). Other attributes (sockets, objects) are left out: they
    cannot be compared across two loads.
    """
    cls = type(service)
    attrs = tuple((key, frozen) for key, value in sorted(vars(service).items())
                  if key not in _SKIP_ATTRS
                  and (frozen := _plain(value)) is not _NOT_PLAIN)
    children = tuple(map(tree_fingerprint, service)) if isinstance(service, MultiService) else ()
    return (f"{cls.__module__}.{cls.__qualname__}", service.name, attrs, children)


def _plain(value, depth=0):
    if isinstance(value, float) and math.isnan(value):
        return "<nan>"  # nan != nan would make every reload look like a change
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    if depth > 20 or not isinstance(value, (list, tuple, dict)):  # > 20: self-containing
        return _NOT_PLAIN
    is_dict = isinstance(value, dict)
    items = [_plain(v, depth + 1) for v in (value.items() if is_dict else value)]
    if _NOT_PLAIN in items:
        return _NOT_PLAIN
    return tuple(sorted(items, key=repr) if is_dict else items)


def _check_after(path, specs):
    """Every `after` name exists, and the names form no cycle."""
    names = [spec.name for spec in specs]
    for spec in specs:
        for dep in spec.after:
            if dep not in names:
                raise ConfigError(path, unknown(dep, names, "service") + " in after",
                                  service=spec.name, key="after")
    cycle = find_cycle({spec.name: spec.after for spec in specs})
    if cycle is not None:
        raise ConfigError(path, f"dependency cycle: {format_cycle(cycle)}",
                          service=cycle[0], key="after")


# -- helpers -----------------------------------------------------------------

def _check_name(path, name):
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(path, "bad service name: use 1 to 200 letters, digits, '_', '.' and '-'",
                          service=name)
    if name in RESERVED_NAMES:
        raise ConfigError(path, f"{name!r} is reserved; choose another name", service=name)


def _put_on_path(folder):
    # Left in place on purpose: workers import the user's modules later.
    if not sys.path or sys.path[0] != folder:
        sys.path.insert(0, folder)


def _summary(exc):
    first = str(exc).strip().splitlines()[:1]
    return type(exc).__name__ + "".join(f": {line}" for line in first)


def _user_tb(exc):
    """The traceback text without corral's (and importlib's) own frames."""
    tb = traceback.TracebackException.from_exception(exc)
    frames = list(tb.stack)
    while frames and (frames[0].filename.startswith(_CORRAL_DIR)
                      or frames[0].filename.startswith("<frozen importlib")):
        frames.pop(0)
    tb.stack = traceback.StackSummary.from_list(frames)
    return "".join(tb.format())
