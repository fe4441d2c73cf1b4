"""supervisord's `supervisor.*` and `system.*` methods over api.Operations.

Each method is marked with its XML-RPC signature; call() checks the
argument count and types (INCORRECT_PARAMETERS), refuses `supervisor.*`
during the shutdown (SHUTDOWN_STATE), as supervisord does, and awaits the
verbs that wait. Nothing here decides: the verbs are Operations'.
The log methods are in xmlrpc_logs.py, reread and update's in
xmlrpc_update.py; supervisord's names of corral's instances are
xmlrpc_names.py's.
"""

import asyncio
import inspect
import time
import xmlrpc.client

from corral import __version__
from corral.errors import (E_NO_STDIN, E_NO_SUCH_SERVICE, E_NOT_RUNNING, E_SHUTTING_DOWN,
                           ControlError)
from corral.frontends.xmlrpc_logs import LogMethods
from corral.frontends.xmlrpc_names import Names
from corral.frontends.xmlrpc_update import UpdateMethods
from corral.frontends.xmlrpc_structs import (
    API_VERSION, RUNNING_STATES, SIGNALLABLE, Faults, RPCError, config_info, parse_signal,
    process_info, result, rpc, split_namespec, state_of)

_TYPES = {"string": str, "int": int, "boolean": bool, "array": list, "struct": dict}
# Argument kinds call() leaves to the method to check, and the XML-RPC type
# methodSignature names for each.
_ALIASES = {"signal": "string", "chars": "string"}


