"""The `corral` command line (docs/cli.md): parse, dispatch, map errors to exit codes.

`corral run CONFIG` runs the master in the foreground; `check`, `plugins`,
`completion` and `export` need no master; every other command is a client
of the master's control socket. The layout:

    parser.py     the grammar, built from corral.protocol.REGISTRY
    discovery.py  where the socket is, and the first place that answers
    client.py     the blocking control client
    commands.py   the commands that ask once: status, start, ..., version
    streams.py    logs and events, with -f, --since, --grep
    runcmd.py     run and plugins (the master side is imported only by run)
    check.py      check CONFIG: load it, start nothing
    completion.py completion scripts for bash, zsh and fish
    export.py     export systemd: one unit per command service
    render.py     results -> text

The client path imports only the standard library's light modules and
corral.protocol/errors/socketpath: never asyncio, multiprocess or the
master side (a test checks it).

Exit codes: 0 done, 1 a requested action failed, 2 usage error, 3 no master
answering on the socket, 130 interrupted, 141 stdout closed by its reader.
"""

import os
import sys

from corral.cli import commands, discovery, parser as grammar
from corral.cli.client import NoMaster
from corral.cli.commands import Output
from corral.cli.discovery import UsageError
from corral.errors import EXIT_FAILED, EXIT_NO_MASTER, EXIT_OK, EXIT_USAGE, ControlError, CorralError

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

build_parser = grammar.build_parser  # the tests' and the completion's way in


def run_client(args, out):
    try:
        client = discovery.connect(args)
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


def main(argv=None):
    parser, args = grammar.parse(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        error("a command is required (try: corral --help)")
        return EXIT_USAGE
    try:
        sys.stdout.reconfigure(errors="replace")
    except (AttributeError, ValueError):
        pass
    out = Output(sys.stdout)
    try:
        if args.client:
            return run_client(args, out)
        return args.handler(args, out)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`corral logs -f | head`): stop quietly, and
        # keep Python from complaining while flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
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


if __name__ == "__main__":
    sys.exit(main())
