"""RestartGroup: a restart group in a Python config, as [groups.NAME] is in TOML.

    pair = corral.RestartGroup("pair", strategy="one_for_all")
    pair.setServiceParent(application)
    Db().setServiceParent(pair)        # each child is still a top-level service,
    Cache().setServiceParent(pair)     # in its own worker, in the group's order

The group itself never runs: the Python loader takes its children as the
application's top-level services and the group as a GroupSpec, with the same
names and checks as in TOML (settings.group).
"""

from corral.service import MultiService
from corral.spec import GROUP_DEFAULTS


class RestartGroup(MultiService):
    def __init__(self, name, strategy=GROUP_DEFAULTS["strategy"],
                 max_restarts=GROUP_DEFAULTS["max_restarts"],
                 restart_window=GROUP_DEFAULTS["restart_window"]):
        super().__init__()
        self.setName(name)
        self.group_settings = {"strategy": strategy, "max_restarts": max_restarts,
                               "restart_window": restart_window}
