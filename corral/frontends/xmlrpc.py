"""supervisord's XML-RPC interface -> api.Operations, for supervisorctl and its tools.

supervisorctl, Ansible's and Salt's modules, the Prometheus exporters and
web UIs such as cesi drive supervisord through `supervisor.*` and
`system.*` over HTTP (xmlrpc_http.py). This module gives them the same
methods, structures, state codes and faults (docs/xmlrpc.md), rendered
from Operations' typed facts; it decides nothing itself.

Names: a corral instance is a supervisord process whose group is its
service: `web` is group web, process web (namespec "web"); `web:0` of a
service with numprocs is group web, process "0" (namespec "web:0"), so a
namespec is always corral's own instance name. `group:*` is the group.

States: WAITING (wanted up, its `after` services not RUNNING yet) reads as
STARTING, the state a tool waits through; FAILING (stopped because its
health or memory check failed) reads as STOPPING.

Logs come from the master's rings (the last lines of each service), not
from files: byte offsets count within the text kept there, and clearing a
log hides what came before from this interface only. corral's own files
and rings keep every line.
"""

import datetime
import inspect
import ipaddress
import os
import re
import signal as signal_module
import time
import xmlrpc.client
from urllib.parse import unquote

from corral import __version__
from corral.errors import ControlError, CorralError
from corral.frontends import xmlrpc_http as http

API_VERSION = "3.0"  # supervisorctl refuses any other
RING_LINES = 100_000  # asked of Operations.logs: the ring holds fewer
FOLLOW_BUFFER = 1 << 20  # bytes queued to one tail -f before lines are skipped
TAIL_HEAD = 1024  # bytes of history a tail -f begins with, as supervisord's


class Faults:
    UNKNOWN_METHOD = 1
    INCORRECT_PARAMETERS = 2
    BAD_ARGUMENTS = 3
    SIGNATURE_UNSUPPORTED = 4
    SHUTDOWN_STATE = 6
    BAD_NAME = 10
    BAD_SIGNAL = 11
    NO_FILE = 20
    NOT_EXECUTABLE = 21
    FAILED = 30
    ABNORMAL_TERMINATION = 40
    SPAWN_ERROR = 50
    ALREADY_STARTED = 60
    NOT_RUNNING = 70
    SUCCESS = 80
    ALREADY_ADDED = 90
    STILL_RUNNING = 91
    CANT_REREAD = 92


FAULT_NAMES = {code: name for name, code in vars(Faults).items() if name.isupper()}


class RPCError(Exception):
    """A fault: faultString is the code's name, then ": extra" if given."""

    def __init__(self, code, extra=None):
        self.code = code
        self.text = FAULT_NAMES.get(code, "UNKNOWN") + ("" if extra is None else f": {extra}")
        super().__init__(self.text)


# corral's state -> (supervisord's code, its name)
STATES = {
    "STOPPED": (0, "STOPPED"), "WAITING": (10, "STARTING"), "STARTING": (10, "STARTING"),
    "RUNNING": (20, "RUNNING"), "BACKOFF": (30, "BACKOFF"), "STOPPING": (40, "STOPPING"),
    "FAILING": (40, "STOPPING"), "EXITED": (100, "EXITED"), "FATAL": (200, "FATAL"),
}
UNKNOWN = (1000, "UNKNOWN")
RUNNING_STATES = {"STARTING", "RUNNING", "BACKOFF"}  # by supervisord's names
SIGNALLABLE = {"STARTING", "RUNNING", "STOPPING"}
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TYPES = {"string": str, "int": int, "boolean": bool, "array": list, "struct": dict}


def state_of(corral_state):
    return STATES.get(corral_state, UNKNOWN)


def xml_text(text):
    """Text XML 1.0 can carry: an ANSI colour's ESC would break the client's parser."""
    return _CONTROL.sub("\ufffd", text)


def split_namespec(name):
    """(group, process); process None for "group:*" (supervisord's rule)."""
    group, colon, process = name.partition(":")
    if not colon:
        return name, name
    return group, (None if process == "*" else process)


def instance_name(group, process):
    return process if group == process else f"{group}:{process}"


def process_name(status):
    """supervisord's process name of an instance: its name within the group."""
    return status.name if status.name == status.service else status.name[len(status.service) + 1:]


def uptime_text(seconds):
    return str(datetime.timedelta(seconds=int(max(0, seconds))))  # H:MM:SS, "1 day, H:MM:SS"


