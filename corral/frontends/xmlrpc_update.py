"""supervisord's reread and update (reloadConfig, addProcessGroup,
removeProcessGroup) over Operations.preview and reload, by group.

supervisorctl's `update` calls reloadConfig, then for each removed group
stopProcessGroup and removeProcessGroup, for each changed one those two and
addProcessGroup, for each added one addProcessGroup. corral applies the
whole difference with one reload, at the first add or remove; the calls
after it find their part done (`applied`, until the next reloadConfig).
"""

from corral.errors import ControlError
from corral.frontends.xmlrpc_names import Names, group_diff
from corral.frontends.xmlrpc_structs import Faults, RPCError, rpc, state_of


class UpdateMethods:
    """interface: the XMLRPCInterface (its ops, names and group())."""

    def __init__(self, interface):
        self.interface = interface
        self.applied = set()  # groups an `update`'s first add or remove applied

    def _preview(self):
        """What a reload would do, by supervisord's group names:
        {"added", "changed", "removed", "unchanged"}."""
        try:
            services = self.interface.ops.preview()
        except ControlError as exc:
            raise RPCError(Faults.CANT_REREAD, exc.message) from None
        new = Names(services["config"])
        added, changed, removed = group_diff(self.interface.names, new, services)
        return {"added": added, "changed": changed, "removed": removed,
                "unchanged": [g for g in new.members if g not in added + changed]}

    @rpc("array")
    def supervisor_reloadConfig(self):
        """Re-read the config: [[added, changed, removed]] group names, applying nothing."""
        diff = self._preview()
        self.applied.clear()  # an `update` begins here
        return [[diff["added"], diff["changed"], diff["removed"]]]

    async def _apply(self, diff):
        """corral applies the whole difference at once, at the first add or
        remove of an `update`; its later stops, adds and removes of the
        groups it changed find their part done (until the next reloadConfig).
        A changed group restarts whole, as under supervisord: all of its
        processes stop first, and those that autostart start again after."""
        changed = [i for group in diff["changed"] for i in self.interface.names.members.get(group, ())]
        if changed:
            await self.interface.ops.stop(changed)
        try:
            await self.interface.ops.reload()
        except ControlError as exc:
            raise RPCError(Faults.CANT_REREAD, exc.message) from None
        self.applied.update(diff["added"] + diff["changed"] + diff["removed"])
        names = self.interface.names  # the new config's
        autostart = {i for spec in self.interface.ops.config.services if spec.autostart
                     for i in self.interface.ops.instance_names(spec.name)}
        again = [i for group in diff["changed"] for i in names.members.get(group, ())
                 if i in autostart]
        if again:
            await self.interface.ops.start(again, wait=False)

    @rpc("boolean", "string")
    async def supervisor_addProcessGroup(self, name):
        """Add the group of a service new (or changed) in the config."""
        if name in self.applied:
            return True
        diff = self._preview()
        if name in diff["added"] + diff["changed"]:
            await self._apply(diff)
            return True
        if name in diff["unchanged"]:
            raise RPCError(Faults.ALREADY_ADDED, name)
        raise RPCError(Faults.BAD_NAME, name)

    @rpc("boolean", "string")
    async def supervisor_removeProcessGroup(self, name):
        """Remove the group of a service gone (or changed) from the config;
        its processes must be stopped first."""
        if name in self.applied:
            return True
        if any(state_of(s.state)[1] not in ("STOPPED", "EXITED", "FATAL")
               for s in self.interface.group(name)):
            raise RPCError(Faults.STILL_RUNNING, name)
        diff = self._preview()
        if name in diff["removed"] + diff["changed"]:
            await self._apply(diff)
            return True
        raise RPCError(Faults.FAILED, f"{name} is in the config: reread first")
