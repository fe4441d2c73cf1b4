"""The supervisord.conf loader: `corral run supervisord.conf`, unchanged.

It claims a .conf or .ini file, or any file whose first section is
[supervisord] or [program:NAME]. ini.py reads the sections with their
lines (following [include]), programs.py maps each [program:x] (and
[fcgi-program:x]) onto corral's model with supervisord's meaning, http.py
checks the sections an
XML-RPC frontend will serve. Sections with no corral counterpart are an
error that says what to use instead. parse() also returns notes: what
loads but means something else under corral (`corral convert` prints them).

Priority gives start layers: a program starts once every autostarted
program of the nearest lower priority (group priority first, as
supervisord orders groups) is RUNNING, and stops before them.
"""

import dataclasses
import os
import tempfile

from corral.errors import ConfigError
from corral.loaders import common
from corral.loaders.supervisord import http, ini, programs
from corral.loaders.supervisord.expand import boolean, environment, expand, integer
from corral.settings import unknown
from corral.sizes import parse_size
from corral.spec import MasterSpec

name = "supervisord"
SUFFIXES = (".conf", ".ini")
SUPERVISORD_KEYS = (
    "logfile", "logfile_maxbytes", "logfile_backups", "loglevel", "pidfile", "umask",
    "nodaemon", "silent", "minfds", "minprocs", "nocleanup", "childlogdir", "user",
    "directory", "strip_ansi", "environment", "identifier",
)
# Instead of these, corral has its own way; the error says which.
UNSUPPORTED = {
    "eventlistener": "corral has no event listeners; follow state changes with "
                     "`corral events -f` (JSON lines) instead",
    "rpcinterface": "corral's API is built in; only [rpcinterface:supervisor] with "
                    "supervisor.rpcinterface:make_main_rpcinterface is accepted",
    "ctlplugin": "supervisorctl plugins are not supported; corral's CLI has its own commands",
}
KNOWN = ("supervisord", "program", "group", "include", "unix_http_server",
         "inet_http_server", "supervisorctl", "fcgi-program", *UNSUPPORTED)
MAIN_RPC = "supervisor.rpcinterface:make_main_rpcinterface"


def claims(path, head):
    if path.endswith(SUFFIXES):
        return True
    first = ini.first_section(head)
    return first is not None and (first == "supervisord" or first.startswith("program:"))


def load(path, argv=()):
    path = os.path.abspath(path)
    master, specs, _notes = parse(path)
    return common.finish(path, master, specs)


def parse(path):
    """(MasterSpec, [ServiceSpec], notes) of the file at path."""
    sections = ini.read(path)
    by_kind = {}
    for section in sections:
        kind = section.kind
        if kind not in KNOWN:
            raise section.error(unknown(kind, KNOWN, "section") + " (supervisord's sections: "
                                + ", ".join(f"[{k}]" for k in KNOWN[:8]) + ")")
        if kind == "rpcinterface" and section.title == "supervisor" and \
                _raw(section, "supervisor.rpcinterface_factory") == MAIN_RPC:
            continue
        if kind in UNSUPPORTED:
            raise section.error(f"not supported: {UNSUPPORTED[kind]}")
        by_kind.setdefault(kind, []).append(section)
    notes = []
    folder = os.path.dirname(path)
    top = (by_kind.get("supervisord") or [None])[0]
    settings, master, xmlrpc = _supervisord(top, notes)
    unix = [http.unix_server(s, folder) for s in by_kind.get("unix_http_server", [])]
    inet = [http.inet_server(s) for s in by_kind.get("inet_http_server", [])]
    for section in by_kind.get("unix_http_server", []):
        notes.extend(f"[unix_http_server] {key}: checked, not applied (the socket keeps mode "
                     "0600 and admits only the master's uid, or root)"
                     for key in ("chmod", "chown") if key in section.values)
    ctl = [http.supervisorctl(s) for s in by_kind.get("supervisorctl", [])]
    if unix:
        master.serverurl = f"unix://{unix[0].path}"
    elif inet:
        master.serverurl = f"http://{inet[0].host or '127.0.0.1'}:{inet[0].port}"
    program_sections = [s for s in sections if s.kind in ("program", "fcgi-program")]
    groups = _groups(by_kind.get("group", []), program_sections)
    processes, group_of = [], {}
    for section in program_sections:
        group, group_priority = groups.get(section.title, (section.title, None))
        for priority, spec in programs.program(section, master, group, notes):
            processes.append(((group_priority if group_priority is not None else priority,
                               priority), spec))
            group_of.setdefault(group, []).append(spec.name)
    seen = {}
    for _, spec in processes:
        if spec.name in seen:
            raise ConfigError(path, f"two processes are named {spec.name!r} (process_name "
                              "must differ between programs)", service=spec.name)
        seen[spec.name] = spec
    specs = _layered(processes)
    group_rows = sorted(((group, min(key[0] for key, spec in processes if spec.name in members),
                          tuple(members)) for group, members in group_of.items()),
                        key=lambda row: row[1])  # start order
    xmlrpc = http.XmlRpc(unix=unix[0] if unix else None, inet=inet[0] if inet else None,
                         ctl=ctl[0] if ctl else None, groups=tuple(group_rows),
                         priorities=tuple((spec.name, key[1]) for key, spec in processes),
                         **xmlrpc)
    return MasterSpec(**settings, xmlrpc=xmlrpc), specs, notes


