"""Plugins: services that `corral run NAME [options]` makes from the command line.

This is twistd's plugin system (IPlugin + IServiceMaker) on Python entry
points. A distribution registers an object under the entry-point group
`corral.plugins`; the entry point's name is the plugin's name (twistd's
`tapname`). The object has:

    name          the name typed after `corral run` (equal to the entry point's)
    description   one line, shown by `corral plugins` and `corral run NAME --help`
    options       a list of (flags, kwargs) pairs, each passed to argparse's
                  add_argument(*flags, **kwargs) (flags: a string or a tuple of
                  strings); or a callable add_arguments(parser) for full control
    make_service(options) -> corral.Service
                  options is the argparse.Namespace of the parsed options

Plugin below is a base class with those attributes (subclass it, or call
it with keyword arguments). An entry point may also name a class: it is
instantiated with no arguments. docs/plugins.md has an example.

Discovery never lets one broken plugin hide the others: each entry point
is loaded on its own, and one that fails to import (or is not a plugin) is
reported by name with its error. `corral run NAME` loads only NAME.
"""

import argparse
import importlib
import os
import traceback
from dataclasses import dataclass

from corral.errors import CorralError

GROUP = "corral.plugins"


class PluginError(CorralError):
    """`corral run NAME` of a plugin that cannot be loaded (exit 1)."""

    def __init__(self, found):
        self.found = found
        self.detail = found.detail  # the traceback, printed before the error line
        super().__init__(f"plugin {found.name!r} ({found.value}) is broken: {found.error}")


class Plugin:
    """A base for plugin authors: twistd's IServiceMaker.

    Either subclass it and set name/description/options and define
    make_service(self, options), or build one from parts:
    Plugin(name="hello", description="...", options=[...], make_service=func).
    """

    name = None
    description = ""
    options = ()  # (flags, kwargs) pairs, see the module's docstring

    def __init__(self, name=None, description=None, options=None, make_service=None):
        if name is not None:
            self.name = name
        if description is not None:
            self.description = description
        if options is not None:
            self.options = options
        if make_service is not None:
            self.make_service = make_service  # a plain function of (options)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"

    def add_arguments(self, parser):
        add_options(parser, self.options)

    def make_service(self, options):
        raise NotImplementedError(f"plugin {self.name!r} does not define make_service(options)")


def add_options(parser, options):
    """Add a plugin's `options` to an argparse parser (see the module docstring)."""
    if callable(options):
        options(parser)
        return
    for entry in options or ():
        try:
            flags, kwargs = entry
        except (TypeError, ValueError):
            raise TypeError(f"an option must be a (flags, kwargs) pair, not {entry!r}") from None
        flags = (flags,) if isinstance(flags, str) else tuple(flags)
        parser.add_argument(*flags, **dict(kwargs))


@dataclass(frozen=True)
class Found:
    """One entry point of the group: loaded (plugin) or broken (error)."""

    name: str
    value: str  # "module:attr", from the entry point
    plugin: object = None
    error: str = None  # "ImportError: ..." when broken
    detail: str = None  # its traceback, for `corral run NAME`

    @property
    def description(self):
        text = getattr(self.plugin, "description", None) or ""
        return " ".join(str(text).split())


def entry_points():
    """The group's entry points; tests replace this function."""
    # Imported here: importlib.metadata (with email, zipfile and csv) is
    # 1.9 MB of a master's RSS, and only a plugin's name needs it.
    from importlib import metadata

    return list(metadata.entry_points(group=GROUP))


def _unique(eps):
    """name -> entry points with that name, one per distinct value, in order."""
    by_name = {}
    for ep in eps:
        same = by_name.setdefault(ep.name, [])
        if all(other.value != ep.value for other in same):
            same.append(ep)
    return by_name


def names(eps=None):
    """The plugin names, sorted, without importing anything."""
    return sorted(_unique(entry_points() if eps is None else eps))


def discover(eps=None):
    """Load every plugin: a list of Found, sorted by name."""
    by_name = _unique(entry_points() if eps is None else eps)
    return [_load(name, by_name[name]) for name in sorted(by_name)]


def find(name, eps=None):
    """The Found for name (loaded or broken), or None when no entry point has it."""
    by_name = _unique(entry_points() if eps is None else eps)
    return _load(name, by_name[name]) if name in by_name else None


