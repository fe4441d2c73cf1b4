"""`corral export systemd CONFIG`: one systemd unit per command service, for moving to systemd.

What maps one to one is written as such: the argv, env, cwd, user, group,
umask, restart, stop signal and timeout, `after` (Wants= and After=),
numprocs (a template unit, NAME@.service, one instance per index),
`sockets` (a NAME.socket unit: systemd passes them the way corral does,
LISTEN_FDS), `ready = "notify"` and `watchdog` (Type=notify,
WatchdogSec=), `max_memory` (MemoryMax=), the restart limit
(StartLimitBurst=, StartLimitIntervalSec=). What has no equivalent
(`health` probes, `ready` by tcp/http/seconds, corral's backoff curve) is
named in a comment in the unit and in a note on stderr.

A Python service is not exported: its tree is built in corral's master
and forked from it, so no command line runs it alone. The notes say so;
keep `corral run CONFIG` as one unit for those (docs/deploy.md).
"""

import os
import signal
import sys

from corral import kinds
from corral.errors import EXIT_OK

_RESTART = {"always": "always", "on-failure": "on-failure", "never": "no"}


def add(subcommands):
    text = "write systemd units for the config's command services"
    sub = subcommands.add_parser("export", help=text, description=text)
    sub.add_argument("format", choices=("systemd",), metavar="FORMAT", help="systemd")
    sub.add_argument("config", metavar="CONFIG", help="app.py, app.tac or corral.toml")
    sub.add_argument("-o", "--output", metavar="DIR", default=".",
                     help="where to write the units (.); existing files are replaced")
    sub.add_argument("--prefix", metavar="NAME",
                     help="the units' name prefix (default: the config's name, shop-web.service)")
    sub.set_defaults(handler=run_export, client=False)


def run_export(args, out):
    from corral import config as config_module  # the heavy side, only here

    config = config_module.load(os.path.abspath(args.config))
    prefix = args.prefix or os.path.splitext(os.path.basename(config.path))[0]
    units, notes = units_of(config, prefix)
    os.makedirs(args.output, exist_ok=True)
    for name, text in units.items():
        path = os.path.join(args.output, name)
        with open(path, "w") as file:
            file.write(text)
        out.line(path)
    for note in notes:
        print(f"corral: note: {note}", file=sys.stderr)
    return EXIT_OK


def units_of(config, prefix):
    """({file name: unit text}, [notes]) for the command services of config."""
    units, notes = {}, []
    commands = {spec.name for spec in config.services if spec.kind is kinds.COMMAND}
    folder = os.path.dirname(config.path)
    for spec in config.services:
        if spec.kind is kinds.FASTCGI:
            notes.append(f"{spec.name}: not exported: an [fcgi-program] takes its socket as "
                         "fd 0, which a systemd socket unit gives only with StandardInput=socket")
            continue
        if spec.kind is not kinds.COMMAND:
            notes.append(f"{spec.name}: not exported: a Python service runs inside corral's master "
                         "(its tree is forked from it); run `corral run CONFIG` as a unit for it")
            continue
        template = spec.numprocs > 1
        base = f"{prefix}-{spec.name}"
        unit_name = f"{base}@.service" if template else f"{base}.service"
        skipped = _not_mapped(spec)
        if template and spec.sockets:
            skipped.append("sockets (shared by numprocs instances: give each instance its own)")
        notes += [f"{spec.name}: not in the unit: {what}" for what in skipped]
        after = [f"{prefix}-{dep}.service" for dep in spec.after if dep in commands]
        ordered = [f"{prefix}-{dep}.service" for dep in spec.order_after if dep in commands]
        units[unit_name] = _service_unit(spec, config.path, folder, (after, ordered), skipped,
                                         template)
        if spec.sockets and not template:
            units[f"{base}.socket"] = _socket_unit(spec, config.path)
        if template:
            notes.append(f"{spec.name}: a template unit; start its instances as "
                         + " ".join(f"{base}@{i}.service" for i in range(spec.numprocs)))
    return units, notes


