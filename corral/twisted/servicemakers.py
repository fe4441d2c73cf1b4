"""twistd plugins: the IServiceMaker plugins of `twisted.plugins`, found,
given their options and made into an application as `twistd NAME [options]`
does, for `corral run NAME [options]`.

Like a .tac, a plugin is made only where Twisted may run: the master's
throwaway probe (probe.py) and the worker (workers/runtimes/tx.py), never
in the master, because a plugin's module may install a reactor by being
imported. Both make it with load() below, from the same name, options and
folder, so the worker runs the tree the master was told about.
"""

import contextlib
import io
import os
import sys
import traceback

from corral.twisted.tacfile import TacError, child_names


class OptionsDone(Exception):
    """The options asked for no run: --help (code 0) or a usage error (2).
    text is what twistd would print (the plugin's usage, and the error)."""

    def __init__(self, code, text):
        super().__init__(text)
        self.code, self.text = code, text


def _on_path(folder):
    """As twistd: the current folder first on sys.path, so that its
    twisted/plugins/ folder is searched too (the plugin package's __path__
    is made from sys.path when it is first imported)."""
    folder = os.path.abspath(folder or os.getcwd())
    if not sys.path or sys.path[0] != folder:
        sys.path.insert(0, folder)
    if "twisted.plugins" in sys.modules:  # imported before: give it the folder too
        from twisted.plugin import pluginPackagePaths

        package = sys.modules["twisted.plugins"]
        package.__path__.extend(p for p in pluginPackagePaths("twisted.plugins")
                                if p not in package.__path__)


def makers(folder=None):
    """{tapname: plugin} of every IServiceMaker plugin, as twistd lists them."""
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    _on_path(folder)
    found = {}
    for plugin in sorted(getPlugins(IServiceMaker), key=lambda p: p.tapname):
        found[plugin.tapname] = plugin  # of two with one name, the one twistd keeps
    return found


def describe(folder=None):
    """[{"name", "description"}] of the plugins, sorted (`corral plugins`)."""
    return [{"name": name, "description": " ".join(str(plugin.description or "").split())}
            for name, plugin in makers(folder).items()]


def parse(plugin, argv):
    """The plugin's usage.Options, parsed from argv; OptionsDone for --help
    or a usage error."""
    from twisted.python import usage

    name = plugin.tapname
    options = plugin.options()
    # Its own synopsis and text, if it has them; else ours, not python -m's
    # (usage.Options falls back on the __main__ module's docstring).
    if "synopsis" not in dir(options):
        options.synopsis = f"Usage: corral run [run options] {name} [options]"
    if getattr(options, "longdesc", None) is None:
        options.longdesc = str(getattr(plugin, "description", "") or "")
    shown = io.StringIO()
    try:
        with contextlib.redirect_stdout(shown):  # opt_help prints, then exits
            options.parseOptions(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        raise OptionsDone(code, shown.getvalue()) from None
    except usage.UsageError as exc:
        raise OptionsDone(2, f"{options}\ncorral run {name}: {exc}\n") from None
    return options


def load(name, argv=(), folder=None):
    """(application, [(name, service)]): the plugin's service, made from the
    options in argv and put in an Application named after the plugin, as
    twistd does. The service is named after the plugin unless it has a name
    (corral's own plugins' rule): that is the worker's name."""
    from twisted.application.service import Application, IService

    plugin = makers(folder).get(name)
    if plugin is None:
        raise TacError(f"no twistd plugin is named {name!r}")
    options = parse(plugin, argv)
    try:
        made = plugin.makeService(options)
    except (Exception, SystemExit) as exc:
        raise TacError(f"makeService raised {type(exc).__name__}: {exc}",
                       detail=traceback.format_exc()) from None
    service = IService(made, None)
    if service is None:
        raise TacError(f"makeService returned {made!r}, which is no IService")
    if getattr(service, "name", None) is None:
        service.setName(name)
    application = Application(name)
    service.setServiceParent(application)
    return application, list(zip(child_names([service]), [service]))


def module_folder(name, folder=None):
    """The folder on sys.path that holds the plugin's module (twisted/plugins/
    under it): its code, for the fingerprint of a reload."""
    plugin = makers(folder).get(name)
    module = sys.modules.get(type(plugin).__module__) if plugin is not None else None
    path = getattr(module, "__file__", None)
    if not path:
        return None, None
    path = os.path.abspath(path)
    return path, os.path.dirname(os.path.dirname(os.path.dirname(path)))