def _load(name, same):
    ep = same[0]
    if len(same) > 1:
        values = ", ".join(other.value for other in same)
        return Found(name, ep.value, error=f"registered more than once: {values}")
    try:
        obj = ep.load()
        if isinstance(obj, type):
            obj = obj()
    except (Exception, SystemExit) as exc:
        return Found(name, ep.value, error=_summary(exc), detail=_traceback(exc))
    if getattr(obj, "name", None) is None:
        try:
            obj.name = name
        except AttributeError:
            pass
    problem = _check(name, obj)
    if problem:
        return Found(name, ep.value, error=problem)
    return Found(name, ep.value, plugin=obj)


def _check(name, obj):
    own = getattr(obj, "name", None)
    if own != name:
        return f"{obj!r} has name {own!r}, not the entry point's name {name!r}"
    if not callable(getattr(obj, "make_service", None)):
        return f"{obj!r} has no make_service(options)"
    return None


def _summary(exc):
    first = str(exc).strip().splitlines()[:1]
    return type(exc).__name__ + "".join(f": {line}" for line in first)


_OWN_DIRS = (os.path.dirname(os.path.abspath(__file__)) + os.sep,
             os.path.dirname(os.path.abspath(importlib.__file__)) + os.sep, "<frozen ")


def _traceback(exc):
    """The traceback text without corral's and importlib's leading frames."""
    tb = traceback.TracebackException.from_exception(exc)
    frames = list(tb.stack)
    while frames and frames[0].filename.startswith(_OWN_DIRS):
        frames.pop(0)
    tb.stack = traceback.StackSummary.from_list(frames)
    return "".join(tb.format())


def listing(found, twistd=()):
    """`corral plugins`: name, then description or (broken: ...), names
    aligned; then twistd's (twistd: [{"name", "description"}]), if any."""
    if not found:
        text = f"no plugins installed (none in the entry-point group {GROUP!r})"
    else:
        text = _rows([(f.name, f"(broken: {f.error})" if f.error else f.description) for f in found])
    if twistd:
        own = {f.name for f in found}
        text += "\n\ntwistd plugins (IServiceMaker in twisted.plugins):\n" + _rows(
            [(t["name"], f"(hidden by corral's {t['name']!r}) " * (t["name"] in own) + t["description"])
             for t in twistd])
    return text


def _rows(rows):
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {text}".rstrip() for name, text in rows)


# -- using one ---------------------------------------------------------------------


def option_parser(plugin, prog="corral run"):
    """The argparse parser of a plugin's options (`corral run NAME --help`)."""
    name = plugin.name
    parser = argparse.ArgumentParser(
        prog=f"{prog} {name}",
        usage=f"{prog} [run options] {name} [options]",
        description=getattr(plugin, "description", None) or None,
        epilog=f"The options of `{prog}` itself go before the plugin's name {name!r}.",
    )
    adder = getattr(plugin, "add_arguments", None)
    if callable(adder):
        adder(parser)
    else:
        add_options(parser, getattr(plugin, "options", ()))
    return parser


def parse_options(plugin, argv, prog="corral run"):
    """Parse argv with the plugin's options; --help and errors exit as argparse does."""
    return option_parser(plugin, prog).parse_args(list(argv))


def make_config(plugin, options, folder=None):
    """A checked Config of one top-level service, the plugin's make_service(options).

    Raises ConfigError (source "plugin NAME") when make_service raises or
    returns something that is not a corral Service.
    """
    from corral.loaders.python import config_from_service  # corral.service and co.
    from corral.errors import ConfigError
    from corral.service import Service

    name = plugin.name
    source = f"plugin {name}"
    try:
        service = plugin.make_service(options)
    except (Exception, SystemExit) as exc:
        raise ConfigError(source, f"make_service raised {_summary(exc)}", service=name,
                          detail=_traceback(exc)) from None
    if not isinstance(service, Service):
        raise ConfigError(source, f"make_service returned {service!r}, not a corral Service",
                          service=name)
    if service.name is None and service.parent is None:
        service.setName(name)
    return config_from_service(name, service, source, folder)


def loader(plugin, options, folder=None):
    """A config loader for the master (reload calls it): make_service again."""
    def load(_path):
        return make_config(plugin, options, folder)
    return load
