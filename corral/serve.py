"""`corral run`: wire the master, the API and its frontends, and run until done.

The order: load the config (its errors print as usual), look up --uid and
--gid, set the umask, detach (-d), start the undertaker and become a
subreaper (reaper.py: no orphans, however the master dies), lock the
pidfile, bind the control socket, drop privileges, open the logs, reap
adopted orphans on SIGCHLD, start. The control socket is bound
before anything is spawned, so that a second master on the same socket is
refused before it starts a single worker. The OS steps are in daemon.py.

An image exec'd by `corral upgrade` (upgrade.py, resume.py) takes another
way after the config: it checks the snapshot it was given, keeps what the
process already has (the detach, the undertaker, the pidfile's lock, the
dropped privileges, the control socket) and takes the workers over instead
of starting them; if it fails before that is done, it execs the old image.
"""

import asyncio
import dataclasses
import os
import signal
import sys

from corral import config as config_module
from corral import libc, socketpath
from corral import httpspec
from corral.api import Operations
from corral.errors import EXIT_OK, CorralError
from corral.frontends import signals
from corral.frontends.control import ControlServer
from corral.supervisor import daemon as daemon_module
from corral.supervisor import cgroups, goals, reaper, resume, sdnotify, upgrade
from corral.supervisor import reload as reload_module
from corral.supervisor.master import Master


@dataclasses.dataclass
class Run:
    """What `corral upgrade` needs of this run besides the master (upgrade.py)."""

    argv: list  # the `corral` arguments this master was started with
    launch_cwd: str  # where they were given (relative paths in them)
    image: int = 0  # execs since the first start (each upgrade adds one)
    undertaker: int = None
    pidfile: object = None  # daemon.Pidfile
    control: object = None  # the ControlServer
    upgrade_error: str = None  # why the last upgrade fell back
    http_token: str = None  # the dashboard's, kept across an upgrade
    cgroups: object = None  # cgroups.Subtree: each instance in a cgroup of its own
    containment: str = ""  # which, in words, for the log and `corral version`


def _containment(run, settings, owner):
    """Cgroups where the master may make them (supervisor/cgroups.py), else the marker."""
    if owner is not None:
        subtree, why = None, "the master drops privileges (--user): its cgroups would not be its own"
    else:
        subtree, why = cgroups.detect(reaper.marker(), settings.cgroups)
    run.cgroups = subtree
    run.containment = f"cgroup v2, {subtree.root}" if subtree is not None else \
        f"the environment marker (no cgroups: {why})"


def run_master(config_path, socket=None, logfile=None, log_dir=None, loader=None, *,
               daemon=False, pidfile=None, uid=None, gid=None, umask=None, rundir=None,
               reset_state=False, http=None):
    """Return the exit code. Raises ConfigError (nothing started) or
    CorralError (socket in use, pidfile locked, unknown user, an OS step).

    loader(config_path) makes the Config, at start and on every reload:
    config.load by default; a plugin's (corral.plugins.loader) otherwise.
    With daemon, the launching process returns 0 once the daemon answers on
    its socket and raises the daemon's error if it could not start.
    """
    carried = resume.incoming()  # exec'd by `corral upgrade`: the old image's snapshot
    launch_cwd = os.getcwd()
    try:
        config, as_loaded = _configure(config_path, socket, logfile, log_dir, loader, pidfile, http)
        if carried is not None:
            resume.check(config, carried)  # before any carried fd is touched
    except BaseException as exc:
        if carried is not None:
            resume.fall_back(carried, exc)  # returns only for the dry run or a failed fallback
        raise
    loader = loader or config_module.load
    if carried is not None:
        if carried.dry_run:
            return EXIT_OK
        return _resume(config, loader, carried, as_loaded)
    settings = config.master
    owner = daemon_module.find_owner(uid, gid)
    daemon_module.set_umask(umask)
    announce = None
    if daemon:
        announce = daemon_module.detach(os.path.abspath(rundir or "/"))
        if announce is None:
            return EXIT_OK  # the launcher: the daemon said it is up
    elif rundir:
        daemon_module.change_directory(rundir)
    run = Run(argv=sys.argv[1:], launch_cwd=launch_cwd)
    try:
        _containment(run, settings, owner)
        # before the pidfile, the socket, any worker
        run.undertaker = reaper.protect_master(run.cgroups.root if run.cgroups else None)
        lock = daemon_module.lock_pidfile(settings.pidfile) if settings.pidfile else None
        run.pidfile = lock
        try:
            return asyncio.run(_main(config, loader, run, owner=owner, announce=announce,
                                     reset_state=reset_state, as_loaded=as_loaded))
        finally:
            daemon_module.release_pidfile(lock)
    except BaseException as exc:
        if announce is not None:
            announce.failed(exc)  # no-op once it said "ok"
        raise


