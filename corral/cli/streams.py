"""`corral logs` and `corral events`: history, then (with -f) what comes.

For people on a terminal: local times without the date when the history is
from today, names padded to the widest seen so far, the foreground's
colours. Piped: the date on every line, no colour. `events` prints JSON
lines when piped or with --json (tools read them), text on a terminal.

`--since` and `--grep` are filters on the client's side, so any master
serves them: the history asked for is then all the master keeps (at most
the 1 MiB of newest lines one reply carries), and -n counts what matched.
"""

import argparse
import re
import sys
import time

from corral.cli import render
from corral.cli.client import Dropped
from corral.errors import EXIT_OK

ALL_HISTORY = 1 << 30  # "lines": as many as the master has

_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text):
    """Seconds from 90, 90s, 10m, 2h, 1d or 1h30m (an argparse type)."""
    spans = _SPAN.findall(text.strip())
    if not spans or "".join(a + b for a, b in spans) != text.strip().replace(" ", ""):
        raise argparse.ArgumentTypeError(f"not a duration (like 90s, 10m, 2h, 1h30m): {text!r}")
    return sum(float(number) * _UNIT[unit] for number, unit in spans)


def pattern(text):
    """A regular expression for --grep (an argparse type)."""
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"bad regular expression {text!r}: {exc}") from None


class Lines:
    """Renders items one after the other, keeping the names aligned."""

    def __init__(self, show, out, history):
        self.show, self.colour = show, out.colour
        self.date = not (out.tty and all(render.today(item.get("time")) for item in history))
        self.width = max([len(render.who(item)) for item in history] or [0])

    def __call__(self, item):
        self.width = max(self.width, len(render.who(item)))
        return self.show(item, self.width, self.colour, self.date)


def logs(client, args, out):
    request = dict(args.request)
    wanted = None  # how many matching lines of history to print; None: all
    if args.since is not None or args.grep is not None:
        request["lines"] = ALL_HISTORY
        wanted = args.lines if args.lines is not None else (None if args.since is not None else 100)
    since = None if args.since is None else time.time() - args.since

    def keep(item):
        if since is not None and (item.get("time") or 0) < since:
            return False
        return args.grep is None or args.grep.search(str(item.get("line", ""))) is not None

    def render_with(history):
        return render.json_line if args.json else Lines(render.log_line, out, history)

    return _show(client, args, out, request, keep, wanted, render_with, dropped_to_stdout=not args.json)


def events(client, args, out):
    as_json = args.json or not out.tty

    def render_with(history):
        return render.json_line if as_json else Lines(render.event_line, out, history)

    return _show(client, args, out, dict(args.request), lambda item: True, None, render_with,
                 dropped_to_stdout=not as_json)


def _show(client, args, out, request, keep, wanted, render_with, dropped_to_stdout):
    """Print the history (the last `wanted` kept items), then followed items."""
    follow = bool(args.follow)
    stream = client.stream(args.command, **request) if follow else None
    history = next(stream) if follow else client.call(args.command, **request)
    history = [item for item in history or () if keep(item)]
    if wanted is not None:
        history = history[-wanted:] if wanted else []
    show = render_with(history)
    for item in history:
        out.line(show(item))
    out.stream.flush()
    if not follow:
        return EXIT_OK
    for item in stream:
        if isinstance(item, Dropped):
            if dropped_to_stdout:
                out.line(render.dropped(item.count), flush=True)
            else:
                print(render.dropped(item.count), file=sys.stderr, flush=True)
        elif keep(item):
            out.line(show(item), flush=True)
    return EXIT_OK


HANDLERS = {"logs": logs, "events": events}

OPTIONS = {
    "logs": [
        (("--since",), {"type": duration, "metavar": "AGE",
                        "help": "only lines of the last AGE (90s, 10m, 2h, 1h30m)"}),
        (("--grep",), {"type": pattern, "metavar": "RE",
                       "help": "only lines that match this regular expression (Python's re)"}),
    ],
}
