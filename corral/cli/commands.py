"""The client commands that ask once and print the answer.

status, start, stop, restart, signal, tree, reload, reopen, shutdown,
version and upgrade: each handler gets a connected Client, the parsed arguments (the
request to send is `args.request`, built by parser.py from the command
table) and an Output, and returns the exit code. logs and events, which
may follow, are in streams.py.
"""

import corral
from corral.cli import render
from corral.errors import EXIT_FAILED, EXIT_OK


class Output:
    """stdout with the colour decision and a flush after each followed item."""

    def __init__(self, stream):
        self.stream = stream
        self.colour = render.use_colour(stream)
        self.tty = isatty(stream)
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self.unicode = encoding in ("utf8", "utf_8")

    def line(self, text="", flush=False):
        self.stream.write(text + "\n")
        if flush:
            self.stream.flush()


def isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def status(client, args, out):
    request = dict(args.request)
    names = request.get("names") or []
    if len(names) == 1 and names[0] != "all" and not any(c in names[0] for c in "*?[") \
            and not args.json:
        request["detail"] = True  # one service or instance: the detailed view, as systemctl's
    items = client.call("status", **request)
    if args.json:
        out.line(render.to_json(items))
    elif request.get("detail"):
        out.line("\n\n".join(render.detail(item, out.colour, out.unicode) for item in items))
    else:
        out.line(render.status_table(items, out.colour))
    if args.check and any(item.get("state") != "RUNNING" for item in items):
        return EXIT_FAILED
    return EXIT_OK


def action(client, args, out):
    """start, stop, restart, scale, signal: one line per instance; 1 unless all ok."""
    items = client.call(args.command, **args.request)
    if args.json:
        out.line(render.to_json(items))
    else:
        for item in items:
            out.line(render.action_line(item, out.colour))
    return EXIT_OK if all(item.get("ok") for item in items) else EXIT_FAILED


def tree(client, args, out):
    result = client.call("tree")
    out.line(render.to_json(result) if args.json else render.tree(result or {}, out.colour, out.unicode))
    return EXIT_OK


def reload(client, args, out):
    result = client.call("reload")
    out.line(render.to_json(result) if args.json else render.reload_summary(result or {}))
    return EXIT_OK


def plain(client, args, out):
    """reopen, shutdown: nothing to say when done (JSON null with --json)."""
    result = client.call(args.command)
    if args.json:
        out.line(render.to_json(result))
    return EXIT_OK


def version(client, args, out):
    result = client.call("version") or {}
    out.line(render.to_json(result) if args.json else render.version_line(result, corral.__version__))
    return EXIT_OK


UPGRADE_WAIT = 60.0  # s for the new image to answer


def upgrade(client, args, out):
    """Ask for the upgrade, then wait for the new image to answer: the
    connection ends with the old image's exec."""
    import time

    from corral.cli.client import Client, NoMaster

    asked = client.call("upgrade", **args.request)
    client.close()
    deadline = time.monotonic() + UPGRADE_WAIT
    while True:
        try:
            with Client(client.path) as again:
                now = again.call("version")
        except NoMaster:
            now = None
        if now is not None and now.get("image", 0) > asked["image"]:  # absent: 0
            break
        if time.monotonic() > deadline:
            out.line(f"upgrade: no answer from the new image within {UPGRADE_WAIT:g} s")
            return EXIT_FAILED
        time.sleep(0.05)
    if args.json:
        out.line(render.to_json(now))
    elif now.get("upgrade_error"):
        out.line(f"upgrade failed, the previous image took over again: {now['upgrade_error']}")
    else:
        out.line(f"upgraded: corral {asked['version']} -> {now['version']}, pid {now['pid']}")
    return EXIT_FAILED if now.get("upgrade_error") else EXIT_OK


def version_without_master(args, out):
    """`corral version` with nobody answering: the client's own version."""
    version = corral.__version__
    out.line(render.to_json({"version": version, "pid": None}) if args.json else f"corral {version}")


HANDLERS = {
    "status": status,
    "start": action,
    "stop": action,
    "restart": action,
    "scale": action,
    "signal": action,
    "tree": tree,
    "reload": reload,
    "reopen": plain,
    "shutdown": plain,
    "version": version,
    "upgrade": upgrade,
}

# Options only the command line has: (flags, argparse keywords) per command.
OPTIONS = {
    "status": [(("--check",), {"action": "store_true",
                               "help": "exit 1 unless every listed instance is RUNNING"})],
}
