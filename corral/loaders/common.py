"""What every loader checks the same way: names, `after`, reading the file.

A loader builds its MasterSpec and ServiceSpecs its own way, then hands them
to finish(), so that every format gets the same name rules, the same
dependency checks and the same messages.
"""

import os
import re
import sys
import traceback

from corral.errors import ConfigError
from corral.order import find_cycle, format_cycle
from corral.settings import unknown
from corral.spec import Config, MasterSpec

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,200}")  # <service>.log must fit a file name
RESERVED_NAMES = ("all", "corral")
WHAT_KEYS = ("command", "service", "args")  # what runs: TOML only
PYTHON_SOCKETS = ("is for commands (socket activation); a Python service binds its own "
                  "(TCPServer, UNIXServer, UDPServer...) and the master holds those")
# The corral package's folder: its frames are cut from the user's tracebacks.
CORRAL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def read(path):
    """The file's bytes, or a ConfigError naming it."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(path, f"cannot read config: {exc.strerror or exc}") from None


def finish(path, master, specs, groups=()):
    """The checked Config: at least one service, every `after` known, no cycle."""
    if not specs:
        raise ConfigError(path, "defines no services")
    check_after(path, specs)
    check_log_paths(path, master or MasterSpec(), specs)
    return Config(path=path, master=master or MasterSpec(), services=tuple(specs),
                  groups=tuple(groups))


def check_log_paths(path, master, specs):
    """The merged logfile is not a file that log_dir fills already (the
    master's own lines would be written twice into it)."""
    if not (master.logfile and master.log_dir):
        return
    taken = {"corral.log": "the master's own lines"}
    taken.update((f"{spec.name}.log", f"service {spec.name!r}'s lines") for spec in specs)
    logfile = os.path.normpath(master.logfile)
    if os.path.dirname(logfile) == os.path.normpath(master.log_dir):
        whose = taken.get(os.path.basename(logfile))
        if whose is not None:
            raise ConfigError(path, f"{master.logfile} is the file in log_dir that holds "
                              f"{whose}: every line would be written there twice; "
                              "give logfile another name or folder", key="logfile")


def check_after(path, specs):
    """Every `after` name exists, and the names form no cycle."""
    names = [spec.name for spec in specs]
    for spec in specs:
        for dep in spec.after:
            if dep not in names:
                raise ConfigError(path, unknown(dep, names, "service") + " in after",
                                  service=spec.name, key="after")
    cycle = find_cycle({spec.name: spec.after for spec in specs})
    if cycle is not None:
        raise ConfigError(path, f"dependency cycle: {format_cycle(cycle)}",
                          service=cycle[0], key="after")


def check_name(path, name, line=None):
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(path, "bad service name: use 1 to 200 letters, digits, '_', '.' and '-'",
                          service=name, line=line)
    if name in RESERVED_NAMES:
        raise ConfigError(path, f"{name!r} is reserved; choose another name", service=name,
                          line=line)


def put_on_path(folder):
    # Left in place on purpose: workers import the user's modules later.
    if not sys.path or sys.path[0] != folder:
        sys.path.insert(0, folder)


def summary(exc):
    first = str(exc).strip().splitlines()[:1]
    return type(exc).__name__ + "".join(f": {line}" for line in first)


def user_tb(exc):
    """The traceback text without corral's (and importlib's) own frames."""
    tb = traceback.TracebackException.from_exception(exc)
    frames = list(tb.stack)
    while frames and (frames[0].filename.startswith(CORRAL_DIR)
                      or frames[0].filename.startswith("<frozen importlib")):
        frames.pop(0)
    tb.stack = traceback.StackSummary.from_list(frames)
    return "".join(tb.format())
