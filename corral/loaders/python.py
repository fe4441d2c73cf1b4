"""The Python loader: a .py (or corral .tac) file that defines `application`.

The file is compiled under its own name, so tracebacks point at the user's
lines, and run as a real module, so that classes defined in it pickle by
reference once it is registered. Each child of `application` is one
top-level service; its settings come from Service.supervise() and go
through settings.supervision(), as a TOML table's do.
"""

import math
import os
import sys
import traceback
import types
from collections.abc import Mapping

from corral import kinds, usercode
from corral.errors import ConfigError
from corral.loaders import common
from corral.service import MultiService, Service
from corral.command import Command
from corral.loaders import toml
from corral.restartgroup import RestartGroup
from corral.settings import Bad, group, read_env_file, supervision
from corral.spec import Config, MasterSpec, ServiceSpec

name = "python"
NO_APPLICATION = (
    "defines no variable 'application'; a config must create one, e.g. "
    '`application = corral.Application("myapp")`, and add services to it '
    "with `svc.setServiceParent(application)`"
)


def claims(path, head):
    return path.endswith((".py", ".tac"))


def load(path, argv=()):
    path = os.path.abspath(path)
    data = common.read(path)
    with usercode.imported_afresh(os.path.dirname(path)):
        master, specs, groups = parse(path, data)
        return common.finish(path, master, specs, groups)


def parse(path, data):
    """(MasterSpec, [ServiceSpec], [GroupSpec]) of the file's `application`."""
    folder = os.path.dirname(path)
    try:
        code = compile(data, path, "exec")
    except SyntaxError as exc:
        raise ConfigError(path, f"raised SyntaxError: {exc.msg}",
                          line=exc.lineno if exc.filename == path else None,
                          detail="".join(traceback.format_exception_only(exc))) from None
    except ValueError as exc:  # e.g. null bytes in the source
        raise ConfigError(path, f"cannot compile: {exc}") from None
    module = types.ModuleType(usercode.CONFIG_MODULE)
    module.__file__ = path
    common.put_on_path(folder)
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__)
                 if f.filename == path]  # the deepest is the user's own line
        raise ConfigError(path, f"raised {common.summary(exc)}",
                          line=lines[-1] if lines else None,
                          detail=common.user_tb(exc)) from None
    if "application" not in module.__dict__:
        raise ConfigError(path, NO_APPLICATION)
    app = module.application
    if not isinstance(app, MultiService):
        raise ConfigError(path, f"'application' is {app!r}, not a corral Application; "
                          'write `application = corral.Application("myapp")`')
    children, members = [], {}  # members: RestartGroup -> its children
    for child in app:
        if isinstance(child, RestartGroup):
            members[child] = list(child)
            children += members[child]
        else:
            children.append(child)
    if not children:
        raise ConfigError(path, "defines no services; add one to 'application' with "
                          "`svc.setServiceParent(application)`")
    # Registered before the specs: their code digests read the classes'
    # source through it (a load that fails puts the old one back: usercode.py).
    sys.modules[usercode.CONFIG_MODULE] = module
    names = dict(zip(map(id, children), _child_names(children)))
    master, base_env = _master(path, folder, getattr(app, "master_settings", {}))
    specs = [service_spec(path, folder, names[id(child)], child, base_env=base_env)
             for child in children]
    groups, taken = [], {}
    for group_service, its in members.items():
        table = {"services": [names[id(c)] for c in its], **group_service.group_settings}
        try:
            found = group(group_service.name, table, list(names.values()), taken)
        except Bad as bad:
            raise ConfigError(path, bad.message, key=f"RestartGroup {group_service.name!r}"
                              + (f" {bad.key}" if bad.key else "")) from None
        taken.update((s, found.name) for s in found.services)
        groups.append(found)
    return master, specs, groups


def _master(path, folder, settings):
    """(MasterSpec, base env) from application.configure(): [corral]'s keys."""
    if not isinstance(settings, Mapping):
        raise ConfigError(path, f"master settings must be a dict (set by configure()), "
                          f"not {settings!r}")
    table = dict(settings)
    base_env = ()
    if "env_file" in table:
        try:
            base_env = read_env_file(table.pop("env_file"), folder)
        except Bad as bad:
            raise ConfigError(path, bad.message, key="env_file") from None
    return toml.master_spec(path, table, folder, where="configure()"), base_env


def service_spec(path, folder, service_name, tree, user_code=True, base_env=()):
    """The ServiceSpec of one top-level Python service (settings from supervise()),
    or of a corral.Command. user_code: its fingerprint holds the digest of
    the code it runs from the config's folder (not for a plugin: installed
    code is not imported again)."""
    common.check_name(path, service_name)
    try:
        if isinstance(tree, Command):
            settings = supervision(service_name, getattr(tree, "supervision", {}), folder,
                                   base_env=base_env, kind=kinds.COMMAND)
            argv = toml.command(tree.argv, settings["cwd"] or folder, settings["env"])
            return ServiceSpec(name=service_name, command=argv, source=path, **settings)
        settings = _supervise_settings(tree)
        code = usercode.follow(tree, folder) if user_code else usercode.Code((), ())
        return ServiceSpec(name=service_name, tree=tree,
                           fingerprint=(tree_fingerprint(tree), code.digest),
                           unfollowed=code.unfollowed, code_files=code.files,
                           source=path, **supervision(service_name, settings, folder,
                                                      base_env=base_env))
    except Bad as bad:
        raise bad.error(path, service_name) from None


def config_from_service(service_name, service, source, folder=None):
    """A Config of one top-level Python service, checked as load() checks a file.

    For plugins: source names where the service came from ("plugin web") in
    messages and is the Config's path; relative paths in its supervise()
    settings resolve against folder (default: the cwd).
    """
    if not isinstance(service, Service):
        raise ConfigError(source, f"{service!r} is not a corral Service", service=service_name)
    spec = service_spec(source, folder or os.getcwd(), service_name, service, user_code=False)
    common.check_after(source, [spec])
    return Config(path=source, master=MasterSpec(), services=(spec,))


def _supervise_settings(child):
    settings = getattr(child, "supervision", {})
    if not isinstance(settings, Mapping):
        raise Bad(f"supervision must be a dict (set by supervise()), not {settings!r}")
    for key in common.WHAT_KEYS:
        if key in settings:
            raise Bad(f"{key!r} is not a supervise() setting: in a Python config the "
                      "service object itself is what runs", key)
    if settings.get("sockets"):
        raise Bad(common.PYTHON_SOCKETS, "sockets")
    return settings


def _child_names(children):
    """child.name, else its class name lowercased, then -2, -3... for repeats."""
    taken = {c.name for c in children if c.name is not None}
    names = []
    for child in children:
        child_name = child.name
        if child_name is None:
            base = child_name = type(child).__name__.lower()
            n = 1
            while child_name in taken:  # also skips names given explicitly
                n += 1
                child_name = f"{base}-{n}"
            taken.add(child_name)
        names.append(child_name)
    return names


# "supervision": supervise()'s settings are the spec's own fields, compared
# there (so a reload that changes numprocs alone scales, core/scale.py).
_SKIP_ATTRS = {"parent", "services", "namedServices", "running", "supervision"}
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
