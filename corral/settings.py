"""Supervision settings: one check per key, shared by TOML and Python.

A TOML service table and the settings given with Service.supervise() go
through the same supervision() call, so both get the same defaults, the
same limits and the same messages. A bad value raises Bad, which config.py
turns into a ConfigError naming the file, the service and the key.
"""

import difflib
import math
import os
import signal
from collections.abc import Mapping

from corral import envfile, kinds, healthspec, httpspec, privileges, readyspec, socketspec
from corral.errors import ConfigError
from corral.sizes import parse_size
from corral.spec import (GROUP_DEFAULTS, MAX_NUMPROCS, RESTART_POLICIES, SERVICE_DEFAULTS, STRATEGIES,
                         GroupSpec)


class Bad(Exception):
    """A bad value in one service; .error() adds the file and service name."""

    def __init__(self, message, key=None, detail=None):
        super().__init__(message)
        self.message, self.key, self.detail = message, key, detail

    def error(self, path, name):
        return ConfigError(path, self.message, service=name, key=self.key, detail=self.detail)


# -- supervision settings, shared by TOML and Python --------------------------

def supervision(name, table, folder, extra=(), base_env=(), kind=None):
    """Check supervision settings; returns every SERVICE_DEFAULTS key but
    start_seconds, which becomes `ready` (spec.py).

    base_env: (name, value) pairs under the service's own (the [corral]
    env_file's); then its env_file's, then its `env`, each winning.
    kind: what runs (kinds.py), for the start_seconds it gets by default."""
    settings = dict(SERVICE_DEFAULTS)
    table = dict(table)
    env_file = table.pop("env_file", None)
    for key, value in table.items():
        if key not in SERVICE_DEFAULTS:
            raise Bad(unknown(key, [*SERVICE_DEFAULTS, "env_file", *extra], "key"), key)
        try:
            settings[key] = _CHECKS[key](value, folder)
        except Bad as bad:
            raise Bad(bad.message, key) from None
    if env_file is not None or base_env:
        from_file = read_env_file(env_file, folder) if env_file is not None else []
        settings["env"] = tuple(sorted({**dict(base_env), **dict(from_file),
                                        **dict(settings["env"])}.items()))
    if name in settings["after"]:
        raise Bad("a service cannot start after itself", "after")
    if name in settings["requires"]:
        raise Bad("a service cannot require itself", "requires")
    # What it requires, it also starts after.
    settings["after"] = tuple(dict.fromkeys((*settings["after"], *settings["requires"])))
    low, high = settings["backoff_initial"], settings["backoff_max"]
    if high < low:  # blame the key the user wrote
        if "backoff_max" in table:
            raise Bad(f"must be >= backoff_initial ({low})", "backoff_max")
        raise Bad(f"must be <= backoff_max ({high})", "backoff_initial")
    settings["stop_signal"] = int(settings["stop_signal"])
    if settings["user"] is not None and settings["group"] is None:
        try:
            settings["group"] = privileges.primary_group(settings["user"])
        except ValueError as exc:
            raise Bad(str(exc), "user") from None
    refused = privileges.needs_root(settings["user"], settings["group"])
    if refused:
        raise Bad(refused[1], refused[0])
    if settings["stdin"] == "pipe" and kind is not kinds.COMMAND:
        raise Bad('"pipe" is for commands: a Python or Twisted worker\'s stdin is '
                  "/dev/null", "stdin")
    _start_seconds(settings, table, kind)
    return settings


def _start_seconds(settings, table, kind):
    """Fold start_seconds into `ready`: given, or the kind's when `ready` is not."""
    given = settings.pop("start_seconds")
    if given is not None and "ready" in table:
        raise Bad("give ready or start_seconds, not both: each says when it counts as "
                  "started", "start_seconds")
    if given is not None:
        settings["ready"] = readyspec.up_for(given)
    elif "ready" not in table and kind is not None:
        settings["ready"] = readyspec.up_for(kind.start_seconds)
    ready, limit = settings["ready"], settings["start_timeout"]
    if ready is not None and ready[0] == "seconds" and limit and ready[1] >= limit:
        default = "" if given is not None else f" (the default for a {kind.name})"
        key = "start_timeout" if "start_timeout" in table else "start_seconds"
        raise Bad(f"start_seconds = {ready[1]:g}{default} can never pass within "
                  f"start_timeout = {limit:g}", key)


