"""The user's Python code in the master: which modules it is, forgetting them
before a load, and a digest of the code one Python service runs.

A reload loads the config in the master again. Python keeps imported
modules, so without forget() a reload would build the same old classes and
a changed module would never run. A Python service's fingerprint holds
digest(), so the reload restarts the services whose code changed, and only
those (reload.py).

The user's modules are those loaded from the config's folder or below it,
but not corral, Python's own or an installed package there (a config in ~
may have a pyenv or a venv below it).
follow() follows a service's classes, and the classes and functions its
attributes hold (a protocol class handed to a built-in TCPServer), to their
modules, and from each module to the user's modules it refers to (`import
pkg.util`, `from pkg.util import f`): a change in any of those files
changes the digest. Classes and functions written in a .py config count by
their own source, not by the file's, so that changing one service there
does not restart the others; with them, the functions and classes of the
config that their code calls by name (`handle(data)` in a method), and so
on. What it cannot follow it names (Code.unfollowed): code whose source
cannot be read, and code of modules outside the config's folder that are
not installed packages (a `src/` beside it), so that nothing stale runs
without a word.
"""

import contextlib
import functools
import hashlib
import importlib.util
import inspect
import os
import sys
import sysconfig
import types
import typing

from corral.service import Service, walk

CONFIG_MODULE = "__corral_config__"  # a .py config, as config.py registers it


def _not_users():
    """Folders whose modules are never the user's, even below the config's
    folder: corral, Python's own library (a config in ~ has ~/.pyenv below
    it), a venv's and the installed packages. Not the prefixes themselves:
    an app may live in /usr/local/app."""
    paths = {os.path.dirname(os.path.abspath(__file__))}
    paths.update(sysconfig.get_paths().get(key, "") for key in
                 ("stdlib", "platstdlib", "purelib", "platlib"))
    return tuple(os.path.join(os.path.realpath(p), "") for p in paths if p)


def modules(folder):
    """{name: module} of the user's modules loaded now (see above)."""
    prefixes = tuple({os.path.join(os.path.abspath(folder), ""),
                      os.path.join(os.path.realpath(folder), "")})
    excluded = None
    found = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.startswith(prefixes):
            continue  # (a plain prefix test first: realpath costs ~10 us a module)
        excluded = excluded or _not_users()
        real = os.path.realpath(path)
        if real.startswith(prefixes) and not real.startswith(excluded) \
                and "-packages" + os.sep not in real:
            found[name] = module
    return found


@contextlib.contextmanager
def imported_afresh(folder):
    """Around a load: the user's modules are imported again inside; if the
    load fails, the ones it imported go and the old ones come back."""
    old = forget(folder)
    try:
        yield
    except BaseException:
        for name in modules(folder):
            del sys.modules[name]
        sys.modules.update(old)
        raise


def forget(folder):
    """Take the user's modules out of sys.modules, so that a load imports them
    again; return them.

    Their cached bytecode goes too: a .pyc is trusted while the source has
    the same size and mtime in whole seconds, so an edit made within the
    second of the last import would otherwise go unseen."""
    gone = modules(folder)
    for name, module in gone.items():
        del sys.modules[name]
        with contextlib.suppress(OSError, ValueError, NotImplementedError):
            os.unlink(importlib.util.cache_from_source(module.__file__))
    return gone


class Code(typing.NamedTuple):
    """What follow() found of one service's code."""

    digest: tuple  # hashable: changes when a file or config source it runs changes
    unfollowed: tuple  # "what: why" of code a change to which would go unseen
    files: tuple = ()  # (path, sha1) of the files it was read from: changed_since()


def follow(tree, folder):
    """The digest of the code tree runs, and what of it cannot be followed (see above)."""
    user = modules(folder)
    found = _code_of(tree)
    config = sys.modules.get(CONFIG_MODULE)
    own = _called_by_name({obj for obj in found if obj.__module__ == CONFIG_MODULE}, config)
    parts, unfollowed = set(), set()
    for obj in own:
        text = _source(obj)
        if text is None:
            unfollowed.add(f"{obj.__qualname__}: its source cannot be read")
        parts.add(f"{obj.__qualname__}: {_text_digest(text)}")
    todo = [obj.__module__ for obj in found if obj.__module__ in user]
    todo += [name for name in _modules_named(own, config) if name in user]
    unfollowed.update(_outside(found, folder))
    seen = {CONFIG_MODULE}
    files = {config.__file__} if own and isinstance(getattr(config, "__file__", None), str) else set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        files.add(user[name].__file__)
        parts.add(f"{name}: {_file_digest(user[name].__file__)}")
        for value in vars(user[name]).values():
            ref = value.__name__ if isinstance(value, types.ModuleType) \
                else getattr(value, "__module__", None)
            if ref in user and ref not in seen:
                todo.append(ref)
    return Code(tuple(sorted(parts)), tuple(sorted(unfollowed)),
                tuple((path, _file_digest(path)) for path in sorted(files)))


