"""The TOML loader: a [corral] table and [services.NAME] tables.

A service runs a `command` (exec'd, never through a shell) or a Python
`service` factory ("module:callable" called with `args`); every other key
goes through settings.supervision(), as Service.supervise() settings do.
"""

import os
import re
import shlex
import shutil
import tomllib

from corral import httpspec, kinds, usercode
from corral.errors import ConfigError
from corral.loaders import common
from corral.service import Service
from corral.settings import (MASTER_CHECKS, Bad, group, read_env_file, resolve, supervision,
                             unknown)
from corral.spec import MASTER_DEFAULTS, MasterSpec, ServiceSpec

name = "toml"


def claims(path, head):
    return path.endswith(".toml")


def load(path, argv=()):
    path = os.path.abspath(path)
    data = common.read(path)
    # The user's code imported again: a reload runs changed code (usercode.py).
    with usercode.imported_afresh(os.path.dirname(path)):
        master, specs, groups = parse(path, data)
        return common.finish(path, master, specs, groups)


def parse(path, data):
    """(MasterSpec, [ServiceSpec], [GroupSpec]) from the file's bytes."""
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
        if key not in ("corral", "services", "groups"):
            raise ConfigError(path, unknown(key, ("corral", "services", "groups"),
                                            "top-level key")
                              + "; a config has a [corral] table, [services.NAME] "
                              "and [groups.NAME] tables", key=key)
    folder = os.path.dirname(path)
    corral_table = doc.get("corral", {})
    base_env = ()
    if isinstance(corral_table, dict) and "env_file" in corral_table:
        corral_table = dict(corral_table)
        try:  # the [corral] env_file: under every service's own environment
            base_env = read_env_file(corral_table.pop("env_file"), folder)
        except Bad as bad:
            raise ConfigError(path, bad.message, key="env_file") from None
    master = master_spec(path, corral_table, folder)
    services = doc.get("services", {})
    if not isinstance(services, dict):
        raise ConfigError(path, "must be a table of [services.NAME] tables", key="services")
    specs = []
    for service_name, table in services.items():
        common.check_name(path, service_name)
        try:
            specs.append(_service(path, folder, service_name, table, base_env))
        except Bad as bad:
            raise bad.error(path, service_name) from None
    return master, specs, _groups(path, doc.get("groups", {}), specs)


def _groups(path, tables, specs):
    if not isinstance(tables, dict):
        raise ConfigError(path, "must be a table of [groups.NAME] tables", key="groups")
    known, taken, groups = [spec.name for spec in specs], {}, []
    for group_name, table in tables.items():
        try:
            found = group(group_name, table, known, taken)
        except Bad as bad:
            raise ConfigError(path, bad.message,
                              key=f"groups.{group_name}" + (f".{bad.key}" if bad.key else ""))
        taken.update((service, group_name) for service in found.services)
        groups.append(found)
    return groups


def master_spec(path, table, folder, where="[corral]"):
    """The MasterSpec of a [corral] table (or of a Python config's configure())."""
    if not isinstance(table, dict):
        raise ConfigError(path, "must be a table ([corral])", key="corral")
    settings = {}
    for key, value in table.items():
        if key not in MASTER_DEFAULTS:
            raise ConfigError(path, unknown(key, [*MASTER_DEFAULTS, "env_file"], "key")
                              + f" in {where}", key=key)
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
    refused = httpspec.refusal(settings.get("http"), settings.get("http_auth", "token"))
    if refused:
        raise ConfigError(path, refused, key="http")
    return MasterSpec(**settings)


def _service(path, folder, service_name, table, base_env=()):
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
    rest = {k: v for k, v in table.items() if k not in common.WHAT_KEYS}
    settings = supervision(service_name, rest, folder, extra=common.WHAT_KEYS, base_env=base_env,
                           kind=kinds.COMMAND if "command" in table else kinds.PYTHON_TREE)
    fields = dict(name=service_name, source=path, **settings)
    if "command" in table:
        base = settings["cwd"] or folder
        return ServiceSpec(command=command(table["command"], base, settings["env"]), **fields)
    if settings["sockets"]:
        raise Bad(common.PYTHON_SOCKETS, "sockets")
    factory, args, tree = _factory(folder, table["service"], table.get("args", {}))
    code = usercode.follow(tree, folder)
    return ServiceSpec(factory=factory, args=args, tree=tree,
                       fingerprint=("factory", factory, args, code.digest),
                       unfollowed=code.unfollowed, code_files=code.files, **fields)


def command(value, base, env):
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
    common.put_on_path(folder)
    try:
        # __import__, not importlib.import_module: one frame less to hide.
        obj = __import__(module_name, fromlist=["_"])
    except (Exception, SystemExit) as exc:
        missing = getattr(exc, "name", None)
        if isinstance(exc, ModuleNotFoundError) and missing and \
                (module_name + ".").startswith(missing + "."):
            raise Bad(f"cannot import {module_name!r}: no module named {missing!r} "
                      "(looked in the config's folder and sys.path)", "service") from None
        raise Bad(f"importing {module_name!r} raised {common.summary(exc)}", "service",
                  common.user_tb(exc)) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise Bad(f"{module_name!r} has no attribute {attr!r}", "service")
        obj = getattr(obj, part)
    if not callable(obj):
        raise Bad(f"{value} is a {type(obj).__name__}, not a callable", "service")
    try:
        tree = obj(**args)
    except (Exception, SystemExit) as exc:
        raise Bad(f"{value}(...) raised {common.summary(exc)}", "service",
                  common.user_tb(exc)) from None
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
