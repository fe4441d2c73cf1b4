"""Run one parsed command line: connect for a client command, map the
expected errors to one printed line and an exit code (docs/cli.md, Exit
codes). `corral` runs its one command here, `corral shell` each line.
"""

import sys

from corral.cli import commands, discovery
from corral.cli.client import NoMaster
from corral.cli.discovery import UsageError
from corral.errors import EXIT_FAILED, EXIT_NO_MASTER, EXIT_OK, EXIT_USAGE, ControlError, CorralError


def run_client(args, out, connect=discovery.connect):
    try:
        client = connect(args)
    except NoMaster as exc:
        if args.command == "version":
            commands.version_without_master(args, out)
            error(exc, prefix="corral: note: ")
            return EXIT_OK
        raise
    with client:
        return args.handler(client, args, out)


def error(message, prefix="corral: error: "):
    text = " ".join(str(message).split()) if "\n" in str(message) else str(message)
    print(prefix + text, file=sys.stderr, flush=True)


def run_command(args, out, connect=discovery.connect):
    """Run one parsed command line and return its exit code; an expected
    error is printed as one line. `corral shell` runs each of its lines here
    with its own `connect`."""
    try:
        if args.client:
            return run_client(args, out, connect)
        return args.handler(args, out)
    except NoMaster as exc:
        error(exc)
        return EXIT_NO_MASTER
    except UsageError as exc:
        error(exc)
        return EXIT_USAGE
    except ControlError as exc:
        error(exc.message or exc.code)
        return EXIT_FAILED
    except CorralError as exc:
        detail = getattr(exc, "detail", None)
        if detail is not None:
            sys.stderr.write(detail if detail.endswith("\n") else detail + "\n")
        error(exc)
        return EXIT_FAILED