def process_info(status, now):
    """getProcessInfo's struct, from a report.Status."""
    code, statename = state_of(status.state)
    ran = status.last_exit is not None or status.restarts or status.uptime is not None
    start = int(now - status.uptime) if status.uptime is not None else \
        int(status.since or 0) if ran else 0
    stop = int(status.since or 0) if status.uptime is None and ran else 0
    spawnerr = status.spawn_error or ""
    if statename == "RUNNING":
        description = f"pid {status.pid}, uptime {uptime_text(now - start)}"
    elif statename in ("FATAL", "BACKOFF"):
        description = spawnerr or status.reason or f'unknown error (try "tail {status.name}")'
    elif statename in ("STOPPED", "EXITED"):
        description = time.strftime("%b %d %I:%M %p", time.localtime(stop)) if ran \
            else "Not started"
    else:
        description = ""
    return {
        "name": process_name(status), "group": status.service, "start": start, "stop": stop,
        "now": int(now), "state": code, "statename": statename, "spawnerr": xml_text(spawnerr),
        "exitstatus": status.exit_code or 0, "logfile": "", "stdout_logfile": "",
        "stderr_logfile": "", "pid": status.pid or 0, "description": xml_text(description),
    }


def result(status, code=Faults.SUCCESS, text="OK"):
    """One entry of a group verb's array."""
    return {"name": process_name(status), "group": status.service, "status": code,
            "description": text}


def parse_signal(value):
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    elif isinstance(value, str):
        name = value.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name not in signal_module.Signals.__members__:
            raise RPCError(Faults.BAD_SIGNAL, value)
        return signal_module.Signals[name]
    else:
        raise RPCError(Faults.BAD_SIGNAL, value)
    try:
        return signal_module.Signals(number)
    except ValueError:
        raise RPCError(Faults.BAD_SIGNAL, value) from None


def read_slice(data, offset, length):
    """supervisord's readFile on bytes: offset < 0 counts from the end (length 0)."""
    if offset < 0:
        if length:
            raise RPCError(Faults.BAD_ARGUMENTS)
        return data[max(0, len(data) + offset):]
    if length < 0:
        raise RPCError(Faults.BAD_ARGUMENTS)
    return data[offset:] if length == 0 else data[offset:offset + length]


def tail_slice(data, offset, length):
    """supervisord's tailFile on bytes: [text, next offset, overflow]."""
    size, overflow = len(data), False
    if size > offset + length:
        overflow, offset = True, size - 1
    if offset + length > size:
        if offset > size - 1:
            length = 0
        offset = size - length
    offset, length = max(0, offset), max(0, length)
    text = data[offset:offset + length] if length else b""
    return [xml_text(text.decode("utf-8", "replace")), offset + length, overflow]


def rpc(*signature):
    """Marks a method of XMLRPCInterface as callable: [return type, param types...]."""
    def mark(func):
        func.signature = signature
        return func
    return mark


