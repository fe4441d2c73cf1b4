"""The `corral` command line (docs/cli.md).

`corral run CONFIG` runs the master in the foreground; every other command
is a client of the master's control socket. The client path imports only
the standard library's light modules and corral.protocol/errors: the master
side (asyncio, multiprocess, corral.supervisor, corral.config) is
imported by `run` alone, lazily.

Exit codes: 0 done, 1 a requested action failed, 2 usage error, 3 no master
answering on the socket, 130 interrupted.
"""

import argparse
import os
import sys

import corral
from corral.cli import render
from corral.cli.client import Client, Dropped, NoMaster
from corral.errors import EXIT_FAILED, EXIT_NO_MASTER, EXIT_OK, EXIT_USAGE, ControlError, CorralError

SOCKET_ENV = "CORRAL_SOCKET"
DEFAULT_SOCKET = "corral.sock"
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class UsageError(CorralError):
    """A bad command line found after parsing (exit code 2)."""


# -- argument parsing ---------------------------------------------------------


def _count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _umask(text):
    """An octal umask: 022, 0022 or 0o022."""
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"not an octal umask (like 022): {text!r}")
    return value


def _client_options(parser, top):
    """--socket, -c/--config, --json; accepted before and after the subcommand.

    The subcommand's copies default to SUPPRESS so that an option given
    before the subcommand is not overwritten by the subparser's default.
    """
    default = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("connection") if top else parser
    group.add_argument("--socket", metavar="PATH", default=default, help="the control socket of the master")
    group.add_argument(
        "-c", "--config", metavar="CONFIG", default=default, help="find the socket from this config file"
    )
    group.add_argument(
        "--json", action="store_true", default=False if top else argparse.SUPPRESS, help="print JSON for tools"
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="corral",
        description="A process supervisor for one host.",
        epilog="Exit codes: 0 done, 1 an action failed, 2 usage error, 3 no master answering.",
    )
    _client_options(parser, top=True)
    common = argparse.ArgumentParser(add_help=False)
    _client_options(common, top=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help_text, client=True):
        return commands.add_parser(name, help=help_text, description=help_text, parents=[common] if client else [])

    run = add("run", "run the master (in the foreground unless -d)", client=False)
    run.add_argument("config", metavar="CONFIG|PLUGIN",
                     help="app.py, app.tac or corral.toml, or the name of a plugin (corral plugins)")
    # After a plugin's name, everything is the plugin's (corral run web --help);
    # after a config file, the run options below (see _run_target).
    run.add_argument("rest", nargs=argparse.REMAINDER, metavar="...",
                     help="a plugin's own options; they go after its name")
    run.set_defaults(run_parser=run)
    run.add_argument("--socket", metavar="PATH", default=argparse.SUPPRESS, help="the control socket to listen on")
    run.add_argument("--logfile", metavar="PATH", help="the merged log file")
    run.add_argument("--log-dir", metavar="DIR", help="the folder of the per-service log files")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("-d", "--daemon", action="store_true", default=False,
                      help="detach; return once the master answers on its socket")
    mode.add_argument("-n", "--nodaemon", dest="daemon", action="store_false",
                      help="stay in the foreground (the default)")
    run.add_argument("--pidfile", metavar="PATH", help="write the master's pid here, locked while it runs")
    run.add_argument("--uid", metavar="USER", help="run the master as this user (name or id)")
    run.add_argument("--gid", metavar="GROUP", help="run the master as this group (default: the user's)")
    run.add_argument("--umask", metavar="MASK", type=_umask, help="the master's umask, octal (022)")
    run.add_argument("--rundir", metavar="DIR", help="change to this folder (with -d, default /)")

    status = add("status", "show the state of services")
    status.add_argument("names", nargs="*", metavar="NAME", help="services (web) or instances (web:0)")
    status.add_argument("--check", action="store_true", help="exit 1 unless every listed instance is RUNNING")

    for name, verb in (("start", "start"), ("stop", "stop"), ("restart", "restart")):
        sub = add(name, f"{verb} services")
        sub.add_argument("names", nargs="+", metavar="NAME", help="services (web) or instances (web:0)")
        if name == "restart":
            sub.add_argument("--rolling", action="store_true",
                             help="one instance at a time, each RUNNING before the next stops")

    sig = add("signal", "send a signal to services")
    sig.add_argument("signal", metavar="SIG", help="a name (TERM, SIGHUP) or a number")
    sig.add_argument("names", nargs="+", metavar="NAME", help="services (web) or instances (web:0)")

    logs = add("logs", "print the recent output of one or all services")
    logs.add_argument("name", nargs="?", metavar="NAME", help="a service or instance; all when left out")
    logs.add_argument("-n", "--lines", type=_count, default=100, metavar="N", help="lines of history (100)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")

    events = add("events", "print state changes as JSON lines")
    events.add_argument("-n", "--lines", type=_count, default=100, metavar="N", help="events of history (100)")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing new events")

    add("tree", "show the service tree")
    add("reload", "re-read the config and apply the differences")
    add("reopen", "reopen the log files (after rotation)")
    add("shutdown", "stop every service and the master")
    add("version", "print the version of corral and of the master")
    plugins = add("plugins", "list the plugins that `corral run NAME` can run", client=False)
    plugins.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for tools")
    return parser


