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
    dispatch.py   one parsed command run: connect, errors to one line and an exit code
    top.py        top: the live view (topview.py lays out its frames)
    shell.py      shell: the interactive prompt over the same commands

The client path imports only the standard library's light modules and
corral.protocol/errors/socketpath: never asyncio, multiprocess or the
master side (a test checks it).

Exit codes: 0 done, 1 a requested action failed, 2 usage error, 3 no master
answering on the socket, 130 interrupted, 141 stdout closed by its reader.
"""

import os
import sys

from corral.cli import parser as grammar
from corral.cli.commands import Output
from corral.cli.dispatch import error, run_command
from corral.errors import EXIT_USAGE

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

build_parser = grammar.build_parser  # the tests' and the completion's way in


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
        return run_command(args, out)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`corral logs -f | head`): stop quietly, and
        # keep Python from complaining while flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
