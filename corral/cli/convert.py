"""`corral convert SUPERVISORD.CONF`: the equivalent corral TOML, for moving over for good.

The TOML goes to stdout, and one `corral: note: ...` line per thing that
could not be carried over goes to stderr (corral/loaders/supervisord/convert.py).
It needs no master.
"""

import os
import sys

from corral.errors import EXIT_OK


def add(subcommands):
    text = "print a supervisord.conf as corral TOML, and what it cannot carry over"
    sub = subcommands.add_parser("convert", help=text, description=text)
    sub.add_argument("file", metavar="SUPERVISORD.CONF", help="the supervisord.conf to convert")
    sub.set_defaults(handler=run_convert, client=False)


def run_convert(args, out):
    from corral.loaders.supervisord.convert import convert  # the loaders, only here

    text, notes = convert(os.path.abspath(args.file))
    out.line(text.rstrip("\n"))
    for note in notes:
        print(f"corral: note: {note}", file=sys.stderr, flush=True)
    return EXIT_OK