def _raw(section, key):
    value = section.values.get(key)
    return value.text if value is not None else None


def _supervisord(section, notes):
    """(MasterSpec settings, programs.Master, XmlRpc settings) of [supervisord]."""
    master = programs.Master(childlogdir=tempfile.gettempdir())
    settings, xmlrpc = {}, {}
    if section is None:
        return settings, master, xmlrpc
    for key in section.values:
        if key not in SUPERVISORD_KEYS:
            raise section.error(unknown(key, SUPERVISORD_KEYS, "key"), key)
    folder = os.path.dirname(section.path)

    def value(key):
        return expand(section, key, {}) if key in section.values else None

    def path_of(key):
        text = value(key)
        full = os.path.normpath(os.path.join(folder, os.path.expanduser(text)))
        if not os.path.isdir(os.path.dirname(full)):
            raise section.error(f"the folder of {full!r} does not exist", key)
        return full

    if value("logfile") is not None and value("logfile") not in programs.CONSOLE:
        settings["logfile"] = path_of("logfile")
    for key, field in (("logfile_maxbytes", "log_max_bytes"), ("logfile_backups", "log_backups")):
        if value(key) is not None:
            try:
                settings[field] = parse_size(value(key)) if key.endswith("maxbytes") \
                    else integer(section, key, value(key))
            except ValueError as exc:
                raise section.error(str(exc), key) from None
    if value("pidfile") is not None:
        settings["pidfile"] = path_of("pidfile")
    if value("childlogdir") is not None:
        master.childlogdir = os.path.normpath(os.path.join(folder, value("childlogdir")))
        if not os.path.isdir(master.childlogdir):
            raise section.error(f"{master.childlogdir!r} is not an existing directory",
                                "childlogdir")
    if value("environment") is not None:
        master.env = environment(section, "environment", value("environment"))
    if value("identifier") is not None:
        master.identifier = xmlrpc["identifier"] = value("identifier")
    if value("nodaemon") is not None:
        xmlrpc["nodaemon"] = boolean(section, "nodaemon", value("nodaemon"))
        if not xmlrpc["nodaemon"]:
            notes.append("[supervisord] nodaemon = false: corral runs in the foreground "
                         "unless started with `corral run -d`")
    if value("umask") is not None:
        from corral import privileges

        try:
            xmlrpc["master_umask"] = privileges.parse_umask(value("umask"))
        except ValueError as exc:
            raise section.error(str(exc), "umask") from None
        notes.append("[supervisord] umask: the master's umask is `corral run --umask`")
    if value("user") is not None:
        xmlrpc["master_user"] = value("user")
        notes.append("[supervisord] user: the master's user is `corral run --uid`")
    if value("directory") is not None:
        xmlrpc["master_directory"] = value("directory")
        notes.append("[supervisord] directory: the master's folder is `corral run --rundir`")
    if value("minfds") is not None:
        xmlrpc["minfds"] = integer(section, "minfds", value("minfds"), low=1)
        notes.append("[supervisord] minfds: not applied; raise the limit with ulimit -n")
    for key in ("loglevel", "silent", "minprocs", "nocleanup", "strip_ansi"):
        if key in section.values:
            notes.append(f"[supervisord] {key}: not carried over (corral logs every line, "
                         "timestamped, and keeps its own files)")
    return settings, master, xmlrpc


def _groups(sections, program_sections):
    """program name -> (group name, group priority) from the [group:x] sections."""
    known = {s.title for s in program_sections}
    found = {}
    for section in sections:
        for key in section.values:
            if key not in ("programs", "priority"):
                raise section.error(unknown(key, ("programs", "priority"), "key"), key)
        if not section.title:
            raise section.error("needs a name: [group:NAME]")
        if "programs" not in section.values:
            raise section.error("needs 'programs' (a comma-separated list of [program:x] names)")
        members = [p.strip() for p in expand(section, "programs", {}).split(",") if p.strip()]
        priority = integer(section, "priority", _raw(section, "priority") or "999",
                           low=-(1 << 31))
        for member in members:
            if member not in known:
                raise section.error(unknown(member, known, "program"), "programs")
            if member in found:
                raise section.error(f"program {member!r} is already in group "
                                    f"{found[member][0]!r}", "programs")
            found[member] = (section.title, priority)
    return found


def _layered(processes):
    """The specs in start order, each `order_after` the nearest lower layer that
    autostarts: started after it when both start, as supervisord does, but a
    start by hand does not pull the lower layer in."""
    layers = {}
    for key, spec in processes:
        layers.setdefault(key, []).append(spec)
    ordered, below = [], ()
    for key in sorted(layers):
        here = layers[key]
        if below:
            here = [dataclasses.replace(spec, order_after=below) for spec in here]
        ordered.extend(here)
        starting = tuple(spec.name for spec in here if spec.autostart)
        below = starting or below
    return ordered