class XMLRPCInterface:
    """The methods, by their XML-RPC names (self.methods), over one Operations."""

    def __init__(self, ops):
        self.ops = ops
        self.restarting = None  # the task of supervisor.restart
        self._names = (None, None)  # (the Config, its Names)
        self.logs = LogMethods(ops, self.find, self._statuses, self.result)
        self.update = UpdateMethods(self)
        self.methods = {}
        for part in (self, self.logs, self.update):
            for attr in dir(type(part)):  # the class's: a property is not run
                if hasattr(getattr(type(part), attr), "signature"):
                    namespace, _, name = attr.partition("_")
                    self.methods[f"{namespace}.{name}"] = getattr(part, attr)

    async def call(self, method, params):
        func = self.methods.get(method)
        if func is None:
            raise RPCError(Faults.UNKNOWN_METHOD)
        try:
            inspect.signature(func).bind(*params)
        except TypeError:
            raise RPCError(Faults.INCORRECT_PARAMETERS) from None
        for value, kind in zip(params, func.signature[1:]):
            wanted = _TYPES.get(kind)
            if wanted is not None and (not isinstance(value, wanted)
                                       or (wanted is int and isinstance(value, bool))):
                raise RPCError(Faults.INCORRECT_PARAMETERS)
        if method.startswith("supervisor.") and self.ops.shutting_down:
            raise RPCError(Faults.SHUTDOWN_STATE)
        try:
            value = func(*params)
            return await value if inspect.isawaitable(value) else value
        except ControlError as exc:  # a verb refused: say it in supervisord's terms
            code = {E_SHUTTING_DOWN: Faults.SHUTDOWN_STATE,
                    E_NO_SUCH_SERVICE: Faults.BAD_NAME}.get(exc.code, Faults.FAILED)
            raise RPCError(code, exc.message) from None

    # -- names -----------------------------------------------------------------

    @property
    def names(self):
        """The Names of the config in force, made again after a reload."""
        config = self.ops.config
        counts = tuple(len(self.ops.instance_names(spec.name)) for spec in config.services)
        held = self._names[0]
        if held is None or held[0] is not config or held[1] != counts:  # a reload, or a scale
            self._names = ((config, counts), Names(config, self.ops.instance_names))
        return self._names[1]

    def info(self, status, now):
        names = self.names
        return process_info(status, names.of(status.name), now, names.logfiles.get(status.name))

    def result(self, status, code=Faults.SUCCESS, text="OK"):
        return result(self.names.of(status.name), code, text)

    def _statuses(self, instances=(), lexical=True):
        """The Status of these instances (all: ()), sorted by group, then name,
        or (lexical=False) in priority order, as supervisord's verbs go."""
        names = self.names
        return sorted(self.ops.status(instances, usage=False),
                      key=(lambda s: names.of(s.name)) if lexical else
                      (lambda s: names.rank.get(s.name, 0)))

    def group(self, group):
        """The Status of each process of group, sorted; BAD_NAME if none."""
        members = self.names.members.get(group)
        if not members:
            raise RPCError(Faults.BAD_NAME, group)
        return self._statuses(members, lexical=False)

    def find(self, name, must=True):
        """The Status of the process named (a namespec), or None for a group."""
        group, process = split_namespec(name)
        instance = self.names.instance.get((group, process)) if process is not None else None
        if instance is not None:
            try:
                (status,) = self.ops.status([instance], usage=False)
                return status
            except ControlError:  # gone with a reload meanwhile
                pass
        if must:
            raise RPCError(Faults.BAD_NAME, name)
        return None

    # -- supervisor: the master ----------------------------------------------

    @rpc("string")
    def supervisor_getAPIVersion(self):
        """Return the version of the RPC API used by supervisord."""
        return API_VERSION

    @rpc("string")
    def supervisor_getVersion(self):
        """Return the version of the RPC API (before 3.0: getAPIVersion)."""
        return API_VERSION

    @rpc("string")
    def supervisor_getSupervisorVersion(self):
        """Return corral's version."""
        return __version__

    @rpc("string")
    def supervisor_getIdentification(self):
        """Return the identifying string of this master: a supervisord.conf's
        [supervisord] identifier, else "corral"."""
        return getattr(self.ops.config.master.xmlrpc, "identifier", "corral")

    @rpc("struct")
    def supervisor_getState(self):
        """Return the master's state: {statecode, statename}."""
        if self.ops.shutting_down:
            return {"statecode": -1, "statename": "SHUTDOWN"}
        return {"statecode": 1, "statename": "RUNNING"}

    @rpc("int")
    def supervisor_getPID(self):
        """Return the master's pid."""
        return self.ops.version()["pid"]

    @rpc("boolean")
    def supervisor_shutdown(self):
        """Stop every process in reverse order, then the master."""
        self.ops.shutdown()
        return True

    @rpc("boolean")
    def supervisor_restart(self):
        """Stop everything, re-read the config, start what starts by itself."""
        self.restarting = asyncio.ensure_future(self._restart_all())
        return True

    async def _restart_all(self):
        await self.ops.stop([])
        try:
            await self.ops.reload()
        except ControlError:
            pass  # the master logged why; the old config starts again
        await self.ops.start([name for spec in self.ops.config.services if spec.autostart
                              for name in self.ops.instance_names(spec.name)], wait=False)

    # -- supervisor: process info ---------------------------------------------

    @rpc("struct", "string")
    def supervisor_getProcessInfo(self, name):
        """Get info about a process named name ('name' or 'group:name')."""
        return self.info(self.find(name), time.time())

    @rpc("array")
    def supervisor_getAllProcessInfo(self):
        """Get info about all processes, sorted by group then name."""
        now = time.time()
        return [self.info(s, now) for s in self._statuses()]

    @rpc("array")
    def supervisor_getAllConfigInfo(self):
        """Get info about every configured process (groups flattened), by name."""
        names, infos = self.names, []
        for spec in self.ops.config.services:
            for instance in self.ops.instance_names(spec.name):  # a scale's count too
                group, process = names.of(instance)
                infos.append((names.priority[group], config_info(
                    spec, group, process, names.priority[group],
                    names.process_priority[instance])))
        infos.sort(key=lambda row: row[0])  # the groups in start order, as supervisord's
        return sorted((info for _, info in infos), key=lambda info: info["name"])

    # -- supervisor: start, stop, signal --------------------------------------

    async def _start(self, statuses, wait):
        """Start these; with wait, until each is RUNNING or has failed to come up."""
        names = [s.name for s in statuses]
        await self.ops.start(names, wait=False)
        if wait:
            def settled():
                try:
                    states = self.ops.states(names)
                except ControlError:  # one went with a reload meanwhile
                    return True
                return all(state == "RUNNING" or state_of(state)[1] != "STARTING"
                           for state in states.values())
            await self.ops.wait_for(settled)
        results = []
        for status in self._statuses_of(names):
            statename = state_of(status.state)[1]
            if not wait or statename == "RUNNING":
                results.append(self.result(status))
            elif status.spawn_error:
                results.append(self.result(status, Faults.SPAWN_ERROR, "SPAWN_ERROR: "
                                           + self.names.namespec(status.name)))
            else:
                results.append(self.result(status, Faults.ABNORMAL_TERMINATION,
                                           "ABNORMAL_TERMINATION: "
                                           + self.names.namespec(status.name)))
        return results

    def _statuses_of(self, names):
        """The Status of those of names that still exist (a reload may remove some)."""
        known = set(self.ops.states())
        names = [name for name in names if name in known]
        return self._statuses(names, lexical=False) if names else []

    def _not_running(self, statuses):
        return [s for s in statuses if state_of(s.state)[1] not in RUNNING_STATES]

    @rpc("boolean", "string", "boolean")
    async def supervisor_startProcess(self, name, wait=True):
        """Start a process ('group:*' starts its group)."""
        status = self.find(name, must=False)
        if status is None:
            return await self.supervisor_startProcessGroup(split_namespec(name)[0], wait)
        if state_of(status.state)[1] in RUNNING_STATES:
            raise RPCError(Faults.ALREADY_STARTED, name)
        (outcome,) = await self._start([status], wait)
        if outcome["status"] != Faults.SUCCESS:
            raise RPCError(outcome["status"], name)
        return True

    @rpc("array", "string", "boolean")
    async def supervisor_startProcessGroup(self, name, wait=True):
        """Start every process of the group named name that is not running."""
        return await self._start(self._not_running(self.group(name)), wait)

    @rpc("array", "boolean")
    async def supervisor_startAllProcesses(self, wait=True):
        """Start every process that is not running, in dependency order."""
        return await self._start(self._not_running(self._statuses(lexical=False)), wait)

    async def _stop(self, statuses, wait):
        names = [s.name for s in statuses]
        if names:
            await self.ops.stop(names, wait=wait)
        return [self.result(s) for s in statuses]

    def _running(self, statuses):
        return [s for s in statuses if state_of(s.state)[1] in RUNNING_STATES]

    @rpc("boolean", "string", "boolean")
    async def supervisor_stopProcess(self, name, wait=True):
        """Stop a process ('group:*' stops its group)."""
        status = self.find(name, must=False)
        if status is None:
            return await self.supervisor_stopProcessGroup(split_namespec(name)[0], wait)
        if state_of(status.state)[1] not in RUNNING_STATES:
            raise RPCError(Faults.NOT_RUNNING, name)
        await self._stop([status], wait)
        return True

    @rpc("array", "string", "boolean")
    async def supervisor_stopProcessGroup(self, name, wait=True):
        """Stop every running process of the group named name."""
        if name in self.update.applied:
            return []  # an `update` already applied the new config to it
        return await self._stop(self._running(self.group(name)), wait)

    @rpc("array", "boolean")
    async def supervisor_stopAllProcesses(self, wait=True):
        """Stop every running process, dependents first."""
        return await self._stop(self._running(self._statuses(lexical=False)), wait)

    def _signal(self, statuses, value):
        sig = parse_signal(value)
        results = []
        for status in statuses:
            if state_of(status.state)[1] not in SIGNALLABLE:
                continue
            (outcome,) = self.ops.signal([status.name], sig, group=False)
            results.append(self.result(status) if outcome.ok else self.result(
                status, Faults.NOT_RUNNING, "NOT_RUNNING: " + self.names.namespec(status.name)))
        return results

    @rpc("boolean", "string", "signal")
    def supervisor_signalProcess(self, name, signal):
        """Send a signal (a name, or a number) to the process named name."""
        status = self.find(name, must=False)
        if status is None:
            return self.supervisor_signalProcessGroup(split_namespec(name)[0], signal)
        sig = parse_signal(signal)
        if state_of(status.state)[1] not in SIGNALLABLE:
            raise RPCError(Faults.NOT_RUNNING, name)
        (outcome,) = self.ops.signal([status.name], sig, group=False)
        if not outcome.ok:
            raise RPCError(Faults.NOT_RUNNING, name)
        return True

    @rpc("array", "string", "signal")
    def supervisor_signalProcessGroup(self, name, signal):
        """Send a signal to every signallable process of the group."""
        return self._signal(self.group(name), signal)

    @rpc("array", "signal")
    def supervisor_signalAllProcesses(self, signal):
        """Send a signal to every signallable process."""
        return self._signal(self._statuses(lexical=False), signal)

    @rpc("boolean", "string", "chars")
    def supervisor_sendProcessStdin(self, name, chars):
        """Send a string of chars to the stdin of the process name."""
        # "chars": any type gets here, and a non-string is BAD_ARGUMENTS, as
        # under supervisord (not INCORRECT_PARAMETERS).
        if isinstance(chars, xmlrpc.client.Binary):
            chars = chars.data
        if not isinstance(chars, (str, bytes)):
            raise RPCError(Faults.BAD_ARGUMENTS, "chars must be a text string")
        status = self.find(name)
        data = chars.encode("utf-8") if isinstance(chars, str) else chars
        try:
            self.ops.send_stdin(status.name, data)
        except ControlError as exc:
            code = {E_NOT_RUNNING: Faults.NOT_RUNNING, E_NO_STDIN: Faults.NO_FILE}.get(exc.code)
            if code is None:
                raise  # call() maps it (BAD_NAME, FAILED: a full pipe)
            raise RPCError(code, name) from None
        return True

    # -- system ----------------------------------------------------------------

    @rpc("array")
    def system_listMethods(self):
        """Return an array listing the available method names."""
        return sorted(self.methods)

    @rpc("string", "string")
    def system_methodHelp(self, name):
        """Return a string showing the method's documentation."""
        if name not in self.methods:
            raise RPCError(Faults.SIGNATURE_UNSUPPORTED)
        return inspect.getdoc(self.methods[name]) or ""

    @rpc("array", "string")
    def system_methodSignature(self, name):
        """Return [return type, param types...] of the method."""
        if name not in self.methods:
            raise RPCError(Faults.SIGNATURE_UNSUPPORTED)
        return [_ALIASES.get(kind, kind) for kind in self.methods[name].signature]

    @rpc("array", "array")
    async def system_multicall(self, calls):
        """Process an array of {methodName, params} calls; each result is
        [value] or {faultCode, faultString}."""
        results = []
        for call in calls:
            try:
                if not isinstance(call, dict) or not isinstance(call.get("methodName"), str):
                    raise RPCError(Faults.INCORRECT_PARAMETERS)
                if call["methodName"] == "system.multicall":
                    raise RPCError(Faults.INCORRECT_PARAMETERS, "recursive system.multicall")
                params = call.get("params", [])
                if not isinstance(params, list):
                    raise RPCError(Faults.INCORRECT_PARAMETERS)
                results.append([await self.call(call["methodName"], params)])
            except RPCError as err:
                results.append({"faultCode": err.code, "faultString": err.text})
        return results
