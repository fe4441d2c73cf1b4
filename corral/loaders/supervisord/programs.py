"""[program:x] and [fcgi-program:x] sections -> corral ServiceSpecs, with supervisord's meaning.

One supervisord process is one corral service, named by its process_name
(numprocs = 3 with process_name = %(program_name)s_%(process_num)02d gives
web_00, web_01, web_02), because supervisord expands the command and the
log files per process. Each key maps as the table in docs/supervisord.md
says; every value then goes through settings.supervision(), so it gets
corral's own checks, and a bad one is blamed on the supervisord key and
its line. What a key cannot mean under corral is a note (`corral convert`
prints the notes), never silently a different behaviour.

An [fcgi-program:x] is a program whose `socket` the master binds and holds
across restarts and gives it as its stdin (kinds.FASTCGI), as supervisord
does. A [program:x] gets stdin = "pipe" instead: supervisord gives each one
a stdin pipe that sendProcessStdin writes to. One process only: corral holds sockets per service, and here each
process is a service of its own, so numprocs > 1 would need one socket
shared by several services.
"""

import dataclasses
import os

from corral import kinds, socketspec
from corral.loaders import common
from corral.loaders.supervisord.expand import boolean, environment, expand, int_list, integer
from corral.loaders.toml import command as check_command
from corral.logspec import StreamFile
from corral.settings import Bad, supervision, unknown
from corral.sizes import parse_size
from corral.spec import ServiceSpec

KEYS = (
    "command", "process_name", "numprocs", "numprocs_start", "priority", "autostart",
    "autorestart", "exitcodes", "startsecs", "startretries", "stopsignal", "stopwaitsecs",
    "stopasgroup", "killasgroup", "user", "directory", "umask", "environment",
    "redirect_stderr", "serverurl",
    *(f"{stream}_logfile{part}" for stream in ("stdout", "stderr")
      for part in ("", "_maxbytes", "_backups")),
)
# Known to supervisord, without a corral meaning: accepted, and a note says so.
IGNORED = tuple(f"{stream}_{what}" for stream in ("stdout", "stderr")
                for what in ("capture_maxbytes", "events_enabled", "syslog"))
FCGI_KEYS = ("socket", "socket_backlog", "socket_owner", "socket_mode")
DEFAULT_PRIORITY = 999
# supervisord's defaults for the log files of a program.
DEFAULT_MAXBYTES, DEFAULT_BACKUPS = 50 << 20, 10
CONSOLE = ("/dev/stdout", "/dev/stderr")


class Master:
    """The [supervisord] settings programs inherit (environment, childlogdir...)."""

    def __init__(self, env=None, childlogdir=None, identifier="supervisor", serverurl=None):
        self.env = env or {}
        self.childlogdir = childlogdir
        self.identifier = identifier
        self.serverurl = serverurl  # the SUPERVISOR_SERVER_URL of serverurl = AUTO


def program(section, master, group, notes):
    """[(priority, ServiceSpec)] of one [program:x] or [fcgi-program:x] section."""
    program_name = section.title
    if not program_name:
        raise section.error(f"needs a name: [{section.kind}:NAME]")
    fcgi = section.kind == "fcgi-program"
    keys = KEYS + FCGI_KEYS if fcgi else KEYS
    for key in section.values:
        if key not in keys and key not in IGNORED:
            raise section.error(unknown(key, keys, "key"), key)
    for key in IGNORED:
        if key in section.values:
            notes.append(f"[{section.name}] {key}: not carried over (corral has no "
                         "capture mode, process events or syslog; `corral events` streams "
                         "state changes)")
    if "command" not in section.values:
        raise section.error("needs 'command' (the program to run)")
    names = {"program_name": program_name, "group_name": group}
    numprocs = integer(section, "numprocs", _raw(section, "numprocs", "1"), low=1)
    start = integer(section, "numprocs_start", _raw(section, "numprocs_start", "0"))
    names["numprocs"] = numprocs
    raw_name = _raw(section, "process_name", "%(program_name)s")
    if numprocs > 1 and "%(process_num)" not in raw_name:
        raise section.error("must hold %(process_num)s (or %(process_num)02d) when "
                            "numprocs > 1, so that each process has its own name",
                            "process_name" if "process_name" in section.values else "numprocs")
    priority = integer(section, "priority", _raw(section, "priority", str(DEFAULT_PRIORITY)),
                       low=-(1 << 31))
    found = []
    for num in range(start, start + numprocs):
        names["process_num"] = num
        found.append((priority, _process(section, master, dict(names), raw_name, notes)))
    if fcgi:
        if numprocs > 1:
            raise section.error("numprocs > 1 is not supported: corral gives each process "
                                "its own socket, so they cannot share one; use numprocs = 1 "
                                "with a FastCGI server that runs its own workers",
                                "numprocs")
        url = _fcgi_socket(section, names)
        found = [(p, dataclasses.replace(spec, kind=kinds.FASTCGI, sockets=(url,)))
                 for p, spec in found]
        for key in FCGI_KEYS[1:]:
            if key in section.values:
                notes.append(f"[{section.name}] {key}: not carried over (corral binds the "
                             "socket with its own backlog, mode and owner)")
    return found


