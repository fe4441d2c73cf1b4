"""`corral convert supervisord.conf`: the equivalent corral TOML, and what is lost.

The TOML is written from the same specs the loader gives `corral run`, so
running the output means what running the supervisord.conf means, except
for the notes: settings that corral's TOML cannot say (raw per-stream log
files, the XML-RPC sections) or that mean something else under corral.
Only values that differ from corral's defaults are written.
"""

import dataclasses
import signal

from corral import kinds
from corral.loaders.supervisord import parse
from corral.spec import MASTER_DEFAULTS, SERVICE_DEFAULTS

# Set by the loader for supervisord's sake; a TOML file states them itself.
_KEYS = [key for key in SERVICE_DEFAULTS if key not in ("sockets", "health", "max_memory",
                                                         "watchdog", "group")]


def convert(path):
    """(toml text, notes) for the supervisord.conf at path."""
    master, specs, notes = parse(path)
    notes = list(notes)
    lines = [f"# Converted from {path} by `corral convert`.", ""]
    corral = [(key, getattr(master, key)) for key in ("logfile", "pidfile", "log_max_bytes",
                                                      "log_backups")
              if getattr(master, key) != MASTER_DEFAULTS[key]]
    corral += _xmlrpc(master.xmlrpc, notes)
    if corral:
        lines.append("[corral]")
        lines.extend(f"{key} = {_toml(value)}" for key, value in corral)
        lines.append("")
    if any(spec.order_after for spec in specs):
        notes.append("priority: the start layers are `after` in the TOML, which also starts "
                     "the lower layers when a service is started by hand (supervisord's "
                     "priority only orders a start of several)")
    for spec in specs:
        spec = dataclasses.replace(spec, after=tuple(dict.fromkeys((*spec.after, *spec.order_after))))
        lines.append(f"[services.{_key(spec.name)}]")
        lines.append(f"command = {_toml(list(spec.command))}")
        for key in _KEYS:
            value = getattr(spec, key)
            if value == SERVICE_DEFAULTS[key] or (key == "env" and not value) \
                    or not _written(spec, key):
                continue
            lines.append(f"{key} = {_toml(_plain(key, value))}")
        if spec.kind is kinds.FASTCGI:
            notes.append(f"{spec.name}: its [fcgi-program] socket ({spec.sockets[0]}) on fd 0 "
                         "has no TOML form; `sockets = [...]` passes a socket as fd 3 with "
                         "LISTEN_FDS instead")
        if spec.stream_files:
            where = ", ".join(f"{f.stream}: {f.path}" for f in spec.stream_files)
            notes.append(f"{spec.name}: raw per-stream log files ({where}) are not TOML "
                         "settings; set [corral] log_dir for one timestamped file per service")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n", notes


def _xmlrpc(rpc, notes):
    """[corral] xmlrpc keys for the http sections; notes for what TOML cannot say."""
    listeners = [(f"unix://{rpc.unix.path}", rpc.unix.username, rpc.unix.password)] \
        if rpc.unix else []
    if rpc.inet:
        listeners.append((f"tcp://{rpc.inet.host}:{rpc.inet.port}", rpc.inet.username,
                          rpc.inet.password))
    if not listeners:
        return []
    keys = [("xmlrpc", [address for address, _, _ in listeners])]
    pairs = {(username, password) for _, username, password in listeners}
    username, password = pairs.pop() if len(pairs) == 1 else (None, None)
    if pairs:
        notes.append("[unix_http_server] and [inet_http_server] have different usernames or "
                     "passwords; corral's TOML has one pair for every xmlrpc address: set "
                     "xmlrpc_username and xmlrpc_password")
    elif username is not None:
        keys += [("xmlrpc_username", username), ("xmlrpc_password", password)]
    renamed = [f"{group}:{name}" for group, _, names in rpc.groups for name in names
               if name != group]
    if renamed:
        notes.append("supervisorctl names the processes " + ", ".join(renamed) + " under "
                     "supervisord.conf; from the TOML each is a service of its own name")
    return keys


def _written(spec, key):
    """False for the key that does not say the readiness rule: start_seconds
    says "stayed up N s" (but not a command's 1 s, the default), ready the rest."""
    up_for = spec.ready is None or spec.ready[0] == "seconds"
    if key == "start_seconds":
        return up_for and spec.start_seconds != kinds.COMMAND.start_seconds
    return key != "ready" or not up_for


def _plain(key, value):
    if key == "stop_signal":
        return signal.Signals(value).name.removeprefix("SIG")
    if key == "umask":
        return f"{value:03o}"
    if key == "env":
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _key(name):
    return name if name.replace("-", "").replace("_", "").isalnum() else _toml(name)


def _toml(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if value != int(value) else str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")
