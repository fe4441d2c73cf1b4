"""`corral check CONFIG`: load a config as `run` would, start nothing, say what it holds.

Like `nginx -t`: the services with their instances, the order they start
in, the sockets (the control socket, each command's listening sockets, the
servers of each Python tree), or the one-line error `run` would give, with
exit code 1. Loading a .py config runs it, and imports the master side:
only this command pays for that.
"""

import os

from corral import kinds, order, socketpath
from corral.cli import render
from corral.errors import EXIT_OK


def add(subcommands):
    text = "check a config without starting anything: services, start order, sockets"
    check = subcommands.add_parser("check", help=text, description=text)
    check.add_argument("config", metavar="CONFIG", help="app.py, app.tac or corral.toml")
    check.add_argument("--json", action="store_true", default=False, help="print JSON for tools")
    check.set_defaults(handler=run_check, client=False)


def run_check(args, out):
    from corral import config as config_module  # the heavy side, only here

    config = config_module.load(os.path.abspath(args.config))
    report = describe(config)
    out.line(render.to_json(report) if args.json else text(report))
    return EXIT_OK


def waves(specs):
    """The start order as waves (order.py's, the one start-order rule)."""
    return order.waves({spec.name: (*spec.after, *spec.order_after) for spec in specs})


def describe(config):
    """The plain-data report of a loaded Config (what --json prints)."""
    socket, set_in_config = socketpath.of_config(config.master.socket, config.path, create=False)
    services = []
    for spec in config.services:
        what = {"kind": spec.kind.name,
                "command" if isinstance(spec.kind, kinds.Command) else "service":
                    spec.kind.what_runs(spec)}
        services.append({
            "name": spec.name, **what,
            "instances": spec.instance_names(),
            "after": list(spec.after),
            "order_after": list(spec.order_after),  # supervisord's priority: an order only
            "autostart": spec.autostart,
            "restart": spec.restart,
            "sockets": spec.kind.sockets(spec),
        })
    master = config.master
    return {
        "config": config.path,
        "socket": socket,
        "socket_from": "config" if set_in_config else "default",
        "logfile": master.logfile,
        "log_dir": master.log_dir,
        "pidfile": master.pidfile,
        "start_order": waves(config.services),
        "services": services,
    }


def _shell_words(argv):
    """argv as one line a shell would split back (newlines escaped)."""
    import shlex

    return " ".join(shlex.quote(arg) for arg in argv).replace("\n", "\\n")


def text(report):
    count = sum(len(service["instances"]) for service in report["services"])
    lines = [f"{report['config']}: ok, {len(report['services'])} services, {count} instances",
             f"control socket: {report['socket']}"
             + ("" if report["socket_from"] == "config" else " (the default for this config)")]
    for key in ("logfile", "log_dir", "pidfile"):
        if report[key]:
            lines.append(f"{key}: {report[key]}")
    lines.append("start order: " + ", then ".join(", ".join(wave) for wave in report["start_order"]))
    rows = [("SERVICE", "KIND", "INSTANCES", "AFTER", "SOCKETS", "RUNS")]
    for service in report["services"]:
        runs = _shell_words(service["command"]) if service["kind"] == "command" else service["service"]
        if not service["autostart"]:
            runs += "  (autostart off)"
        rows.append((service["name"], service["kind"], ", ".join(service["instances"]),
                     ", ".join(service["after"] + [f"({n})" for n in service["order_after"]])
                     or "-", ", ".join(service["sockets"]) or "-", runs))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return "\n".join(lines)
