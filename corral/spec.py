"""Frozen settings of a service and of the master, named as in TOML.

config.py builds these from a .toml or .py file after checking every value;
the rest of corral only reads them. Two specs compare equal when a reload
should leave the service untouched.
"""

import signal
from dataclasses import dataclass, field, fields, replace

from corral import kinds

RESTART_POLICIES = ("always", "on-failure", "never")
# The most instances of one service, in the config (numprocs) or by `corral
# scale`: each one is a process with 3 to 5 fds in the master (log pipes,
# pidfd, a worker's notify pipe or a command's stdin pipe).
MAX_NUMPROCS = 256

# The keys a service may set, in TOML and in Service.supervise(), with their
# defaults. `command`/`service`/`args` say what runs; the rest how.
SERVICE_DEFAULTS = {
    "restart": "always",
    # The exit codes that count as a success: restart = "on-failure" leaves an
    # instance that exits with one of them EXITED (supervisord's exitcodes).
    "exit_codes": (0,),
    "after": (),
    # Services this one cannot run without (also started `after`): when one of
    # them stops or ends FATAL/EXITED, this one stops and waits for it
    # (core/step.py); systemd's Requires=+After=, BindsTo= in spirit.
    "requires": (),
    "numprocs": 1,
    # Commands only: listening sockets the master binds and passes with
    # systemd's socket activation (supervisor/sockets.py), normalised URLs.
    "sockets": (),
    # Commands only: its fd 0. "null": /dev/null; "pipe": a pipe whose write
    # end the master holds, for supervisord's sendProcessStdin (Operations.
    # send_stdin). A supervisord.conf [program:x] gets "pipe", as there.
    "stdin": "null",
    "stop_signal": signal.SIGTERM,
    "stop_timeout": 10.0,
    "env": (),
    "cwd": None,
    "autostart": True,
    # Who the worker runs as (corral/privileges.py): names or ids in the
    # config, stored as uid/gid ints; None keeps the master's. umask: None
    # inherits the master's.
    "user": None,
    "group": None,
    "umask": None,
    # A failed start (an exit before it was RUNNING for backoff_reset
    # seconds) is backed off: backoff_initial * backoff_factor ** n (n =
    # failed starts since the last good run), at most backoff_max, +-
    # backoff_jitter: 0.1, 0.2, 0.4, 0.8, 1.6 s, then FATAL by max_restarts
    # about 3 s after a crash loop began (systemd: RestartSec=100ms, 5
    # starts in 10 s). An exit after a run past that start window restarts
    # at once and uncounted (supervisord, once past startsecs). docs/config.md.
    "backoff_initial": 0.1,
    "backoff_factor": 2.0,
    "backoff_max": 30.0,
    "backoff_jitter": 0.1,
    # The start window's floor: RUNNING and up this long, a run was good.
    "backoff_reset": 1.0,
    # More than max_restarts restarts within restart_window seconds: FATAL
    # (systemd's StartLimitBurst=5 / StartLimitIntervalSec=10).
    "max_restarts": 5,
    "restart_window": 10.0,
    # This service's file in log_dir; None: the [corral] values.
    "log_max_bytes": None,
    "log_backups": None,
    # A healthspec.Health probed while RUNNING, and a limit in bytes on the
    # RSS of the worker's process tree (supervisor/health.py); None: off.
    "health": None,
    "max_memory": None,
    # When STARTING becomes RUNNING (supervisor/readiness.py): None, or
    # ("notify",), ("tcp", Target), ("http", Target), ("seconds", n) (probes.py).
    # Not ready start_timeout s after the spawn (0: no limit): a failed
    # start. watchdog: no WATCHDOG=1 for that many s while RUNNING: killed.
    "ready": None,
    # How long a process must stay up to count as started (supervisord's
    # startsecs): written as its own key, kept as ready = ("seconds", n), or
    # None for 0 (RUNNING at spawn). Not given, and no `ready`: the kind's
    # (kinds.py: 1 s for a command, none for a Python tree, whose READY=1
    # says when). settings.supervision() folds it into `ready`.
    "start_seconds": None,
    "start_timeout": 60.0,
    "watchdog": None,
    # A Python worker's asyncio task that ends in an exception nobody awaits:
    # "log" it and go on (the default: one failed background task is not a
    # failed service, and the traceback is in the log), or "restart": log it,
    # stop the tree and exit 70, so the restart policy restarts the worker.
    "task_crash": "log",
}

