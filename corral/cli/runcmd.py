"""`corral run` (the master) and `corral plugins` (what `run NAME` can run).

The master side (asyncio, multiprocess, corral.supervisor, corral.config)
is imported here only once `run` was asked for, so that no other command
pays for it.
"""

import argparse
import os
import sys

from corral.cli import render
from corral.cli.discovery import UsageError
from corral.errors import EXIT_OK, CorralError


def umask(text):
    """An octal umask: 022, 0022 or 0o022."""
    try:
        value = int(text, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"not an octal umask (like 022): {text!r}")
    return value


def add_run(subcommands):
    text = "run the master (in the foreground unless -d)"
    run = subcommands.add_parser("run", help=text, description=text)
    run.add_argument("config", metavar="CONFIG|PLUGIN",
                     help="app.py, app.tac or corral.toml, or the name of a plugin (corral plugins)")
    # After a plugin's name, everything is the plugin's (corral run web --help);
    # after a config file, the run options below (see _run_target).
    run.add_argument("rest", nargs=argparse.REMAINDER, metavar="...",
                     help="a plugin's own options; they go after its name")
    run.set_defaults(run_parser=run, handler=run_master_command, client=False)
    run.add_argument("--socket", metavar="PATH", default=argparse.SUPPRESS,
                     help="the control socket to listen on (default: beside the config, see docs/cli.md)")
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
    run.add_argument("--umask", metavar="MASK", type=umask, help="the master's umask, octal (022)")
    run.add_argument("--rundir", metavar="DIR", help="change to this folder (with -d, default /)")
    run.add_argument("--reset-state", action="store_true", default=False,
                     help="forget the starts and stops operators gave the last master "
                          "(SOCKET.goals): start what the config says")
    run.add_argument("--http", metavar="ADDR",
                     help='serve the dashboard and /metrics ("127.0.0.1:9001", "unix:///path")')


def add(subcommands):
    text = "list the plugins that `corral run NAME` can run"
    plugins = subcommands.add_parser("plugins", help=text, description=text)
    plugins.add_argument("--json", action="store_true", default=False, help="print JSON for tools")
    plugins.set_defaults(handler=list_plugins, client=False)


def list_plugins(args, out):
    """List the plugins (no master needed); a broken one is listed with its
    error. With Twisted installed, twistd's plugins follow (from a probe:
    their modules may install a reactor); if they cannot be listed, corral's
    still are, and the error is said."""
    from corral import plugins
    from corral.loaders import tac

    found = plugins.discover()
    try:
        twistd, trouble = tac.plugin_list(os.getcwd()), None
    except CorralError as exc:
        twistd, trouble = [], exc
    if args.json:
        out.line(render.to_json(
            [{"name": f.name, "kind": "corral", "description": f.description, "error": f.error}
             for f in found]
            + [{"name": t["name"], "kind": "twistd", "description": t["description"], "error": None}
               for t in twistd]))
    else:
        out.line(plugins.listing(found, twistd))
    if trouble is not None:
        sys.stderr.write(f"corral: cannot list twistd's plugins: {trouble}\n")
    return EXIT_OK


def looks_like_path(target):
    return os.sep in target or target.endswith((".toml", ".py", ".tac", ".conf", ".ini"))


def _run_target(args):
    """(source, loader) for run_master: a config file, or a plugin (twistd's NAME).

    `corral run [run options] TARGET [...]`: when TARGET is not a file and
    names a plugin, what follows it is the plugin's options, parsed here
    (--help exits here); loader makes its service. For a config file, what
    follows it is more run options (`corral run app.toml --socket S`),
    parsed here into args; loader is None (config.load).
    """
    target, rest = args.config, args.rest
    if not os.path.isfile(target) and not looks_like_path(target):
        from corral import plugins

        found = plugins.find(target)
        if found is None:
            return f"plugin {target}", _twistd_plugin(target, rest)
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


def _twistd_plugin(target, rest):
    """The loader of a twistd plugin (IServiceMaker) named target: its
    options are parsed, and its service made, in the probe (loaders/tac.py);
    --help and a usage error print what twistd prints and exit."""
    from corral.loaders import plugin, tac

    folder = os.getcwd()
    try:
        config = plugin.load_twisted(target, rest, folder)
    except plugin.NotAPlugin as exc:
        near = [target + ext for ext in (".py", ".toml", ".tac") if os.path.isfile(target + ext)]
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise UsageError(f"{target!r} {exc.message}{hint}") from None
    except tac.PluginOptionsDone as done:
        (sys.stdout if done.code == 0 else sys.stderr).write(done.text)
        raise SystemExit(done.code) from None
    return tac.plugin_loader(target, rest, folder, first=config)


def check_platform(platform=None):
    """The master needs Linux 5.3 or later (README, "Platforms"): say so in one
    line instead of failing half-way with an AttributeError."""
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        raise CorralError(f"corral run needs Linux (5.3 or later: pidfd_open, prctl, /proc); "
                          f"this is {platform}. The client commands work anywhere.")
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError as exc:
        raise CorralError(f"corral run needs Linux 5.3 or later (pidfd_open: {exc.strerror}); "
                          f"this kernel is {os.uname().release}") from None


def run_master_command(args, out):
    check_platform()
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
        reset_state=args.reset_state,
        **({"http": args.http} if args.http else {}),  # given only when asked for
    )
