"""supervisord's `supervisor.*` and `system.*` methods over api.Operations.

Each method is marked with its XML-RPC signature; call() checks the
argument count and types (INCORRECT_PARAMETERS), refuses `supervisor.*`
during the shutdown (SHUTDOWN_STATE), as supervisord does, and awaits the
verbs that wait. Nothing here decides: the verbs are Operations'.
The log methods are in xmlrpc_logs.py.
"""

import asyncio
import inspect
import time

from corral import __version__
from corral.errors import E_NO_SUCH_SERVICE, E_SHUTTING_DOWN, ControlError
from corral.frontends.xmlrpc_logs import LogMethods
from corral.frontends.xmlrpc_structs import (
    API_VERSION, RUNNING_STATES, SIGNALLABLE, Faults, RPCError, instance_name, parse_signal,
    process_info, process_name, result, rpc, split_namespec, state_of)

_TYPES = {"string": str, "int": int, "boolean": bool, "array": list, "struct": dict}


class XMLRPCInterface:
    """The methods, by their XML-RPC names (self.methods), over one Operations."""

    def __init__(self, ops):
        self.ops = ops
        self.applied = set()  # groups an `update`'s first add or remove applied
        self.restarting = None  # the task of supervisor.restart
        self.logs = LogMethods(ops, self.find, self._statuses)
        self.methods = {}
        for part in (self, self.logs):
            for attr in dir(part):
                func = getattr(part, attr)
                if hasattr(func, "signature"):
                    namespace, _, name = attr.partition("_")
                    self.methods[f"{namespace}.{name}"] = func

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

    def _statuses(self, names=()):
        return sorted(self.ops.status(names, usage=False),
                      key=lambda s: (s.service, process_name(s)))

    def _group(self, group):
        """The Status of each process of group, sorted; BAD_NAME if none."""
        try:
            found = [s for s in self._statuses([group]) if s.service == group]
        except ControlError:
            found = []
        if not found or any(ch in group for ch in "*?["):
            raise RPCError(Faults.BAD_NAME, group)
        return found

    def find(self, name, must=True):
        """The Status of the process named (a namespec), or None for a group."""
        group, process = split_namespec(name)
        if process is not None and not any(ch in name for ch in "*?["):
            wanted = instance_name(group, process)
            try:
                for status in self.ops.status([wanted], usage=False):
                    if status.name == wanted and status.service == group:
                        return status
            except ControlError:
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
        """Return the identifying string of this master."""
        return "corral"

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

    def _preview(self):
        try:
            return self.ops.preview()
        except ControlError as exc:
            raise RPCError(Faults.CANT_REREAD, exc.message) from None

    @rpc("array")
    def supervisor_reloadConfig(self):
        """Re-read the config: [[added, changed, removed]] group names, applying nothing."""
        diff = self._preview()
        self.applied.clear()  # an `update` begins here
        return [[diff["added"], diff["changed"] + diff["scaled"], diff["removed"]]]

    async def _apply(self):
        """corral applies the whole difference at once, at the first add or
        remove of an `update`; its later stops, adds and removes of the
        groups it changed find their part done (until the next reloadConfig)."""
        try:
            done = await self.ops.reload()
        except ControlError as exc:
            raise RPCError(Faults.CANT_REREAD, exc.message) from None
        self.applied.update(done["added"] + done["changed"] + done["scaled"] + done["removed"])

    @rpc("boolean", "string")
    async def supervisor_addProcessGroup(self, name):
        """Add the group of a service new (or changed) in the config."""
        if name in self.applied:
            return True
        diff = self._preview()
        if name in diff["added"] + diff["changed"] + diff["scaled"]:
            await self._apply()
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
               for s in self._group(name)):
            raise RPCError(Faults.STILL_RUNNING, name)
        diff = self._preview()
        if name in diff["removed"] + diff["changed"] + diff["scaled"]:
            await self._apply()
            return True
        raise RPCError(Faults.FAILED, f"{name} is in the config: reread first")

    # -- supervisor: process info ---------------------------------------------

    @rpc("struct", "string")
    def supervisor_getProcessInfo(self, name):
        """Get info about a process named name ('name' or 'group:name')."""
        return process_info(self.find(name), time.time())

    @rpc("array")
    def supervisor_getAllProcessInfo(self):
        """Get info about all processes, sorted by group then name."""
        now = time.time()
        return [process_info(s, now) for s in self._statuses()]

    @rpc("array")
    def supervisor_getAllConfigInfo(self):
        """Get info about every configured process (groups flattened)."""
        infos = []
        for spec in self.ops.config.services:
            what = spec.kind.what_runs(spec)
            command = " ".join(what) if isinstance(what, list) else (what or "")
            for name in self.ops.instance_names(spec.name):  # a scale's count too
                infos.append({
                    "name": name if name == spec.name else name[len(spec.name) + 1:],
                    "group": spec.name, "inuse": True, "autostart": spec.autostart,
                    "command": command, "directory": spec.cwd or "", "uid": spec.user or 0,
                    "exitcodes": [0], "group_prio": 999, "process_prio": 999,
                    "killasgroup": True, "redirect_stderr": False,
                    "startretries": spec.max_restarts, "startsecs": 0,
                    "stopsignal": int(spec.stop_signal), "stopwaitsecs": int(spec.stop_timeout),
                    "stdout_logfile": "", "stderr_logfile": "", "serverurl": "AUTO",
                })
        return sorted(infos, key=lambda info: (info["group"], info["name"]))

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
                results.append(result(status))
            elif status.spawn_error:
                results.append(result(status, Faults.SPAWN_ERROR,
                                      f"SPAWN_ERROR: {status.name}"))
            else:
                results.append(result(status, Faults.ABNORMAL_TERMINATION,
                                      f"ABNORMAL_TERMINATION: {status.name}"))
        return results

    def _statuses_of(self, names):
        """The Status of those of names that still exist (a reload may remove some)."""
        known = set(self.ops.states())
        names = [name for name in names if name in known]
        return self.ops.status(names, usage=False) if names else []

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
        return await self._start(self._not_running(self._group(name)), wait)

    @rpc("array", "boolean")
    async def supervisor_startAllProcesses(self, wait=True):
        """Start every process that is not running, in dependency order."""
        return await self._start(self._not_running(self._statuses()), wait)

    async def _stop(self, statuses, wait):
        names = [s.name for s in statuses]
        if names:
            await self.ops.stop(names, wait=wait)
        return [result(s) for s in statuses]

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
        if name in self.applied:
            return []  # an `update` already applied the new config to it
        return await self._stop(self._running(self._group(name)), wait)

    @rpc("array", "boolean")
    async def supervisor_stopAllProcesses(self, wait=True):
        """Stop every running process, dependents first."""
        return await self._stop(self._running(self._statuses()), wait)

    def _signal(self, statuses, value):
        sig = parse_signal(value)
        results = []
        for status in statuses:
            if state_of(status.state)[1] not in SIGNALLABLE:
                continue
            (outcome,) = self.ops.signal([status.name], sig, group=False)
            results.append(result(status) if outcome.ok else
                           result(status, Faults.NOT_RUNNING, f"NOT_RUNNING: {status.name}"))
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
        return self._signal(self._group(name), signal)

    @rpc("array", "signal")
    def supervisor_signalAllProcesses(self, signal):
        """Send a signal to every signallable process."""
        return self._signal(self._statuses(), signal)

    @rpc("boolean", "string", "string")
    def supervisor_sendProcessStdin(self, name, chars):
        """Not available: corral gives every worker /dev/null as its stdin."""
        status = self.find(name)
        if status.pid is None:
            raise RPCError(Faults.NOT_RUNNING, name)
        raise RPCError(Faults.NO_FILE, name)

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
        return [kind if kind != "signal" else "string" for kind in self.methods[name].signature]

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