# -- socket discovery -----------------------------------------------------------


def find_socket(args, environ=None, cwd=None):
    """Return (path, how): --socket, $CORRAL_SOCKET, -c CONFIG, ./corral.sock."""
    environ = os.environ if environ is None else environ
    cwd = os.getcwd() if cwd is None else cwd
    if args.socket:
        return os.path.join(cwd, args.socket), "--socket"
    if environ.get(SOCKET_ENV):
        return os.path.join(cwd, environ[SOCKET_ENV]), f"${SOCKET_ENV}"
    if args.config:
        config = os.path.join(cwd, args.config)
        return _socket_of_config(config, cwd), f"config {args.config}"
    return os.path.join(cwd, DEFAULT_SOCKET), "default"


def _socket_of_config(config, cwd):
    if not config.endswith(".toml"):
        if not os.path.exists(config):
            raise UsageError(f"config {config}: no such file")
        return os.path.join(cwd, DEFAULT_SOCKET)
    import tomllib

    try:
        with open(config, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise UsageError(f"config {config}: no such file") from None
    except OSError as exc:
        raise CorralError(f"config {config}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CorralError(f"config {config}: {exc}") from None
    settings = data.get("corral", {})
    value = settings.get("socket") if isinstance(settings, dict) else None
    if value is None:
        return os.path.join(cwd, DEFAULT_SOCKET)
    if not isinstance(value, str) or not value:
        raise CorralError(f"config {config}: key 'socket' in [corral] must be a path")
    return os.path.join(os.path.dirname(config), value)


# -- commands -------------------------------------------------------------------


class Output:
    """stdout with the colour decision and a flush after each followed item."""

    def __init__(self, stream):
        self.stream = stream
        self.colour = render.use_colour(stream)
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self.unicode = encoding in ("utf8", "utf_8")

    def line(self, text="", flush=False):
        self.stream.write(text + "\n")
        if flush:
            self.stream.flush()


def cmd_status(client, args, out):
    items = client.call("status", names=args.names)
    if args.json:
        out.line(render.to_json(items))
    else:
        out.line(render.status_table(items, out.colour))
    if args.check and any(item.get("state") != "RUNNING" for item in items):
        return EXIT_FAILED
    return EXIT_OK


def cmd_action(client, args, out):
    params = {"names": args.names}
    if args.command == "signal":
        params["signal"] = _signal_arg(args.signal)
    if getattr(args, "rolling", False):
        params["rolling"] = True  # sent only when asked: older masters know no such argument
    items = client.call(args.command, **params)
    if args.json:
        out.line(render.to_json(items))
    else:
        for item in items:
            out.line(render.action_line(item, out.colour))
    return EXIT_OK if all(item.get("ok") for item in items) else EXIT_FAILED


def _signal_arg(text):
    digits = text[1:] if text.startswith("-") else text
    if digits.isdigit():
        return int(digits)
    return text


def _follow(client, args, out, params, show, dropped_to_stdout):
    follow = args.follow
    stream = client.stream(args.command, follow=follow, **params) if follow else None
    items = next(stream) if follow else client.call(args.command, follow=False, **params)
    for item in items or ():
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
        else:
            out.line(show(item), flush=True)
    return EXIT_OK


def cmd_logs(client, args, out):
    show = render.json_line if args.json else render.log_line
    return _follow(client, args, out, {"name": args.name, "lines": args.lines}, show, not args.json)


def cmd_events(client, args, out):
    return _follow(client, args, out, {"lines": args.lines}, render.json_line, False)


def cmd_tree(client, args, out):
    result = client.call("tree")
    out.line(render.to_json(result) if args.json else render.tree(result or {}, out.colour, out.unicode))
    return EXIT_OK


def cmd_reload(client, args, out):
    result = client.call("reload")
    out.line(render.to_json(result) if args.json else render.reload_summary(result or {}))
    return EXIT_OK


def cmd_plain(client, args, out):
    result = client.call(args.command)
    if args.json:
        out.line(render.to_json(result))
    return EXIT_OK


def cmd_version(client, args, out):
    result = client.call("version") or {}
    out.line(render.to_json(result) if args.json else render.version_line(result, corral.__version__))
    return EXIT_OK


def cmd_plugins(args, out):
    """List the plugins (no master needed); a broken one is listed with its error."""
    from corral import plugins

    found = plugins.discover()
    if args.json:
        out.line(render.to_json([{"name": f.name, "description": f.description, "error": f.error} for f in found]))
    else:
        out.line(plugins.listing(found))
    return EXIT_OK


COMMANDS = {
    "status": cmd_status,
    "start": cmd_action,
    "stop": cmd_action,
    "restart": cmd_action,
    "signal": cmd_action,
    "logs": cmd_logs,
    "events": cmd_events,
    "tree": cmd_tree,
    "reload": cmd_reload,
    "reopen": cmd_plain,
    "shutdown": cmd_plain,
    "version": cmd_version,
}


def run_client(args, out):
    path, how = find_socket(args)
    try:
        client = Client(path)
    except NoMaster as exc:
        if args.command == "version":
            version = corral.__version__
            out.line(render.to_json({"version": version, "pid": None}) if args.json else f"corral {version}")
            _error(f"{exc} (socket from {how})", prefix="corral: note: ")
            return EXIT_OK
        raise NoMaster(path, f"{exc.reason} (socket from {how})") from None
    with client:
        return COMMANDS[args.command](client, args, out)


def _looks_like_path(target):
    return os.sep in target or target.endswith((".toml", ".py", ".tac"))


def _run_target(args):
    """(source, loader) for run_master: a config file, or a plugin (twistd's NAME).

    `corral run [run options] TARGET [...]`: when TARGET is not a file and
    names a plugin, what follows it is the plugin's options, parsed here
    (--help exits here); loader makes its service. For a config file, what
    follows it is more run options (`corral run app.toml --socket S`),
    parsed here into args; loader is None (config.load).
    """
    target, rest = args.config, args.rest
    if not os.path.isfile(target) and not _looks_like_path(target):
        from corral import plugins

        found = plugins.find(target)
        if found is None:
            known = ", ".join(plugins.names()) or "none installed"
            near = [target + ext for ext in (".py", ".toml", ".tac") if os.path.isfile(target + ext)]
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise UsageError(f"{target!r} is neither a config file nor a plugin "
                             f"(plugins: {known}){hint}")
        if found.error:
            raise plugins.PluginError(found)
        options = plugins.parse_options(found.plugin, rest)
        return f"plugin {target}", plugins.loader(found.plugin, options, os.getcwd())
    if rest:
        # Parse them with the run command itself, so that every run option
        # works after CONFIG too; "--" keeps TARGET the positional.
        args.rest = None
        args.run_parser.parse_args([*rest, "--", target], namespace=args)
        if args.rest:  # rest held a positional: it became CONFIG, TARGET went to rest
            extra = args.config if args.config != target else args.rest[0]
            args.run_parser.error(f"unexpected argument {extra!r} after {target}")
    return target, None


def run_master_command(args):
    source, loader = _run_target(args)
    from corral.serve import run_master  # the heavy side, only here

    def absolute(path):
        return None if path is None else os.path.abspath(path)

    return run_master(
        source,
        **({"loader": loader} if loader else {}),
        socket=absolute(getattr(args, "socket", None)),
        logfile=absolute(args.logfile),
        log_dir=absolute(args.log_dir),
        daemon=args.daemon,
        pidfile=absolute(args.pidfile),
        uid=args.uid,
        gid=args.gid,
        umask=args.umask,
        rundir=absolute(args.rundir),
    )


# -- entry point -------------------------------------------------------------------


def _error(message, prefix="corral: error: "):
    text = " ".join(str(message).split()) if "\n" in str(message) else str(message)
    print(prefix + text, file=sys.stderr, flush=True)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        _error("a command is required (try: corral --help)")
        return EXIT_USAGE
    try:
        sys.stdout.reconfigure(errors="replace")
    except (AttributeError, ValueError):
        pass
    out = Output(sys.stdout)
    try:
        if args.command == "run":
            return run_master_command(args)
        if args.command == "plugins":
            return cmd_plugins(args, out)
        return run_client(args, out)
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
        _error(exc)
        return EXIT_NO_MASTER
    except UsageError as exc:
        _error(exc)
        return EXIT_USAGE
    except ControlError as exc:
        _error(exc.message or exc.code)
        return EXIT_FAILED
    except CorralError as exc:
        detail = getattr(exc, "detail", None)
        if detail is not None:
            sys.stderr.write(detail if detail.endswith("\n") else detail + "\n")
        _error(exc)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