def _resume(config, loader, carried, as_loaded):
    """The rest of run_master for an image exec'd by `corral upgrade`: the
    old one detached, started the undertaker, locked the pidfile and
    dropped privileges already; the same process keeps all of that."""
    os.chdir(carried.cwd)
    reaper.adopt_marker(carried.marker)  # the undertaker knows this one
    libc.prctl(libc.PR_SET_CHILD_SUBREAPER, 1)  # kept across exec; cheap to be sure
    pidfile = carried.pidfile
    lock = None if pidfile is None else daemon_module.Pidfile(pidfile["path"], pidfile["fd"])
    run = Run(argv=sys.argv[1:], launch_cwd=carried.launch_cwd, image=carried.image,
              undertaker=carried.undertaker, pidfile=lock, upgrade_error=carried.error)
    _containment(run, config.master, None)  # the same marker: the same cgroups, found again
    try:
        return asyncio.run(_main(config, loader, run, carried=carried, as_loaded=as_loaded))
    finally:
        daemon_module.release_pidfile(lock)


def _configure(config_path, socket, logfile, log_dir, loader, pidfile, http):
    """The Config, with the command line's settings and every path absolute,
    and the MasterSpec as the file gave it (what a reload compares with)."""
    plugin = loader is not None
    loader = loader or config_module.load
    config = loader(config_path)
    settings = as_loaded = config.master
    if socket is None:
        socket = _default_socket(settings.socket, None if plugin else config.path)
    settings = dataclasses.replace(  # absolute before any chdir (--rundir, -d)
        settings,
        socket=os.path.abspath(socket),
        logfile=_absolute(logfile or settings.logfile),
        log_dir=_absolute(log_dir or settings.log_dir),
        pidfile=_absolute(pidfile or settings.pidfile),
        http=http or settings.http,
    )
    if http:  # --http: the checks of the [corral] key
        try:
            refused = httpspec.refusal(http, settings.http_auth)
        except ValueError as exc:
            raise CorralError(f"--http {http}: {exc}") from None
        if refused:
            raise CorralError(f"--http: {refused}")
    return dataclasses.replace(config, master=settings), as_loaded


def _default_socket(setting, config_path):
    """The config's socket, or the default for its file (socketpath.py); a
    plugin has no file: its default is ./corral.sock."""
    if config_path is None:
        return os.path.abspath(setting)
    return socketpath.of_config(setting, config_path)[0]


def xmlrpc_settings(master):
    """[(address, username, password)] the XML-RPC frontend listens on:
    [corral]'s xmlrpc keys (one pair for every address), or a
    supervisord.conf's [unix_http_server] and [inet_http_server], each with
    its own section's pair, as supervisord checks them
    (loaders/supervisord/http.py's XmlRpc)."""
    value = master.xmlrpc
    if not value:
        return []
    if isinstance(value, (tuple, list)):
        return [(address, master.xmlrpc_username, master.xmlrpc_password) for address in value]
    listeners = []
    if value.unix is not None:
        listeners.append((f"unix://{value.unix.path}", value.unix.username, value.unix.password))
    if value.inet is not None:
        listeners.append((f"tcp://{value.inet.host}:{value.inet.port}", value.inet.username,
                          value.inet.password))
    return listeners


def console_copy(master, tty):
    """Whether the foreground master copies the merged log to its stdout.

    On a terminal, yes: someone is watching. Piped or in a file (systemd,
    a container runtime, `> out.log`) and with a logfile or log_dir that
    holds the same lines already, no: a second copy of every line cost as
    much master CPU as the file itself (docs/benchmarks.md), for a stream
    nobody reads twice. `console = "always"` or `"never"` decides instead."""
    if master.console != "auto":
        return master.console == "always"
    return tty or not (master.logfile or master.log_dir)


def _absolute(path):
    return None if path is None else os.path.abspath(path)


