"""The control wire format, shared by the server and every client.

A unix stream socket carrying JSON, one object per line (docs/protocol.md):

    -> {"id": 1, "cmd": "status", "args": {"names": ["web"]}}
    <- {"id": 1, "ok": true, "result": [...]}
    <- {"id": 2, "ok": false, "error": {"code": "no_such_service", "message": "..."}}

A streaming command (logs or events with follow) answers once as above and
then sends {"id": N, "stream": {...}} per item until the client closes; a
follower that fell behind gets {"id": N, "dropped": COUNT} where items were
skipped.

The commands, their arguments and their help are one table, REGISTRY:
the server checks requests against it and the CLI builds its subcommands
from it. This module imports only the standard library's json and
collections, so that the CLI starts fast.
"""

import json
from collections import namedtuple

from corral.errors import E_BAD_ARGUMENT, E_BAD_REQUEST, E_TOO_LONG, E_UNKNOWN_COMMAND, ControlError

MAX_REQUEST = 1 << 20  # bytes in one request line
MAX_NAME = 256  # characters in one name or pattern (service names have at most 200)


# One argument of a command: its wire name, JSON type (a type or a tuple
# of types) and default (None: required, unless the type admits None), and
# how the command line spells it: flags ("-n", "--lines"), or () for a
# positional. (namedtuple, not dataclass: dataclasses costs the CLI 11 ms.)
Arg = namedtuple("Arg", "name kind default help flags metavar", defaults=(None, "", (), None))

# One command of the control socket, as the server and every client see it:
# args are the positionals in command-line order, then the options; a
# streaming command answers, then streams items while "follow" is true.
Command = namedtuple("Command", "name help args streaming", defaults=((), False))


_NAMES = "services (web), instances (web:0), 'all' or a glob ('web:*')"


def _names(required):
    return Arg("names", list, None if required else [], _NAMES, metavar="NAME")


_LINES = Arg("lines", int, 100, "items of history (100)", ("-n", "--lines"), "N")
_FOLLOW = Arg("follow", bool, False, "keep printing new items", ("-f", "--follow"))

# The one table of commands: the wire protocol checks requests against it,
# the server has a handler for each, the CLI makes its subcommands from it.
REGISTRY = {command.name: command for command in (
    Command("status", "show the state of services", (
        _names(False),
        Arg("detail", bool, False, "the detailed view: where each comes from, what it runs, "
            "its recent changes of state with their reasons and its last log lines "
            "(the default for one name)", ("-l", "--detail")),
    )),
    Command("start", "start services", (_names(True),)),
    Command("stop", "stop services", (_names(True),)),
    Command("restart", "restart services", (
        _names(True),
        Arg("rolling", bool, False, "one instance at a time, each RUNNING before the next stops",
            ("--rolling",)),
    )),
    Command("scale", "change the number of instances of a service, live", (
        Arg("service", str, None, "a service (not an instance)", metavar="NAME"),
        Arg("count", int, None, "instances wanted, 1 or more: new ones start, "
            "the surplus stop, highest index first", metavar="N"),
    )),
    Command("signal", "send a signal to services (their main process)", (
        Arg("signal", (str, int), None, "a name (TERM, SIGHUP) or a number", metavar="SIG"),
        _names(True),
        Arg("group", bool, False, "to the whole process group, not only the main process",
            ("--group",)),
    )),
    Command("logs", "print the recent output of one or all services", (
        Arg("name", (str, type(None)), None, "a service or instance; all when left out", metavar="NAME"),
        _LINES, _FOLLOW,
        Arg("after", int, 0, "only lines after this seq (the last one seen), to resume without repeats",
            ("--after",), "SEQ"),
    ), streaming=True),
    Command("events", "print state changes", (_LINES, _FOLLOW), streaming=True),
    Command("tree", "show the service tree"),
    Command("reload", "re-read the config and apply the differences"),
    Command("reopen", "reopen the log files (after rotation)"),
    Command("shutdown", "stop every service and the master"),
    Command("version", "print the version of corral and of the master"),
    Command("upgrade", "re-execute the master in place (a new corral, or the same), "
                       "keeping every worker running", (
        Arg("python", (str, type(None)), None,
            "the new image's interpreter (default: the master's own)", ("--python",), "PATH"),
    )),
)}

