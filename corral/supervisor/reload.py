"""Reload: re-read the config and change only what changed.

Added services start, removed ones stop and go, changed ones (any setting,
or for Python trees a different structure or changed code, see
config.tree_fingerprint and usercode.py) stop and start again with the new
settings; unchanged ones are not touched,
not even their restart history. A config that does not load is refused with
its error and changes nothing.
"""

import dataclasses

from corral import spec as spec_module
from corral.core import messages as m
from corral.errors import E_CONFIG, ControlError, CorralError


async def apply(master, stop):
    """stop(records): the operations' ordered stop, awaited until at rest."""
    try:
        new = master.loader(master.config.path)
    except CorralError as exc:
        master.log(f"reload refused: {exc}")
        raise ControlError(E_CONFIG, str(exc)) from None
    added, removed, changed, unchanged = spec_module.diff(master.config.services, new.services)
    summary = [f"{label} {' '.join(names)}" for label, names in
               (("added", added), ("removed", removed), ("changed", changed)) if names]
    master.log("reload: " + ("; ".join(summary) if summary else "nothing changed"))

    going = [r for r in master.records.values() if r.service in removed + changed]
    await stop(going)
    master.sockets.close(removed + changed)  # before the new trees bind (sockets.py)

    # The master's own settings (socket, log paths) stay as the master started;
    # a service's log_max_bytes/log_backups apply now (they restart nothing).
    master.replace(dataclasses.replace(new, master=master.config.master), keep=unchanged)
    master.loghub.set_rotation(new.services)
    master.loghub.names([n for spec in new.services for n in spec.instance_names()])
    starting = [r.name for spec in new.services if spec.name in added + changed and spec.autostart
                for r in master.instances_of(spec.name)]
    if starting:
        master.feed(m.Start(tuple(starting)))
    return {"added": added, "removed": removed, "changed": changed, "unchanged": unchanged}
