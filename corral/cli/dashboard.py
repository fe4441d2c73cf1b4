"""`corral dashboard`: the URL of the master's HTTP listener, with its token.

The master writes its URL and token into SOCKET.http (mode 0600, beside its
control socket: frontends/http.py); reading that file is the proof of being
allowed, as connecting to the socket is. The socket is found as for every
client command, so that only a master that answers is asked about.
"""

import json
import os

from corral.cli import render
from corral.cli.client import NoMaster
from corral.errors import EXIT_OK, CorralError

HELP = "print the URL of the master's dashboard, with its token"


def add(subcommands, common):
    sub = subcommands.add_parser("dashboard", help=HELP, description=HELP, parents=[common])
    sub.set_defaults(handler=show, client=True)


def show(client, args, out):
    path = os.path.realpath(client.path) + ".http"  # beside the socket, not its pointer
    try:
        with open(path) as f:
            info = json.load(f)
    except FileNotFoundError:
        raise NoMaster(client.path, "it serves no dashboard (no [corral] http, no --http)") from None
    except (OSError, ValueError) as exc:
        raise CorralError(f"cannot read {path}: {exc}") from None
    url = info.get("url", "")
    if info.get("token"):
        url += "?token=" + info["token"]
    out.line(render.to_json(info) if args.json else url)
    return EXIT_OK