def _via(parse):
    """A check from a parser that raises ValueError with the message."""
    def check(value, folder):
        try:
            return parse(value)
        except ValueError as exc:
            raise Bad(str(exc)) from None
    return check


def _number(low, low_ok=True, high=None, integer=False):
    """A check for a number in range; ints pass for floats, bools never."""
    def check(value, folder):
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise Bad(f"must be {'an integer' if integer else 'a number'}, not {value!r}")
        if not math.isfinite(value):
            raise Bad(f"must be a finite number, not {value!r}")
        if value < low or (value == low and not low_ok) or (high is not None and value > high):
            limits = (">= " if low_ok else "> ") + str(low)
            limits += f" and <= {high}" if high is not None else ""
            raise Bad(f"must be {limits}, not {value!r}")
        return value if integer else float(value)
    return check


def _choice(*allowed):
    def check(value, folder):
        if isinstance(value, bool) != isinstance(allowed[0], bool) or value not in allowed:
            shown = ", ".join(str(a).lower() if isinstance(a, bool) else a for a in allowed)
            raise Bad(f"must be one of {shown}, not {value!r}")
        return value
    return check


def _exit_codes(value, folder):
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value):
        raise Bad(f"must be a list of exit codes from 0 to 255, e.g. [0, 2], not {value!r}")
    return tuple(sorted(set(value)))


def _after(value, folder):
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise Bad(f'must be a list of service names, e.g. ["db"], not {value!r}')
    return tuple(dict.fromkeys(value))  # repeats dropped, order kept


def _stop_signal(value, folder):
    if isinstance(value, str):
        name = value.upper() if value.upper().startswith("SIG") else "SIG" + value.upper()
        if name in signal.Signals.__members__:
            return int(signal.Signals[name])
    elif isinstance(value, int) and not isinstance(value, bool):
        if value in set(signal.Signals):
            return value
    raise Bad(f'must be a signal name ("TERM", "SIGINT") or number, not {value!r}')


def read_env_file(value, folder):
    """The pairs of an env_file setting (a path, relative to the config's folder)."""
    if not isinstance(value, str) or not value:
        raise Bad(f'must be the path of a file of NAME=VALUE lines, e.g. ".env", not {value!r}',
                  "env_file")
    return envfile.read(resolve(folder, value))


def _env(value, folder):
    if not isinstance(value, Mapping):
        raise Bad(f'must be a table of NAME = "value" strings, not {value!r}')
    for key, val in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise Bad(f"bad variable name {key!r}")
        if not isinstance(val, str) or "\0" in val:
            raise Bad(f"the value of {key} must be a string, not {val!r}")
    return tuple(sorted(value.items()))


def _cwd(value, folder):
    if not isinstance(value, str) or not value:
        raise Bad(f"must be a directory path, not {value!r}")
    resolved = resolve(folder, value)
    if not os.path.isdir(resolved):
        raise Bad(f"{resolved!r} is not an existing directory")
    return resolved


def _sockets(value, folder):
    try:
        return socketspec.check_list(value, folder)
    except ValueError as exc:
        raise Bad(str(exc)) from None