def changed_since(files):
    """The paths of Code.files that differ on disk now: a restart runs the
    code of the last load, and says so when the files moved on (api.restart)."""
    return [path for path, sha in files if _file_digest(path) != sha]


def _codes(obj):
    """The code objects of a function or of a class's methods, nested ones too."""
    if isinstance(obj, type):
        funcs = []
        for value in vars(obj).values():
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            elif isinstance(value, property):
                funcs += [f for f in (value.fget, value.fset, value.fdel) if f is not None]
                continue
            funcs.append(value)
        todo = [f.__code__ for f in funcs if isinstance(f, types.FunctionType)]
    else:
        todo = [obj.__code__] if isinstance(obj, types.FunctionType) else []
    while todo:
        code = todo.pop()
        yield code
        todo += [c for c in code.co_consts if isinstance(c, types.CodeType)]


def _globals_used(obj, namespace):
    for code in _codes(obj):
        for name in code.co_names:
            if name in namespace:
                yield namespace[name]


def _called_by_name(own, config):
    """own, with the config's functions and classes their code names, and theirs."""
    if config is None:
        return own
    namespace = vars(config)
    todo, result = list(own), set(own)
    while todo:
        for value in _globals_used(todo.pop(), namespace):
            if isinstance(value, (type, types.FunctionType)) and value not in result \
                    and getattr(value, "__module__", None) == CONFIG_MODULE:
                result.add(value)
                todo.append(value)
    return result


def _modules_named(own, config):
    """The modules the config's code names: `util.f()`, or `f()` after `from util import f`."""
    namespace = vars(config) if config is not None else {}
    for obj in own:
        for value in _globals_used(obj, namespace):
            yield value.__name__ if isinstance(value, types.ModuleType) \
                else getattr(value, "__module__", None)


def _outside(found, folder):
    """"module: ..." for code from a plain folder outside the config's (not
    corral, Python's own or an installed package): it is not imported afresh."""
    inside = os.path.join(os.path.realpath(folder), "")
    excluded = _not_users()
    for name in sorted({obj.__module__ for obj in found} - {CONFIG_MODULE}):
        path = getattr(sys.modules.get(name), "__file__", None)
        if not isinstance(path, str):
            continue
        real = os.path.realpath(path)
        if not real.startswith(inside) and not real.startswith(excluded) \
                and "-packages" + os.sep not in real:
            yield (f"{name} ({path}): outside the config's folder, not imported afresh; "
                   "after changing it, restart the master")


FOLLOW_DEPTH = 3  # attributes of attributes of a service's attributes
FOLLOW_MAX = 10_000  # objects looked at per service: a big data structure is not code


def _code_of(tree):
    """The classes and functions tree's objects come from: each service's
    class, and what its attributes hold, a few levels down (a protocol class
    given to a built-in TCPServer, a factory's instance, a handler function),
    but not other services (each counts for its own top-level service)."""
    own = {id(service) for service in walk(tree)}
    found, seen = set(), set()
    todo = [(service, 0) for service in walk(tree)]
    while todo and len(seen) < FOLLOW_MAX:
        obj, depth = todo.pop()
        if id(obj) in seen or (isinstance(obj, Service) and id(obj) not in own):
            continue
        seen.add(id(obj))
        if isinstance(obj, type):
            found.update(obj.__mro__)
            continue
        if isinstance(obj, (types.FunctionType, types.MethodType, functools.partial)):
            func = getattr(obj, "__func__", None) or getattr(obj, "func", None) or obj
            if isinstance(func, types.FunctionType):
                found.add(func)
            continue
        found.update(type(obj).__mro__)
        if depth >= FOLLOW_DEPTH:
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            todo.extend((value, depth + 1) for value in obj)
        elif isinstance(obj, dict):
            todo.extend((value, depth + 1) for value in obj.values())
        elif isinstance(getattr(obj, "__dict__", None), dict):
            todo.extend((value, depth + 1) for value in vars(obj).values())
    return {item for item in found if isinstance(getattr(item, "__module__", None), str)}


def _source(cls):
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return None


def _text_digest(text):
    return None if text is None else hashlib.sha1(text.encode()).hexdigest()


def _file_digest(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha1(f.read()).hexdigest()
    except OSError:
        return None
