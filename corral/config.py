"""Load a config into a Config: corral.loaders picks the loader.

Kept as the master's entry point (`Master(loader=config.load)`, reload):
load(path) reads any format the registry knows. The formats themselves
live in corral/loaders/, one module each.
"""

from corral.loaders import load  # noqa: F401 - the master's and reload's loader
from corral.loaders.common import NAME_RE, RESERVED_NAMES  # noqa: F401
from corral.loaders.python import config_from_service, tree_fingerprint  # noqa: F401