async def _main(config, loader, run, owner=None, announce=None, reset_state=False,
                carried=None, as_loaded=None):
    """Supervise until shutdown. announce: the daemon's start-up pipe, or None
    in the foreground (then the console is our stdout). carried: the
    snapshot of the image before this one (upgrade.py), or None."""
    loop = asyncio.get_running_loop()
    if carried is None:
        console = 1 if announce is None and console_copy(config.master, os.isatty(1)) else None
        color = console is not None and os.isatty(1) and "NO_COLOR" not in os.environ
    else:
        console, color = carried.console, carried.color
    master = Master(config, console=console, color=color, loader=loader, as_loaded=as_loaded)
    master.spawner.cgroups, master.containment = run.cgroups, run.containment
    master.notifier = sdnotify.Notifier.from_environment()  # before any worker forks
    master.upgrader = upgrade.Upgrader(master, run)
    ops = Operations(master)
    control = run.control = ControlServer(ops, config.master.socket, master.log)
    await control.start(None if carried is None else carried.control)
    # -c CONFIG finds a master listening away from its default place (socketpath.py).
    pointer = socketpath.point_beside(config.path, config.master.socket) \
        if os.path.isfile(config.path) else None
    web = xmlrpc = None
    try:
        # The listeners' modules load only when configured: without them a
        # master holds ~1.6 MB less (http.client, xmlrpc).
        if config.master.http:  # listens once the logs are open, before any worker
            from corral.frontends.http import HttpServer

            token = config.master.http_token or (carried.http_token if carried else None)
            web = HttpServer(ops, config.master.http, master.log, auth=config.master.http_auth,
                             token=token, control_socket=config.master.socket)
            run.http_token = web.token
        listeners = xmlrpc_settings(config.master)
        if listeners:  # supervisord's interface (docs/xmlrpc.md)
            from corral.frontends.xmlrpc import XMLRPCServer

            xmlrpc = XMLRPCServer(ops, listeners, master.log)
            await xmlrpc.start()
            if owner is not None:
                xmlrpc.hand_over(owner.uid, owner.gid)
        daemon_module.drop_privileges(owner, config.master.socket)  # owner None on resume
        master.attach_loop(loop)  # after the drop: log files belong to the new owner
        if carried is not None:  # before the SIGCHLD sweep: it must know these children
            resume.resume(master, carried)
        if web is not None:
            await web.start()
        if announce is not None and config.master.logfile and master.loghub.errors:
            # A daemon's only output is its log file.
            raise CorralError(f"cannot open the logfile {config.master.logfile}: "
                              + "; ".join(master.loghub.errors))
        if run.pidfile is not None and run.pidfile.notice:
            master.log(run.pidfile.notice)

        taken = signals.install(loop, ops)
        reaping = reaper.Reaper(loop, master.spawner.owns, log=master.log)
        reaping.install()  # SIGCHLD: reap the orphans we adopt, never a worker
        reaper.share_scans(loop)  # one /proc pass per loop iteration for families
        try:
            # Plain words first; the helper's name is what `ps` shows (corral-undertak).
            master.log(f"master pid {os.getpid()}, control socket {config.master.socket}"
                       + (f"; if the master dies, a watcher process stops every worker "
                          f"(undertaker pid {run.undertaker})" if run.undertaker is not None else ""))
            master.log(f"containment: {run.containment}")
            reload_module.say_load_notes(master, config.services)
            # after the logs open: a goals file that cannot be read is said there
            master.goals = goals.GoalFile(goals.path_for(config.master.socket), master.log,
                                          reset=reset_state)
            if carried is None:
                master.start_autostart()
            else:
                os.close(carried.fd)  # committed: this image supervises
                carried = None
                signal.pthread_sigmask(signal.SIG_UNBLOCK, upgrade.HELD_SIGNALS)
            master.notifier.watch(master)  # READY=1 once start-up settles
            if announce is not None:
                announce.ok()
            code = await master.done
        finally:
            reaping.uninstall()
            signals.uninstall(loop, taken)
    except BaseException as exc:
        if carried is not None:  # failed before it took over: the old image, again
            resume.fall_back(carried, exc)
        raise
    finally:
        if web is not None:
            await web.close()
        socketpath.remove_pointer(pointer, config.master.socket)
        if xmlrpc is not None:
            await xmlrpc.close()
        await control.close()
        master.notifier.close()
        master.close()  # its timers, the commands' NOTIFY_SOCKET and directory
        if run.cgroups is not None:  # every worker is gone: their cgroups go too
            run.cgroups.remove()
        if master.loghub is not None:
            master.loghub.close()
    return code
