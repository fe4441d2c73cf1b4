"""The command line's grammar: argparse, built from the one command table.

Every client command, its arguments and their help come from
corral.protocol.REGISTRY, so a command or an argument added there is on the
wire, in the server's check and on the command line at once; what only the
command line has (`status --check`, `logs --since`) and the local commands
(run, check, plugins, completion, export) are added here. `parse()` also
turns the parsed arguments back into the request to send (`args.request`):
the wire arguments given, and none left at its default, so that a newer
client talks to an older master as long as it asks nothing new.
"""

import argparse

from corral import protocol
from corral.cli import check, commands, completion, convert, dashboard, export, runcmd, shell, streams, top

CLIENT_HANDLERS = {**commands.HANDLERS, **streams.HANDLERS}
CLIENT_OPTIONS = {**commands.OPTIONS, **streams.OPTIONS}
EPILOG = "Exit codes: 0 done, 1 an action failed, 2 usage error, 3 no master answering."


def count(text):
    """A count for -n: 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def instances(text):
    """N of scale: a number (the master says which are allowed)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def signal_arg(text):
    """HUP, SIGHUP, 9 or -9 (as kill takes it): numbers go as numbers."""
    digits = text[1:] if text.startswith("-") else text
    return int(digits) if digits.isdigit() else text


# Command-line types of wire arguments whose text is not the value to send.
_CLI_TYPES = {"signal": signal_arg, "lines": count, "count": instances}


def _client_options(parser, top):
    """--socket, -c/--config, --json; accepted before and after the subcommand.

    The subcommand's copies default to SUPPRESS so that an option given
    before the subcommand is not overwritten by the subparser's default.
    """
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("connection") if top else parser
    group.add_argument("--socket", metavar="PATH", default=default, help="the control socket of the master")
    group.add_argument(
        "-c", "--config", metavar="CONFIG", default=default,
        help="the config the master was started with: find its socket from it"
    )
    group.add_argument(
        "--json", action="store_true", default=False if top else argparse.SUPPRESS, help="print JSON for tools"
    )


def _add_wire_arg(parser, arg):
    """One protocol.Arg as argparse sees it; its value is None when not given."""
    kwargs = {"help": arg.help, "dest": arg.name}
    if arg.metavar:
        kwargs["metavar"] = arg.metavar
    if arg.name in _CLI_TYPES:
        kwargs["type"] = _CLI_TYPES[arg.name]
    if arg.flags:
        if arg.kind is bool:
            kwargs = {"help": arg.help, "dest": arg.name, "action": "store_true", "default": None}
        parser.add_argument(*arg.flags, **kwargs)
        return
    del kwargs["dest"]  # a positional's dest is its name
    if arg.kind is list:
        kwargs["nargs"] = "+" if arg.default is None else "*"
        kwargs["default"] = None
    elif isinstance(arg.kind, tuple) and type(None) in arg.kind:
        kwargs["nargs"] = "?"
    parser.add_argument(arg.name, **kwargs)


def request_of(command, args):
    """The wire arguments of a parsed command line: those given, not at their default."""
    request = {}
    for arg in command.args:
        value = getattr(args, arg.name, None)
        if value is None:
            continue
        required = arg.default is None and not (isinstance(arg.kind, tuple) and type(None) in arg.kind)
        if required or value != arg.default:
            request[arg.name] = value
    return request


def build_parser():
    parser = argparse.ArgumentParser(prog="corral", description="A process supervisor for one host.",
                                     epilog=EPILOG)
    _client_options(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _client_options(common, top=False)
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    runcmd.add_run(subcommands)
    for name, command in protocol.REGISTRY.items():
        sub = subcommands.add_parser(name, help=command.help, description=command.help, parents=[common])
        for arg in command.args:
            _add_wire_arg(sub, arg)
        for flags, kwargs in CLIENT_OPTIONS.get(name, ()):
            sub.add_argument(*flags, **kwargs)
        sub.set_defaults(handler=CLIENT_HANDLERS[name], client=True)
    for module in (dashboard, top, shell):  # clients of their own
        module.add(subcommands, common)
    for module in (runcmd, check, completion, export, convert):  # local: no master needed
        module.add(subcommands)
    return parser


def parse(argv=None, parser=None):
    """(parser, args): args.request holds a client command's wire arguments."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    args.root_parser = parser  # completion scripts are made from the whole grammar
    args.reparse = lambda words: parse(words, parser)[1]  # corral shell parses its lines with it
    command = protocol.REGISTRY.get(args.command)
    if command is not None and getattr(args, "client", False):
        args.request = request_of(command, args)
    return parser, args
