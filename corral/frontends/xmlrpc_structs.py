"""supervisord's structures on corral's facts: fault codes, state codes, names, log slices.

Pure functions from report.Status and bytes to the values supervisord's
XML-RPC returns (docs/xmlrpc.md), so that they are tested without a master.
Names (group, process) come from xmlrpc_names.py; WAITING reads as
STARTING, FAILING as STOPPING.
"""

import datetime
import re
import signal as signal_module
import time

API_VERSION = "3.0"  # supervisorctl refuses any other


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


def uptime_text(seconds):
    return str(datetime.timedelta(seconds=int(max(0, seconds))))  # H:MM:SS, "1 day, H:MM:SS"


def process_info(status, where, now, logfiles=None):
    """getProcessInfo's struct, from a report.Status, its (group, process) and
    its raw (stdout, stderr) files (supervisord.conf's), if any."""
    stdout_logfile, stderr_logfile = logfiles or ("", "")
    code, statename = state_of(status.state)
    ran = status.last_exit is not None or status.restarts or status.uptime is not None
    start = int(now - status.uptime) if status.uptime is not None else \
        int(status.since or 0) if ran else 0
    stop = int(status.since or 0) if status.uptime is None and ran else 0
    spawnerr = status.spawn_error or ""
    if statename == "RUNNING":
        description = f"pid {status.pid}, uptime {uptime_text(status.uptime or 0)}"
    elif statename in ("FATAL", "BACKOFF"):
        namespec = where[1] if where[0] == where[1] else f"{where[0]}:{where[1]}"
        description = spawnerr or status.reason or f'unknown error (try "tail {namespec}")'
    elif statename in ("STOPPED", "EXITED"):
        description = time.strftime("%b %d %I:%M %p", time.localtime(stop)) if ran \
            else "Not started"
    else:
        description = ""
    return {
        "name": where[1], "group": where[0], "start": start, "stop": stop,
        "now": int(now), "state": code, "statename": statename, "spawnerr": xml_text(spawnerr),
        "exitstatus": status.exit_code or 0, "logfile": stdout_logfile,
        "stdout_logfile": stdout_logfile, "stderr_logfile": stderr_logfile,
        "pid": status.pid or 0, "description": xml_text(description),
    }


def config_info(spec, group, process, group_priority, priority):
    """getAllConfigInfo's struct of one process, from its ServiceSpec; 'none'
    where supervisord has no value, as it writes one."""
    what = spec.kind.what_runs(spec)
    files = {f.stream: f for f in spec.stream_files}
    out, err = files.get("out"), files.get("err")
    info = {
        "name": process, "group": group, "inuse": True, "autostart": spec.autostart,
        "command": " ".join(what) if isinstance(what, list) else (what or ""),
        "directory": spec.cwd or "none", "uid": "none" if spec.user is None else spec.user,
        "exitcodes": list(spec.exit_codes), "group_prio": group_priority,
        "process_prio": priority, "killasgroup": True,
        "redirect_stderr": bool(out and err and out.path == err.path),
        "startretries": spec.max_restarts,
        "startsecs": int(spec.ready[1]) if spec.ready and spec.ready[0] == "seconds" else 0,
        "stopsignal": int(spec.stop_signal), "stopwaitsecs": int(spec.stop_timeout),
        "serverurl": "none",
    }
    for stream, file in (("stdout", out), ("stderr", err)):
        info.update({
            f"{stream}_logfile": file.path if file else "none",
            f"{stream}_logfile_maxbytes": file.max_bytes if file else 0,
            f"{stream}_logfile_backups": file.backups if file else 0,
            f"{stream}_capture_maxbytes": 0, f"{stream}_events_enabled": False,
            f"{stream}_syslog": False,
        })
    return info


def result(where, code=Faults.SUCCESS, text="OK"):
    """One entry of a group verb's array, for the process at (group, process)."""
    return {"name": where[1], "group": where[0], "status": code, "description": text}


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