class XMLRPCInterface:
    """The methods, by their XML-RPC names (self.methods), over one Operations."""

    def __init__(self, ops):
        self.ops = ops
        self.cleared = {}  # instance, or None for the main log -> time of the last line hidden
        self.methods = {}
        for attr in dir(self):
            func = getattr(self, attr)
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
        value = func(*params)
        return await value if inspect.isawaitable(value) else value

    # -- names -----------------------------------------------------------------

    def _statuses(self, names=()):
        return sorted(self.ops.status(names), key=lambda s: (s.service, process_name(s)))

    def _group(self, group):
        """The Status of each process of group, sorted; BAD_NAME if none."""
        try:
            found = [s for s in self._statuses([group]) if s.service == group]
        except ControlError:
            found = []
        if not found or any(ch in group for ch in "*?["):
            raise RPCError(Faults.BAD_NAME, group)
        return found

    def _process(self, name, must=True):
        """The Status of the process named (a namespec), or None for a group."""
        group, process = split_namespec(name)
        if process is not None and not any(ch in name for ch in "*?["):
            wanted = instance_name(group, process)
            try:
                for status in self.ops.status([wanted]):
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
        """Not supported: corral reloads in place (reloadConfig, `corral reload`)."""
        raise RPCError(Faults.FAILED, "restart is not supported; use `corral reload`")

    @rpc("array")
    def supervisor_reloadConfig(self):
        """Not supported yet: `corral reload` re-reads and applies the config."""
        raise RPCError(Faults.CANT_REREAD, "use `corral reload`")

    @rpc("boolean", "string")
    def supervisor_addProcessGroup(self, name):
        """Already added when configured: corral's reload adds new services."""
        self._group(name)
        raise RPCError(Faults.ALREADY_ADDED, name)

    @rpc("boolean", "string")
    def supervisor_removeProcessGroup(self, name):
        """Not supported: corral's reload removes services gone from the config."""
        self._group(name)
        raise RPCError(Faults.FAILED, "use `corral reload`")

    # -- supervisor: process info ---------------------------------------------

    @rpc("struct", "string")
    def supervisor_getProcessInfo(self, name):
        """Get info about a process named name ('name' or 'group:name')."""
        return process_info(self._process(name), time.time())

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
            command = " ".join(spec.command) if spec.is_command else (spec.factory or "")
            for name in spec.instance_names():
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
                return all(state == "RUNNING" or state_of(state)[1] not in ("STARTING",)
                           for state in self.ops.states(names).values())
            await self.ops.wait_for(settled)
        results = []
        for status in self.ops.status(names):
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

    def _not_running(self, statuses):
        return [s for s in statuses if state_of(s.state)[1] not in RUNNING_STATES]

    @rpc("boolean", "string", "boolean")
    async def supervisor_startProcess(self, name, wait=True):
        """Start a process ('group:*' starts its group)."""
        status = self._process(name, must=False)
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
        status = self._process(name, must=False)
        if status is None:
            return await self.supervisor_stopProcessGroup(split_namespec(name)[0], wait)
        if state_of(status.state)[1] not in RUNNING_STATES:
            raise RPCError(Faults.NOT_RUNNING, name)
        await self._stop([status], wait)
        return True

    @rpc("array", "string", "boolean")
    async def supervisor_stopProcessGroup(self, name, wait=True):
        """Stop every running process of the group named name."""
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
        status = self._process(name, must=False)
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
        status = self._process(name)
        if status.pid is None:
            raise RPCError(Faults.NOT_RUNNING, name)
        raise RPCError(Faults.NO_FILE, name)

    # -- supervisor: logs ------------------------------------------------------

    def _log_bytes(self, name, channel):
        """The kept lines of one instance's stream (None: the main log), as bytes."""
        cutoff = self.cleared.get(name, float("-inf"))
        lines = self.ops.logs(name, RING_LINES)
        if name is None:
            return "".join(main_line(line) for line in lines if line["time"] > cutoff).encode()
        return "".join(line["line"] + "\n" for line in lines
                       if line["stream"] == channel and line["time"] > cutoff).encode()

    def _clear(self, name):
        lines = self.ops.logs(name, 1)
        self.cleared[name] = lines[-1]["time"] if lines else float("-inf")

    @rpc("string", "int", "int")
    def supervisor_readLog(self, offset, length):
        """Read length bytes from the main log starting at offset (< 0: from the end)."""
        data = read_slice(self._log_bytes(None, None), offset, length)
        return xml_text(data.decode("utf-8", "replace"))

    supervisor_readMainLog = supervisor_readLog

    @rpc("boolean")
    def supervisor_clearLog(self):
        """Hide the main log's lines so far from this interface (files keep them)."""
        self._clear(None)
        return True

    def _read(self, name, offset, length, channel):
        status = self._process(name)
        data = read_slice(self._log_bytes(status.name, channel), offset, length)
        return xml_text(data.decode("utf-8", "replace"))

    @rpc("string", "string", "int", "int")
    def supervisor_readProcessStdoutLog(self, name, offset, length):
        """Read length bytes from name's stdout log starting at offset."""
        return self._read(name, offset, length, "out")

    supervisor_readProcessLog = supervisor_readProcessStdoutLog

    @rpc("string", "string", "int", "int")
    def supervisor_readProcessStderrLog(self, name, offset, length):
        """Read length bytes from name's stderr log starting at offset."""
        return self._read(name, offset, length, "err")

    @rpc("array", "string", "int", "int")
    def supervisor_tailProcessStdoutLog(self, name, offset, length):
        """[text, offset, overflow]: length bytes from offset, or the newest ones."""
        return tail_slice(self._log_bytes(self._process(name).name, "out"), offset, length)

    supervisor_tailProcessLog = supervisor_tailProcessStdoutLog

    @rpc("array", "string", "int", "int")
    def supervisor_tailProcessStderrLog(self, name, offset, length):
        """[text, offset, overflow] of name's stderr."""
        return tail_slice(self._log_bytes(self._process(name).name, "err"), offset, length)

    @rpc("boolean", "string")
    def supervisor_clearProcessLogs(self, name):
        """Hide name's lines so far from this interface (corral's files keep them)."""
        self._clear(self._process(name).name)
        return True

    supervisor_clearProcessLog = supervisor_clearProcessLogs

    @rpc("array")
    def supervisor_clearAllProcessLogs(self):
        """clearProcessLogs for every process."""
        statuses = self._statuses()
        for status in statuses:
            self._clear(status.name)
        return [result(s) for s in statuses]

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


def main_line(line):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(line["time"]))
    who = line["name"] if line["pid"] is None else f"{line['name']}[{line['pid']}]"
    return f"{stamp}.{int(line['time'] * 1000) % 1000:03d} {who} {line['stream']}: {line['line']}\n"


