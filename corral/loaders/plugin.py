"""The plugin loader: `corral run NAME [options]` for an installed plugin.

It claims a target that is no file and does not look like a path; argv are
the plugin's own options (corral.plugins parses them, --help exits there).
A reload calls load(NAME) with no argv: plugins.loader() keeps the options
of the command line for that, and the CLI uses it.

A NAME that is none of corral's plugins may be a twistd plugin (IServiceMaker
in twisted.plugins, with Twisted installed): the Twisted loader makes it
(load_twisted, loaders/tac.py).
"""

import os

from corral import plugins
from corral.errors import ConfigError
from corral.loaders import tac

name = "plugin"
CONFIG_SUFFIXES = (".toml", ".py", ".tac", ".conf", ".ini")


def looks_like_path(target):
    return os.sep in target or target.endswith(CONFIG_SUFFIXES)


def claims(path, head):
    return not os.path.exists(path) and not looks_like_path(path)


class NotAPlugin(ConfigError):
    """NAME is no file and no plugin of either kind."""


def load(path, argv=()):
    found = plugins.find(path)
    if found is None:
        return load_twisted(path, argv)
    if found.error:
        raise plugins.PluginError(found)
    options = plugins.parse_options(found.plugin, argv)
    return plugins.make_config(found.plugin, options, os.getcwd())


def load_twisted(name, argv=(), folder=None):
    """The Config of the twistd plugin NAME with the options argv, in folder
    (twistd's current folder, default the cwd). NotAPlugin, naming every
    plugin of both kinds, when there is none; PluginOptionsDone for --help."""
    if not tac.has_twisted():
        raise NotAPlugin(name, _neither(plugins.names()))
    try:
        return tac.load_plugin(name, argv, folder)
    except tac.NoSuchPlugin as missing:
        raise NotAPlugin(name, _neither(sorted(set(plugins.names()) | set(missing.plugins)))) \
            from None


def _neither(names):
    return f"is neither a config file nor a plugin (plugins: {', '.join(names) or 'none installed'})"