def _fcgi_socket(section, names):
    """The socket URL: tcp://HOST:PORT or unix:///PATH, as supervisord takes it."""
    if "socket" not in section.values:
        raise section.error("needs 'socket' (tcp://HOST:PORT or unix:///PATH)")
    text = _value(section, "socket", names)
    if not text.startswith(("tcp://", "unix:///")):
        raise section.error(f"must be tcp://HOST:PORT or unix:///PATH, not {text!r}", "socket")
    try:
        return socketspec.parse(text, os.path.dirname(os.path.abspath(section.path))).url
    except ValueError as exc:
        raise section.error(str(exc), "socket") from None


def _raw(section, key, default):
    value = section.values.get(key)
    return value.text if value is not None else default


def _value(section, key, names, default=None):
    if key not in section.values:
        return default
    return expand(section, key, names)


def _process(section, master, names, raw_name, notes):
    if "process_name" in section.values:
        name = expand(section, "process_name", names)
    else:
        name = raw_name % names
    common.check_name(section.path, name, line=section.values.get("process_name",
                                                                  section).line)
    folder = os.path.dirname(os.path.abspath(section.path))
    table, blame = {}, {}

    def put(key, value, source):
        table[key], blame[key] = value, source

    autorestart = _value(section, "autorestart", names, "unexpected").lower()
    if autorestart == "unexpected":
        put("restart", "on-failure", "autorestart")
    elif autorestart in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        put("restart", "always" if boolean(section, "autorestart", autorestart) else "never",
            "autorestart")
    else:
        raise section.error(f"must be true, false or unexpected, not {autorestart!r}",
                            "autorestart")
    put("exit_codes", int_list(section, "exitcodes", _value(section, "exitcodes", names, "0")),
        "exitcodes")
    startsecs = integer(section, "startsecs", _value(section, "startsecs", names, "1"))
    retries = integer(section, "startretries", _value(section, "startretries", names, "3"))
    put("start_seconds", startsecs, "startsecs")  # the same rule, 0 too
    if startsecs:
        put("start_timeout", 0, "startsecs")  # supervisord waits as long as it says
    # Give up after startretries failed starts in a row: more than that many
    # restarts within the time those starts take.
    put("max_restarts", retries, "startretries")
    put("restart_window", max(10.0, (retries + 1) * (startsecs + 1.0)), "startretries")
    put("stop_signal", _value(section, "stopsignal", names, "TERM"), "stopsignal")
    put("stop_timeout", integer(section, "stopwaitsecs",
                                _value(section, "stopwaitsecs", names, "10")), "stopwaitsecs")
    for key in ("stopasgroup", "killasgroup"):
        if key in section.values and not boolean(section, key, _value(section, key, names)):
            notes.append(f"[{section.name}] {key} = false: corral always signals the "
                         "process group (and every process the program started)")
    put("autostart", boolean(section, "autostart", _value(section, "autostart", names, "true")),
        "autostart")
    for key, corral_key in (("user", "user"), ("directory", "cwd"), ("umask", "umask")):
        if key in section.values:
            put(corral_key, _value(section, key, names), key)
    env = dict(master.env)
    if "environment" in section.values:
        env.update(environment(section, "environment",
                               _value(section, "environment", names)))
    env.update(SUPERVISOR_ENABLED="1", SUPERVISOR_PROCESS_NAME=name,
               SUPERVISOR_GROUP_NAME=names["group_name"])
    serverurl = _value(section, "serverurl", names, "AUTO")
    serverurl = master.serverurl if serverurl == "AUTO" else serverurl
    if serverurl:
        env["SUPERVISOR_SERVER_URL"] = serverurl
    put("env", env, "environment")
    if section.kind == "program":  # an fcgi-program's fd 0 is its socket
        put("stdin", "pipe", "command")  # supervisord's stdin pipe: sendProcessStdin
    try:
        settings = supervision(name, table, folder, kind=kinds.COMMAND)
    except Bad as bad:
        raise section.error(bad.message, blame.get(bad.key)) from None
    try:
        argv = check_command(_value(section, "command", names), settings["cwd"] or folder,
                             settings["env"])
    except Bad as bad:
        raise section.error(bad.message, "command") from None
    files = _stream_files(section, master, names, name, folder)
    return ServiceSpec(name=name, command=argv, source=section.path, stream_files=files,
                       **settings)


def _stream_files(section, master, names, name, folder):
    redirect = boolean(section, "redirect_stderr",
                       _value(section, "redirect_stderr", names, "false"))
    files = []
    for stream, short in (("stdout", "out"), ("stderr", "err")):
        if stream == "stderr" and redirect:
            # stderr goes where stdout goes, as with 2>&1.
            files.extend(StreamFile("err", f.path, f.max_bytes, f.backups) for f in list(files))
            break
        key = f"{stream}_logfile"
        value = _value(section, key, names, "AUTO")
        maxbytes = _value(section, key + "_maxbytes", names, str(DEFAULT_MAXBYTES))
        try:
            maxbytes = parse_size(maxbytes)
        except ValueError as exc:
            raise section.error(str(exc), key + "_maxbytes") from None
        backups = integer(section, key + "_backups",
                          _value(section, key + "_backups", names, str(DEFAULT_BACKUPS)))
        if value.upper() == "NONE" or value in CONSOLE:
            continue  # the console has every line already (timestamped)
        if value.upper() == "AUTO":
            path = os.path.join(master.childlogdir,
                                f"{name}-{stream}---{master.identifier}.log")
        else:
            path = os.path.normpath(os.path.join(folder, os.path.expanduser(value)))
            if not os.path.isdir(os.path.dirname(path)):
                raise section.error(f"the folder of {path!r} does not exist", key)
        files.append(StreamFile(short, path, maxbytes, backups))
    return tuple(files)
