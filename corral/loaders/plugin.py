"""The plugin loader: `corral run NAME [options]` for an installed plugin.

It claims a target that is no file and does not look like a path; argv are
the plugin's own options (corral.plugins parses them, --help exits there).
A reload calls load(NAME) with no argv: plugins.loader() keeps the options
of the command line for that, and the CLI uses it.
"""

import os

from corral import plugins
from corral.errors import ConfigError

name = "plugin"
CONFIG_SUFFIXES = (".toml", ".py", ".tac", ".conf", ".ini")


def looks_like_path(target):
    return os.sep in target or target.endswith(CONFIG_SUFFIXES)


def claims(path, head):
    return not os.path.exists(path) and not looks_like_path(path)


def load(path, argv=()):
    found = plugins.find(path)
    if found is None:
        known = ", ".join(plugins.names()) or "none installed"
        raise ConfigError(path, f"is neither a config file nor a plugin (plugins: {known})")
    if found.error:
        raise plugins.PluginError(found)
    options = plugins.parse_options(found.plugin, argv)
    return plugins.make_config(found.plugin, options, os.getcwd())
