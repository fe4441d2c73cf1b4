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
from corral.errors import E_CONFIG, ControlError, CorralError
from corral.supervisor.states import AT_REST


async def apply(master):
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
    for record in going:
        master.stop_record(record)
    await master.wait_for(lambda: all(r.state in AT_REST for r in going))
    master.sockets.close(removed + changed)  # before the new trees bind (sockets.py)

    kept = {r.name: r for r in master.records.values() if r.service in unchanged}
    master.records = {}
    for spec in new.services:
        if spec.name in unchanged:
            master.records.update((n, r) for n, r in kept.items() if r.service == spec.name)
        else:
            master.add_service(spec)
    # The master's own settings (socket, log paths) stay as the master started;
    # a service's log_max_bytes/log_backups apply now (they restart nothing).
    master.config = dataclasses.replace(new, master=master.config.master)
    master.loghub.set_rotation(new.services)
    for spec in new.services:
        if spec.name in added + changed and spec.autostart:
            for record in master.instances_of(spec.name):
                master.request_start(record)
    return {"added": added, "removed": removed, "changed": changed, "unchanged": unchanged}