_CHECKS = {
    "restart": _choice(*RESTART_POLICIES),
    "exit_codes": _exit_codes,
    "after": _after,
    "requires": _after,
    "numprocs": _number(1, integer=True, high=MAX_NUMPROCS),
    "sockets": _sockets,
    "stdin": _choice("null", "pipe"),
    "stop_signal": _stop_signal,
    "stop_timeout": _number(0),
    "env": _env,
    "cwd": _cwd,
    "autostart": _choice(True, False),
    "user": _via(privileges.user_id),
    "group": _via(privileges.group_id),
    "umask": _via(privileges.parse_umask),
    "backoff_initial": _number(0, low_ok=False),
    "backoff_factor": _number(1),
    "backoff_max": _number(0, low_ok=False),
    "backoff_jitter": _number(0, high=1),
    "backoff_reset": _number(0, low_ok=False),
    "max_restarts": _number(0, integer=True),
    "restart_window": _number(0, low_ok=False),
    "log_max_bytes": _via(parse_size),
    "log_backups": _number(0, integer=True),
    "health": _via(healthspec.parse_health),
    "max_memory": _via(healthspec.parse_memory),
    "ready": _via(readyspec.parse_ready),
    "start_seconds": _number(0),
    "start_timeout": _number(0),
    "task_crash": _choice("log", "restart"),
    "watchdog": lambda value, folder: _number(0)(value, folder) or None,  # 0: off
}
assert set(_CHECKS) == set(SERVICE_DEFAULTS), "every supervision key needs a check"
# The [corral] keys that are not paths (config.py checks those).
MASTER_CHECKS = {"log_max_bytes": _CHECKS["log_max_bytes"], "log_backups": _CHECKS["log_backups"],
                 "on_fatal": _choice("stay", "shutdown"),
                 "console": _choice("auto", "always", "never"),
                 "cgroups": _choice("auto", "off"),
                 "http": _via(lambda v: httpspec.parse_address(v) and v),
                 "http_auth": _via(httpspec.check_auth), "http_token": _via(httpspec.check_token),
                 "xmlrpc": lambda value, folder: xmlrpc_addresses(value, folder),
                 "xmlrpc_username": lambda value, folder: _text(value),
                 "xmlrpc_password": lambda value, folder: _text(value)}


def _text(value):
    if not isinstance(value, str) or not value:
        raise Bad(f"must be a non-empty string, not {value!r}")
    return value


def xmlrpc_addresses(value, folder):
    """("unix:///abs", "tcp://host:port", ...) from one address or a list of them."""
    found = []
    for item in [value] if isinstance(value, str) else value if isinstance(value, list) else [None]:
        if not isinstance(item, str) or not item:
            raise Bad('must be "unix:///path/to.sock" or "127.0.0.1:9001", or a list of them, '
                      f"not {value!r}")
        if item.startswith("unix://"):
            found.append("unix://" + resolve(folder, item[len("unix://"):]))
            continue
        host, colon, port = item.removeprefix("tcp://").rpartition(":")
        if not colon or not port.isdigit() or not 0 < int(port) < 65536:
            raise Bad(f'{item!r}: give "unix:///path/to.sock" or "HOST:PORT" '
                      '(e.g. "127.0.0.1:9001"; "*:9001" or ":9001" for every interface)')
        found.append(f"tcp://{'' if host == '*' else host}:{port}")
    return tuple(found)

_GROUP_CHECKS = {
    "services": _after,
    "strategy": _choice(*STRATEGIES),
    "max_restarts": _number(0, integer=True),
    "restart_window": _number(0, low_ok=False),
}


def group(name, table, known, taken):
    """A GroupSpec from [groups.NAME]; Bad names the key. known: the config's
    service names; taken: {service: the group it is in already}."""
    if not isinstance(table, Mapping):
        raise Bad("must be a table ([groups.NAME])")
    if "services" not in table:
        raise Bad('needs services = ["a", "b", ...], in the order they start', "services")
    settings = dict(GROUP_DEFAULTS)
    for key, value in table.items():
        if key not in _GROUP_CHECKS:
            raise Bad(unknown(key, _GROUP_CHECKS, "key"), key)
        try:
            settings[key] = _GROUP_CHECKS[key](value, None)
        except Bad as bad:
            raise Bad(bad.message, key) from None
    for service in settings["services"]:
        if service not in known:
            raise Bad(unknown(service, known, "service"), "services")
        if service in taken:
            raise Bad(f"{service!r} is in group {taken[service]!r} already", "services")
    return GroupSpec(name=name, **settings)

def unknown(key, known, what):
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1)
    return f"unknown {what} {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


def resolve(folder, value):
    return os.path.normpath(os.path.join(folder, os.path.expanduser(value)))