# Views of REGISTRY for the request check: cmd -> {arg: (type, default)}
# (an argument without a default is required), and the streaming commands.
COMMANDS = {name: {arg.name: (arg.kind, arg.default) for arg in command.args}
            for name, command in REGISTRY.items()}
STREAMING = frozenset(name for name, command in REGISTRY.items() if command.streaming)


def encode(message):
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:
        # A lone surrogate (an id or name that came in as "\ud800", or a
        # command-line argument that was not UTF-8) cannot be UTF-8: send
        # it escaped, which is still the same JSON value.
        return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def encode_value(value):
    """A JSON value as bytes, as encode() writes it inside a message."""
    return encode(value)[:-1]


def stream_item(request_id_json, item_json):
    """{"id": ID, "stream": ITEM} + newline from parts already encoded: a
    line followed by many clients is encoded once (loglines.Batch.encoded)."""
    return b'{"id":' + request_id_json + b',"stream":' + item_json + b"}\n"


def request(request_id, cmd, **args):
    return encode({"id": request_id, "cmd": cmd, "args": args})


def reply_ok(request_id, result):
    return encode({"id": request_id, "ok": True, "result": result})


def reply_error(request_id, code, message):
    return encode({"id": request_id, "ok": False, "error": {"code": code, "message": message}})


def parse_request(line):
    """Return (id, cmd, args) of one request line, or raise ControlError.

    The error carries `.request_id` when the id could be read, so that the
    reply can still name the request.
    """
    if len(line) > MAX_REQUEST:
        raise _error(None, E_TOO_LONG, f"request longer than {MAX_REQUEST} bytes")
    try:  # decoded first: json.loads of bytes would also take UTF-16 and -32
        message = json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _error(None, E_BAD_REQUEST, f"not JSON: {exc}") from None
    except RecursionError:  # "[[[[...": nested deeper than the parser goes
        raise _error(None, E_BAD_REQUEST, "not JSON: nested too deeply") from None
    if not isinstance(message, dict):
        raise _error(None, E_BAD_REQUEST, "a request must be a JSON object")
    request_id = message.get("id")
    if not isinstance(request_id, (int, str)) or isinstance(request_id, bool):
        raise _error(None, E_BAD_REQUEST, "'id' must be an integer or a string")
    cmd = message.get("cmd")
    if not isinstance(cmd, str):
        raise _error(request_id, E_BAD_REQUEST, "'cmd' must be a string")
    if cmd not in COMMANDS:
        known = ", ".join(sorted(COMMANDS))
        raise _error(request_id, E_UNKNOWN_COMMAND, f"unknown command {cmd!r} (known: {known})")
    args = message.get("args", {})
    if not isinstance(args, dict):
        raise _error(request_id, E_BAD_REQUEST, "'args' must be an object")
    return request_id, cmd, check_args(request_id, cmd, args)


def check_args(request_id, cmd, args):
    spec = COMMANDS[cmd]
    unknown = sorted(set(args) - set(spec))
    if unknown:
        raise _error(request_id, E_BAD_ARGUMENT, f"{cmd}: unknown argument {unknown[0]!r}")
    checked = {}
    for name, (kind, default) in spec.items():
        if name not in args:
            if default is None and not (isinstance(kind, tuple) and type(None) in kind):
                raise _error(request_id, E_BAD_ARGUMENT, f"{cmd}: missing argument {name!r}")
            checked[name] = list(default) if isinstance(default, list) else default
            continue
        value = args[name]
        if isinstance(value, bool) and kind is not bool:
            ok = False
        else:
            ok = isinstance(value, kind)
        if ok and kind is list:
            ok = all(isinstance(item, str) and len(item) <= MAX_NAME for item in value)
            if ok and default is None and not value:
                # A required list of names: [] would mean "every instance"
                # to the master, which nobody sending `stop` meant.
                raise _error(request_id, E_BAD_ARGUMENT,
                             f"{cmd}: {name!r} must name at least one service (or 'all')")
        if ok and kind is int and value < 0:
            ok = False
        if not ok:
            raise _error(request_id, E_BAD_ARGUMENT, f"{cmd}: bad value for {name!r}: {value!r}")
        checked[name] = value
    return checked


def _error(request_id, code, message):
    exc = ControlError(code, message)
    exc.request_id = request_id
    return exc
