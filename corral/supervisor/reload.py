"""Reload: re-read the config and change only what changed.

Added services start, removed ones stop and go, changed ones (any setting,
or for Python trees a different structure or changed code, see
config.tree_fingerprint and usercode.py) stop and start again with the new
settings; unchanged ones are not touched,
not even their restart history, nor a count an operator scaled them to.
A service whose numprocs alone changed is scaled (core/scale.py) to the
config's count: its other instances keep running, untouched. A config that
does not load is refused with its error and changes nothing. The [corral]
keys are the master's own and are not applied: the result names those that
changed (`not_applied`).

A loader that only waits on a child process (a Twisted application's probe,
loader.in_thread(path)) runs in a thread, so that the master's loop goes
on serving meanwhile; the others run on the loop's thread.
"""

import asyncio
import dataclasses
import os

from corral import kinds, privileges
from corral import spec as spec_module
from corral.core import messages as m
from corral.core.states import AT_REST
from corral.errors import E_CONFIG, ControlError, CorralError


async def apply(master, stop):
    """stop(records): the operations' ordered stop, awaited until at rest."""
    try:
        new = await load(master.loader, master.config.path)
    except CorralError as exc:
        master.log(f"reload refused: {exc}")
        raise ControlError(E_CONFIG, str(exc)) from None
    plan = spec_module.diff(master.config.services, new.services)
    added, removed, changed, scaled = (plan[k] for k in ("added", "removed", "changed", "scaled"))
    counts = {spec.name: spec.numprocs for spec in new.services}
    summary = [f"{label} {' '.join(names)}" for label, names in
               (("added", added), ("removed", removed), ("changed", changed)) if names]
    summary += [f"scaled {name} to {counts[name]}" for name in scaled]
    master.log("reload: " + ("; ".join(summary) if summary else "nothing changed"))
    kept = not_applied(master, new)
    if kept:
        master.log(f"reload: [corral] {', '.join(kept)} changed: not applied; "
                   "they take effect when the master is started again")

    going = [r for r in master.records.values() if r.service in removed + changed]
    await stop(going)
    master.sockets.close(removed + changed)  # before the new trees bind (sockets.py)

    # The master's own settings (socket, log paths) stay as the master started
    # (MasterSpec.reloaded); a service's log_max_bytes/log_backups apply now
    # (they restart nothing). A scaled service keeps its records (and its
    # tree, which holds the sockets).
    master.replace(dataclasses.replace(new, master=master.config.master.reloaded(new.master)),
                   keep=plan["unchanged"] + scaled)
    master.loghub.set_rotation(new.services)
    if master.goals is not None:  # the config's word is newer than a scale's
        master.goals.forget_counts(removed + changed + scaled)
    leaving = []
    for name in scaled:
        before = list(master.instances_of(name))
        master.feed(m.Scale(name, counts[name]))
        leaving += [r for r in before if r.retired]
    master.loghub.names([r.name for r in master.records.values()])
    starting = [r.name for spec in new.services if spec.name in added + changed and spec.autostart
                for r in master.instances_of(spec.name)]
    if starting:
        master.feed(m.Start(tuple(starting)))
    if leaving:  # the surplus of a scaled service, stopped highest index first
        await master.wait_for(lambda: all(r.state in AT_REST for r in leaving))
    if kept:
        plan["not_applied"] = kept
    say_load_notes(master, new.services)
    blind = unfollowed(new.services)
    if blind:
        plan["unfollowed"] = blind
    return plan


def unfollowed(specs):
    """{service: [what]} of the Python code a reload cannot follow (usercode.py)."""
    return {spec.name: list(spec.unfollowed) for spec in specs if spec.unfollowed}


def say_load_notes(master, specs):
    """What each load (the start, every reload) says in the log about its
    services, before anything of theirs runs.

    - code a reload will not see change, so that stale code never runs
      without a word;
    - a Python service whose user cannot read the master's Python (a pyenv
      under /root, say): its worker, a fork of the master, finds only the
      modules the master had imported, and anything else it imports after
      the drop is a ModuleNotFoundError with no word of why.
    """
    for name, notes in unfollowed(specs).items():
        master.log(f"{name}: not followed by reload: {'; '.join(notes)}")
    stdlib = os.path.dirname(os.__file__)
    for spec in specs:
        if spec.kind is kinds.COMMAND or spec.user is None:
            continue
        acct = privileges.account(spec)
        closed = privileges.unreadable_folder(stdlib, spec.user, privileges.groups_of(acct))
        if closed is not None:
            mode = _mode(closed)
            master.log(f"{spec.name}: runs as {acct.user_label}, who cannot read this Python's "
                       f"standard library at {stdlib} ({closed}{mode}): its worker can import "
                       "only what the master had imported; install Python where that user can "
                       "read it")


def _mode(folder):
    try:
        return f" is mode {os.stat(folder).st_mode & 0o777:04o}"
    except OSError:
        return " cannot be read"


def not_applied(master, new):
    """The [corral] keys that differ in the new load: the master's own settings
    (the socket, the log files, the HTTP and XML-RPC listeners, on_fatal)
    stay as it started, so a reload names them instead of pretending."""
    return spec_module.master_changes(master.as_loaded, new.master)


async def load(loader, path):
    """loader(path), in a thread when the loader says it may (see above)."""
    in_thread = getattr(loader, "in_thread", None)
    if in_thread is not None and in_thread(path):
        return await asyncio.to_thread(loader, path)
    return loader(path)
