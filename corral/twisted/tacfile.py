"""Load a Twisted application file (.tac or .py) as `twistd -y` does.

Used where Twisted may run: the master's throwaway probe (probe.py) and the
worker (workers/runtimes/tx.py), never the master itself, because many
.tac files install a reactor simply by being imported. The file runs as a
module of its own, compiled under its own name so that tracebacks point at
the user's lines, with its folder first on sys.path (twistd's examples
import their modules from beside the .tac).
"""

import os
import sys
import traceback
import types

MODULE = "__corral_tac__"


class TacError(Exception):
    """The file cannot give a Twisted application; line: the user's, if known."""

    def __init__(self, message, line=None, detail=None):
        super().__init__(message)
        self.message, self.line, self.detail = message, line, detail


def load(path):
    """Run the file; return (application, [(name, top-level service)])."""
    from twisted.application.service import IServiceCollection

    path = os.path.abspath(path)
    folder = os.path.dirname(path)
    if not sys.path or sys.path[0] != folder:
        sys.path.insert(0, folder)
    try:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec")
    except OSError as exc:
        raise TacError(f"cannot read: {exc.strerror or exc}") from None
    except SyntaxError as exc:
        raise TacError(f"raised SyntaxError: {exc.msg}",
                       exc.lineno if exc.filename == path else None,
                       "".join(traceback.format_exception_only(exc))) from None
    module = types.ModuleType(MODULE)
    module.__file__ = path
    sys.modules[MODULE] = module  # its classes pickle by reference, as a .py config's
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
        first = str(exc).strip().splitlines()[:1]
        raise TacError(f"raised {type(exc).__name__}" + "".join(f": {x}" for x in first),
                       lines[-1] if lines else None, traceback.format_exc()) from None
    if "application" not in module.__dict__:
        raise TacError("defines no variable 'application'; a .tac must create one, e.g. "
                       '`application = service.Application("myapp")`, and add services '
                       "to it with `svc.setServiceParent(application)`")
    application = module.application
    collection = IServiceCollection(application, None)
    if collection is None:
        raise TacError(f"'application' is {application!r}, which holds no services "
                       "(IServiceCollection); make it with twisted.application.service."
                       "Application(name)")
    children = list(collection)
    if not children:
        raise TacError("defines no services; add one to 'application' with "
                       "`svc.setServiceParent(application)`")
    return application, list(zip(child_names(children), children))


def child_names(children):
    """child.name, else its class name lowercased, then -2, -3... for repeats
    (the rule of corral's own .py configs, config._child_names)."""
    taken = {c.name for c in children if getattr(c, "name", None) is not None}
    names = []
    for child in children:
        name = getattr(child, "name", None)
        if name is None:
            base = name = type(child).__name__.lower()
            n = 1
            while name in taken:
                n += 1
                name = f"{base}-{n}"
            taken.add(name)
        names.append(name)
    return names


def user_files(folder):
    """The files of the modules imported from the file's folder (its code, for
    the fingerprint that decides whether a reload restarts it)."""
    folder = os.path.abspath(folder) + os.sep
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and os.path.abspath(path).startswith(folder) and "site-packages" not in path:
            found.append(os.path.abspath(path))
    return sorted(set(found))