MASTER_DEFAULTS = {
    "socket": "corral.sock",
    "logfile": None,
    "log_dir": None,
    "pidfile": None,  # locked for the master's life (supervisor/daemon.py)
    # Log files rotate past log_max_bytes (0: never), keeping log_backups old ones.
    "log_max_bytes": 50 * 1024 * 1024,
    "log_backups": 5,
    # The foreground master's copy of the merged log on its stdout: "auto"
    # (on a terminal, or when no logfile or log_dir holds the log already),
    # "always" (a container runtime or journald reads stdout) or "never".
    "console": "auto",
    # Each instance in a cgroup v2 of its own where the master may make them
    # (supervisor/cgroups.py): "auto", or "off" for the environment marker alone.
    "cgroups": "auto",
    # What a FATAL service (or restart group) does to the master: "stay" (the
    # others go on) or "shutdown" (stop everything, exit 1: for containers).
    "on_fatal": "stay",
    # The HTTP listener (frontends/http.py, httpspec.py): off unless an address.
    "http": None,
    "http_auth": "token",
    "http_token": None,
    # supervisord's XML-RPC (frontends/xmlrpc.py): "unix://PATH" or
    # "HOST:PORT" addresses, basic auth when a username is set.
    "xmlrpc": None,
    "xmlrpc_username": None,
    "xmlrpc_password": None,
}

STRATEGIES = ("one_for_one", "one_for_all", "rest_for_one")  # Erlang/OTP's
GROUP_DEFAULTS = {"strategy": "one_for_one", "max_restarts": 5, "restart_window": 10.0}


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    # What runs: exactly one of command (exec'd) and a Python tree, given
    # either as `factory` ("module:callable", TOML `service`) or as `tree`.
    command: tuple = None
    factory: str = None
    args: tuple = ()  # sorted (key, value) pairs for the factory
    tree: object = field(default=None, compare=False, repr=False)
    # Stands for `tree` in comparisons: equal fingerprints mean a reload
    # leaves the worker alone.
    fingerprint: object = None
    source: str = None  # the config file it came from, for messages
    # What of its Python code a reload cannot follow (usercode.Code.unfollowed):
    # said at each load, never compared.
    unfollowed: tuple = field(default=(), compare=False)
    code_files: tuple = field(default=(), compare=False)  # usercode.Code.files
    restart: str = SERVICE_DEFAULTS["restart"]
    exit_codes: tuple = SERVICE_DEFAULTS["exit_codes"]
    after: tuple = ()
    # supervisord's priority layers: started after these when they start in
    # the same request (boot, `start all`) and stopped before them, as
    # systemd's After=; never pulled in by a start, nor waited for otherwise.
    order_after: tuple = ()
    requires: tuple = SERVICE_DEFAULTS["requires"]
    numprocs: int = 1
    sockets: tuple = ()  # "tcp://host:port", "udp://...", "unix://path", each "#name" maybe
    stdin: str = SERVICE_DEFAULTS["stdin"]  # "null" or "pipe" (commands only)
    stop_signal: int = SERVICE_DEFAULTS["stop_signal"]
    stop_timeout: float = SERVICE_DEFAULTS["stop_timeout"]
    env: tuple = ()  # sorted (name, value) pairs added to the environment
    cwd: str = None
    autostart: bool = True
    user: int = None  # uid
    group: int = None  # gid; the user's primary group when only user is given
    umask: int = None
    backoff_initial: float = SERVICE_DEFAULTS["backoff_initial"]
    backoff_factor: float = SERVICE_DEFAULTS["backoff_factor"]
    backoff_max: float = SERVICE_DEFAULTS["backoff_max"]
    backoff_jitter: float = SERVICE_DEFAULTS["backoff_jitter"]
    backoff_reset: float = SERVICE_DEFAULTS["backoff_reset"]
    max_restarts: int = SERVICE_DEFAULTS["max_restarts"]
    restart_window: float = SERVICE_DEFAULTS["restart_window"]
    # Not compared: a reload applies new log limits without a restart.
    log_max_bytes: int = field(default=None, compare=False)
    log_backups: int = field(default=None, compare=False)
    health: object = None  # healthspec.Health
    max_memory: int = None  # bytes
    ready: tuple = None  # see SERVICE_DEFAULTS
    start_timeout: float = SERVICE_DEFAULTS["start_timeout"]
    watchdog: float = None  # seconds
    task_crash: str = SERVICE_DEFAULTS["task_crash"]
    # Raw per-stream files, as supervisord writes stdout_logfile and
    # stderr_logfile (supervisord.conf only): logspec.StreamFile values, each
    # for "out" or "err"; both streams may name the same file
    # (redirect_stderr). Not compared: a reload applies them as log limits.
    stream_files: tuple = field(default=(), compare=False)
    # What kind of service this is (corral/kinds.py): how it spawns, binds,
    # becomes ready. None: a Command if `command` is given, else a PythonTree;
    # a loader of another kind (a Twisted .tac) gives its own.
    kind: object = None

    def __post_init__(self):
        if self.kind is None:
            kind = kinds.COMMAND if self.command is not None else kinds.PYTHON_TREE
            object.__setattr__(self, "kind", kind)

    @property
    def start_seconds(self):
        """How long it must stay up to count as started (0: RUNNING at spawn
        or once `ready` says so)."""
        return self.ready[1] if self.ready is not None and self.ready[0] == "seconds" else 0.0

    def instance_names(self):
        if self.numprocs == 1:
            return [self.name]
        return [f"{self.name}:{i}" for i in range(self.numprocs)]


