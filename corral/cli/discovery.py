"""Find the master's control socket: the places to try, then the first that answers.

The order (docs/cli.md, "Finding the socket"):
1. --socket PATH;
2. $CORRAL_SOCKET, when not empty;
3. -c CONFIG: a .toml's `[corral] socket` (relative to the config's
   folder), else the default places of that config (corral/socketpath.py:
   beside it, then under $XDG_RUNTIME_DIR), which `corral run CONFIG` used
   from whatever folder it ran in;
4. none of these: ./corral.sock, then the default places of each config in
   the current folder (`corral run app.py` here, `corral status` here).

When nothing answers, the error lists every place tried. A .py config is
never run by the client (it is code, and heavy): a master listening away
from the default place leaves a symlink there (socketpath.point_beside).
"""

import os

from corral import socketpath
from corral.cli.client import Client, NoMaster
from corral.errors import CorralError

SOCKET_ENV = "CORRAL_SOCKET"
DEFAULT_SOCKET = "corral.sock"  # where a master started on corral.toml listens, or a plugin
CONFIG_SUFFIXES = (".toml", ".py", ".tac")


class UsageError(CorralError):
    """A bad command line found after parsing (exit code 2)."""


def places(args, environ=None, cwd=None):
    """Return (paths, how, explicit): where to look, and what said so.

    explicit: the paths were given (1-3), so all are tried in order; else
    they are guesses from the current folder (4).
    """
    environ = os.environ if environ is None else environ
    cwd = os.getcwd() if cwd is None else cwd
    if getattr(args, "socket", None):
        return [os.path.join(cwd, args.socket)], "--socket", True
    if environ.get(SOCKET_ENV):
        return [os.path.join(cwd, environ[SOCKET_ENV])], f"${SOCKET_ENV}", True
    if getattr(args, "config", None):
        config = os.path.join(cwd, args.config)
        return _places_of_config(config, environ), f"config {args.config}", True
    found = [os.path.join(cwd, DEFAULT_SOCKET)]
    try:
        names = sorted(os.listdir(cwd))
    except OSError:
        names = []
    for name in names:
        path = os.path.join(cwd, name)
        if name.endswith(CONFIG_SUFFIXES) and os.path.isfile(path):
            found += [p for p in socketpath.candidates(path, environ) if p not in found]
    return found, "the current folder", False


def _places_of_config(config, environ):
    if not os.path.isfile(config):
        raise UsageError(f"config {config}: no such file")
    if config.endswith(".toml"):
        setting = _toml_socket(config)
        if setting is not None:
            return [os.path.join(os.path.dirname(config), setting)]
    return socketpath.candidates(config, environ)


def _toml_socket(config):
    """[corral] socket of a TOML config, or None; tomllib only when -c names one."""
    import tomllib

    try:
        with open(config, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise CorralError(f"config {config}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CorralError(f"config {config}: {exc}") from None
    settings = data.get("corral", {})
    value = settings.get("socket") if isinstance(settings, dict) else None
    if value is not None and (not isinstance(value, str) or not value):
        raise CorralError(f"config {config}: key 'socket' in [corral] must be a path")
    return value


def connect(args, environ=None, cwd=None):
    """A Client of the first place that answers; NoMaster listing them all.

    Guessed places (no --socket, $CORRAL_SOCKET or -c) that do not exist
    are left out of the error, except ./corral.sock; two masters answering
    from the configs' places is a UsageError: which one was meant is not
    ours to pick.
    """
    paths, how, explicit = places(args, environ, cwd)
    tried, answering = [], []
    for index, path in enumerate(paths):
        if not explicit and index > 0 and not os.path.exists(path):
            continue
        try:
            client = Client(path)
        except NoMaster as exc:
            tried.append((path, exc.reason))
            continue
        if explicit or index == 0:  # ./corral.sock answering wins, as it always has
            return client
        answering.append(client)
    if len(answering) == 1:
        return answering[0]
    if answering:
        found = ", ".join(client.path for client in answering)
        for client in answering:
            client.close()
        raise UsageError(f"masters answer on {found}; say which with -c CONFIG or --socket PATH")
    if len(tried) == 1:
        path, reason = tried[0]
        raise NoMaster(path, f"{reason} (socket from {how})")
    listed = "; ".join(f"{path}: {reason}" for path, reason in tried)
    raise NoMaster(tried[0][0], tried[0][1],
                   f"no master answering (socket from {how}); looked at {listed}")
