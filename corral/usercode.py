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
digest() follows a service's classes, and the classes and functions its
attributes hold (a protocol class handed to a built-in TCPServer), to their
modules, and from each module to the user's modules it refers to (`import
pkg.util`, `from pkg.util import f`): a change in any of those files
changes the digest. Classes and functions written in a .py config count by
their own source, not by the file's, so that changing one service there
does not restart the others; a function of the config file that a class
only calls by name is not followed.
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


def digest(tree, folder):
    """A hashable stand-in for the code that tree runs (see above)."""
    user = modules(folder)
    classes = _code_of(tree)
    parts = {f"{cls.__qualname__}: {_text_digest(_source(cls))}"
             for cls in classes if cls.__module__ == CONFIG_MODULE}
    todo = [cls.__module__ for cls in classes if cls.__module__ in user]
    seen = {CONFIG_MODULE}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts.add(f"{name}: {_file_digest(user[name].__file__)}")
        for value in vars(user[name]).values():
            ref = value.__name__ if isinstance(value, types.ModuleType) \
                else getattr(value, "__module__", None)
            if ref in user and ref not in seen:
                todo.append(ref)
    return tuple(sorted(parts))


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