@dataclass(frozen=True)
class MasterSpec:
    socket: str = MASTER_DEFAULTS["socket"]
    logfile: str = None
    log_dir: str = None
    pidfile: str = None
    on_fatal: str = MASTER_DEFAULTS["on_fatal"]
    log_max_bytes: int = MASTER_DEFAULTS["log_max_bytes"]
    log_backups: int = MASTER_DEFAULTS["log_backups"]
    console: str = MASTER_DEFAULTS["console"]
    cgroups: str = MASTER_DEFAULTS["cgroups"]
    # supervisord.conf's [unix_http_server], [inet_http_server], [supervisorctl]
    # and groups, for an XML-RPC frontend (loaders/supervisord/http.py), or None.
    # From TOML: a tuple of addresses "unix:///abs/path", "tcp://host:port".
    xmlrpc: object = None
    http: str = None  # "127.0.0.1:9001" or "unix:///path"
    http_auth: str = MASTER_DEFAULTS["http_auth"]
    http_token: str = field(default=None, repr=False)
    xmlrpc_username: str = None  # TOML's, for every address in a tuple xmlrpc
    xmlrpc_password: str = None  # or "{SHA}" + hex SHA-1, as supervisord takes

    def reloaded(self, new):
        """These settings after a reload to new's: the master's own (socket,
        logs, listeners) stay as it started, but a supervisord.conf's groups
        describe its services, so they follow the file (xmlrpc.groups)."""
        if not (hasattr(self.xmlrpc, "groups") and hasattr(new.xmlrpc, "groups")):
            return self
        return replace(self, xmlrpc=replace(self.xmlrpc, groups=new.xmlrpc.groups,
                                            priorities=new.xmlrpc.priorities))


@dataclass(frozen=True)
class GroupSpec:
    """[groups.NAME]: services restarted together by an OTP strategy."""

    name: str
    services: tuple
    strategy: str = GROUP_DEFAULTS["strategy"]
    max_restarts: int = GROUP_DEFAULTS["max_restarts"]
    restart_window: float = GROUP_DEFAULTS["restart_window"]


@dataclass(frozen=True)
class Config:
    path: str
    master: MasterSpec
    services: tuple  # ServiceSpec, in the file's order
    groups: tuple = ()  # GroupSpec


def master_changes(old, new):
    """The [corral] keys (MasterSpec fields) whose values differ, in field order."""
    return [f.name for f in fields(MasterSpec) if getattr(old, f.name) != getattr(new, f.name)]


def rescaled(old, new):
    """True when new differs from old in numprocs alone: a reload scales it
    (core/scale.py) instead of restarting it."""
    return old.numprocs != new.numprocs and replace(old, numprocs=new.numprocs) == new


def diff(old, new):
    """Compare two service lists by name: {"added", "removed", "changed",
    "scaled" (numprocs alone changed), "unchanged"}, names in order."""
    before = {spec.name: spec for spec in old}
    after = {spec.name: spec for spec in new}
    common = [name for name in after if name in before]
    return {
        "added": [name for name in after if name not in before],
        "removed": [name for name in before if name not in after],
        "changed": [name for name in common if after[name] != before[name]
                    and not rescaled(before[name], after[name])],
        "scaled": [name for name in common if rescaled(before[name], after[name])],
        "unchanged": [name for name in common if after[name] == before[name]],
    }