def _not_mapped(spec):
    skipped = []
    if spec.health is not None:
        skipped.append("health (no systemd equivalent: use a timer or an external check)")
    if spec.start_seconds:
        skipped.append(f"start_seconds = {spec.start_seconds:g} (a Type=exec unit is started "
                       "once exec'd; Restart= and StartLimitBurst= catch a quick death)")
    elif spec.ready is not None and spec.ready[0] != "notify":
        skipped.append(f"ready = {spec.ready[0]} (systemd waits for notify only)")
    if spec.stdin == "pipe":
        skipped.append('stdin = "pipe" (a unit\'s stdin is /dev/null: nothing writes to it)')
    return skipped


def _service_unit(spec, config_path, folder, links, skipped, template):
    """links: (the units of its `after`: Wants= and After=, those of its
    supervisord priority layer below: After= alone, an order as systemd's)."""
    after, ordered = links
    unit = [f"# Written by `corral export systemd` from {config_path}", "[Unit]",
            f"Description={spec.name}" + (" %i" if template else "") + f" (from {os.path.basename(config_path)})"]
    if after:
        unit.append(f"Wants={' '.join(after)}")
    if after or ordered:
        unit.append(f"After={' '.join(dict.fromkeys(after + ordered))}")
    unit += [f"StartLimitBurst={spec.max_restarts}", f"StartLimitIntervalSec={_seconds(spec.restart_window)}"]
    notify = spec.ready is not None and spec.ready[0] == "notify"
    service = ["", "[Service]", f"Type={'notify' if notify else 'exec'}",
               f"ExecStart={' '.join(quote(arg) for arg in spec.command)}",
               f"WorkingDirectory={(spec.cwd or folder).replace('%', '%%')}"]
    if notify:
        service.append("NotifyAccess=all")
    if template:
        service.append("Environment=CORRAL_INSTANCE_INDEX=%i")
    service += [f"Environment={quote(f'{key}={value}', command=False)}" for key, value in spec.env]
    if spec.user is not None:
        service.append(f"User={spec.user}")
    if spec.group is not None:
        service.append(f"Group={spec.group}")
    if spec.umask is not None:
        service.append(f"UMask={spec.umask:04o}")
    service += [f"Restart={_RESTART[spec.restart]}",
                f"RestartSec={_seconds(max(spec.backoff_initial, 0.1))}",
                f"KillSignal={signal.Signals(spec.stop_signal).name}",
                f"TimeoutStopSec={_seconds(spec.stop_timeout)}"]
    if spec.watchdog:
        service.append(f"WatchdogSec={_seconds(spec.watchdog)}")
    if spec.max_memory:
        service.append(f"MemoryMax={spec.max_memory}")
    if notify and spec.start_timeout:
        service.append(f"TimeoutStartSec={_seconds(spec.start_timeout)}")
    service += [f"# not mapped: {what}" for what in skipped]
    return "\n".join(unit + service + ["", "[Install]", "WantedBy=multi-user.target", ""])


def _socket_unit(spec, config_path):
    lines = [f"# Written by `corral export systemd` from {config_path}", "[Unit]",
             f"Description={spec.name}'s sockets", "", "[Socket]"]
    for url in spec.sockets:
        where, _, name = url.partition("#")
        kind, _, address = where.partition("://")
        key = {"tcp": "ListenStream", "unix": "ListenStream", "udp": "ListenDatagram"}[kind]
        lines.append(f"{key}={address}")
        if name:
            lines.append(f"FileDescriptorName={name}")
    return "\n".join(lines + ["", "[Install]", "WantedBy=sockets.target", ""])


def _seconds(value):
    text = f"{float(value):.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def quote(text, command=True):
    """One word in systemd's syntax: ExecStart= (where $ expands), or Environment=."""
    text = str(text).replace("%", "%%")
    if command:
        text = text.replace("$", "$$")
    if text and not any(ch in text for ch in ' \t"\'\\;'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
