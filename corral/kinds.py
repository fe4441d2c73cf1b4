"""The kinds of service, as objects: what each kind means, in one place.

A service runs a command (exec'd), or a Python tree (forked, run by
corral's asyncio runtime), or a Twisted tree (forked, loaded and run by the
Twisted runtime). Where supervision asks "what kind is this?" it asks the
kind instead: `spec.kind` is one of the objects below.

This half holds the pure facts, so that specs, the restart policy and the
views can use them without the master's machinery: what "ready" means when
`ready` is not set, whether an exit code says "this can never boot", which
readiness variables go into the environment, how the kind reads in status
and tree. The other half, how to spawn one and which sockets the master
binds for it, is supervisor/kinds.py, found by `name`. A new kind is one
class here and one there.
"""

from corral.errors import EXIT_WORKER_BOOT

# The readiness variables a worker may get, and that it never inherits
# from the master (the master's own are systemd's, not the worker's to use).
READINESS_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CORRAL_WATCHDOG_USEC")


class Kind:
    """The facts of one kind of service (the base: a forked Python worker)."""

    name = None  # "command", "python", "twisted": status, tree, supervisor/kinds.py
    # What the start timeout names when the worker's own READY=1 did not come.
    waiting_for = "startService"
    # start_seconds when neither it nor `ready` is set: how long the process
    # must stay up to count as started. A worker says so itself (READY=1).
    start_seconds = 0.0

    def __repr__(self):
        return f"<kind {self.name}>"

    # -- readiness --------------------------------------------------------

    def awaits_ready_message(self, spec):
        """True when STARTING waits for a READY=1 from the worker itself.

        A forked worker always sends one, once startService has finished
        (workers/runtimes/), whatever `ready` adds to that."""
        return True

    def needs_notify_socket(self, spec):
        """True when the master's NOTIFY_SOCKET must exist for this service
        (a forked worker speaks on its own pipe instead)."""
        return False

    def environment(self, spec, notify_address=None):
        """The readiness variables this kind's process gets (READINESS_VARS).

        A forked worker's runtime heartbeats itself: CORRAL_WATCHDOG_USEC."""
        if spec.watchdog:
            return {"CORRAL_WATCHDOG_USEC": _usec(spec.watchdog)}
        return {}

    # -- restarts ---------------------------------------------------------

    def cannot_boot(self, exit):
        """True when exit says the service can never start (so: no retry).

        A worker's runtime exits EXIT_WORKER_BOOT when its tree cannot be
        loaded or started; only a kind whose exit codes corral makes may say so."""
        return exit.code == EXIT_WORKER_BOOT

    # -- views ------------------------------------------------------------

    def what_runs(self, spec):
        """What `corral check` shows it runs: a factory, else the tree's class."""
        return spec.factory or (class_name(spec.tree) if spec.tree is not None else None)

    def sockets(self, spec):
        """Its listening sockets as `corral check` lists them: a tree's servers,
        as their repr names them (TCPServer *:8000)."""
        from corral.services.listening import ListeningService

        from corral.service import walk

        if spec.tree is None:
            return []
        return [repr(node).strip("<>") for node in walk(spec.tree)
                if isinstance(node, ListeningService)]

    def describe(self, spec):
        """How it reads in `corral tree`: kind, class, children."""
        tree = spec.tree
        return {"kind": self.name, "class": class_name(tree) if tree is not None else None,
                "children": subtree(tree)["children"] if tree is not None else []}


class Command(Kind):
    """An exec'd program: RUNNING once it stayed up start_seconds (1 s, as
    supervisord's startsecs: an exec that worked says nothing of a program
    that dies on its first line), unless `ready` says more; its exit codes
    are its own (78 may mean anything)."""

    name = "command"
    waiting_for = "READY=1"
    start_seconds = 1.0

    def awaits_ready_message(self, spec):
        return spec.ready == ("notify",)

    def needs_notify_socket(self, spec):
        return spec.ready == ("notify",) or bool(spec.watchdog)

    def environment(self, spec, notify_address=None):
        """sd_notify's variables, as systemd gives them to a Type=notify unit.
        WATCHDOG_PID is left out (sd_watchdog_enabled() then accepts any
        pid): the environment is made before the fork that gives the pid."""
        if not notify_address or not self.needs_notify_socket(spec):
            return {}
        env = {"NOTIFY_SOCKET": notify_address}
        if spec.watchdog:
            env["WATCHDOG_USEC"] = _usec(spec.watchdog)
        return env

    def cannot_boot(self, exit):
        return False

    def what_runs(self, spec):
        return list(spec.command)

    def sockets(self, spec):
        return list(spec.sockets)

    def describe(self, spec):
        return {"kind": self.name, "class": None, "children": []}


class FastCGICommand(Command):
    """supervisord's [fcgi-program:x]: an exec'd program whose one listening
    socket, held by the master, is its stdin (fd 0), as FastCGI servers take
    it, instead of socket activation's fd 3."""

    name = "fcgi"


class PythonTree(Kind):
    """corral's own service tree, built in the master by the config, run in
    a forked worker by the asyncio runtime."""

    name = "python"


class TwistedTree(Kind):
    """A top-level service of a Twisted application (.tac): the master knows
    it only from a throwaway child's report (corral/loaders/tac.py); the
    forked worker loads the file itself and runs it on Twisted's asyncio
    reactor (workers/runtimes/tx.py)."""

    name = "twisted"

    def what_runs(self, spec):
        return spec.tree.cls

    def sockets(self, spec):
        return [endpoint.url for endpoint in spec.tree.addresses]

    def describe(self, spec):
        tree = spec.tree
        return {"kind": self.name, "class": tree.cls,
                "children": tree.subtree.get("children", [])}


COMMAND = Command()
FASTCGI = FastCGICommand()
PYTHON_TREE = PythonTree()
TWISTED_TREE = TwistedTree()


def _usec(seconds):
    return str(int(seconds * 1_000_000))


# -- how a tree reads (the tree view, status) ---------------------------------

def class_name(obj):
    """module.Class of a service; the bare name for a class of the config file."""
    cls = type(obj)
    if cls.__module__ in ("__corral_config__", "__main__", "builtins"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def subtree(service):
    """{name, class, children} of a service and everything below it."""
    children = getattr(service, "services", None)
    return {
        "name": service.name,
        "class": class_name(service),
        "children": [subtree(child) for child in children] if children is not None else [],
    }