class XMLRPCHandler:
    """HTTP requests -> the interface: POST /RPC2, GET /logtail/..., /mainlogtail."""

    def __init__(self, ops, log):
        self.ops, self.log = ops, log
        self.rpc = XMLRPCInterface(ops)

    async def __call__(self, request, reader, writer):
        path = request.path.partition("?")[0]
        if path == "/RPC2":
            if request.method != "POST":
                raise http.HTTPError(405)
            return http.response(200, await self.xmlrpc(request.body), "text/xml",
                                 keep_alive=request.keep_alive)
        if path.startswith("/logtail/") or path == "/mainlogtail":
            if request.method != "GET":
                raise http.HTTPError(400)
            return await self.tail(path, reader, writer)
        raise http.HTTPError(404)

    async def xmlrpc(self, body):
        """The response body of one call: a value or a fault, or 400."""
        try:
            params, method = xmlrpc.client.loads(body)
        except Exception:  # malformed XML, or values the marshaller refuses
            raise http.HTTPError(400) from None
        if not method:
            raise http.HTTPError(400)
        try:
            value = await self.rpc.call(method, params or ())
            reply = xmlrpc.client.dumps((value,), methodresponse=True)
        except RPCError as err:
            reply = xmlrpc.client.dumps(xmlrpc.client.Fault(err.code, err.text))
        except OverflowError as exc:  # an int beyond XML-RPC's 32 bits
            reply = xmlrpc.client.dumps(xmlrpc.client.Fault(Faults.FAILED, f"FAILED: {exc}"))
        return reply.encode("utf-8", "replace")

    async def tail(self, path, reader, writer):
        """A chunked stream: the last TAIL_HEAD bytes, then every new line,
        until the client leaves; a client that does not read is skipped ahead."""
        if path == "/mainlogtail":
            name, stream = None, None
        else:
            namespec, _, channel = unquote(path[len("/logtail/"):]).partition("/")
            stream = {"": "out", "stdout": "out", "stderr": "err"}.get(channel)
            try:
                name = self.rpc._process(namespec).name if stream else None
            except RPCError:
                name = None
            if name is None:
                raise http.HTTPError(404)
        head = self.rpc._log_bytes(name, stream)[-TAIL_HEAD:]
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain;charset=utf-8\r\n"
                     b"Transfer-Encoding: chunked\r\nX-Accel-Buffering: no\r\n"
                     b"Connection: close\r\n\r\n" + http.chunk(head))
        transport = writer.transport
        subscription = None

        def send(batch):
            if transport.is_closing():
                return
            if transport.get_write_buffer_size() > FOLLOW_BUFFER:
                subscription.drop(len(batch))
                return
            if name is None:
                text = "".join(main_line(line) for line in batch)
            else:
                text = "".join(line["line"] + "\n" for line in batch if line["stream"] == stream)
            writer.write(http.chunk(text.encode("utf-8", "replace")))

        subscription = self.ops.subscribe("logs", send, name)
        try:
            while await reader.read(65536):
                pass  # nothing more is expected; EOF ends the stream
        finally:
            subscription.close()
        return None


def check_access(addresses, username, password):
    """Refuse what would let others in: a TCP address beyond loopback
    without a password, or half of the basic auth pair."""
    if (username is None) != (password is None):
        raise CorralError("[corral] xmlrpc_username and xmlrpc_password go together: set both")
    for address in addresses:
        if address.startswith("tcp://") and password is None:
            host = address[len("tcp://"):].rpartition(":")[0].strip("[]")
            try:
                loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                raise CorralError(
                    f"[corral] xmlrpc: {address} is not a loopback address; anyone who "
                    "reaches it could control every process: set xmlrpc_username and "
                    "xmlrpc_password, or listen on 127.0.0.1")


class XMLRPCServer:
    """The frontend: listens on each address of [corral] xmlrpc."""

    def __init__(self, ops, addresses, log, username=None, password=None):
        check_access(addresses, username, password)
        self.ops, self.addresses, self.log = ops, tuple(addresses), log
        self.http = http.HTTPServer(XMLRPCHandler(ops, log), log, username, password)
        self.paths = []

    async def start(self):
        from corral.frontends.control import bind_socket

        for address in self.addresses:
            if address.startswith("unix://"):
                path = address[len("unix://"):]
                await self.http.listen_unix(bind_socket(path))
                self.paths.append(path)
            else:
                host, _, port = address[len("tcp://"):].rpartition(":")
                await self.http.listen_tcp(host.strip("[]") or None, int(port))

    async def close(self):
        await self.http.close()
        for path in self.paths:
            try:
                os.unlink(path)
            except OSError:
                pass
