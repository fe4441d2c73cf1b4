"""The new image's half of `corral upgrade` (upgrade.py has the design).

Read the snapshot the old image left in a memfd, check that it fits this
code and this config before any carried fd is touched, then take over:
records, children (by their pidfds), log, notify and stdin pipes, held sockets,
the commands' notify socket, timers, probes in flight. Anything that fails
before the take-over is done execs the old image again (fall_back).
"""

import base64
import json
import os
import sys

from corral.core import snapshot as core_snapshot
from corral.errors import CorralError
from corral.supervisor.child import Child
from corral.supervisor.upgrade import CHECK_VAR, SNAPSHOT_VAR, carried_fds


class Incoming:
    """The snapshot this image was exec'd with (or is dry-running)."""

    def __init__(self, fd, data, dry_run):
        self.fd, self.data, self.dry_run = fd, data, dry_run

    def __getattr__(self, name):
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None


def incoming():
    """The Incoming of this process, or None when not started by an upgrade.
    Takes the variables out of the environment: workers must not see them."""
    value = os.environ.pop(SNAPSHOT_VAR, None)
    dry_run = os.environ.pop(CHECK_VAR, None) == "1"
    if value is None:
        return None
    fd = int(value)
    data = json.loads(os.pread(fd, os.fstat(fd).st_size, 0))
    return Incoming(fd, data, dry_run)


def check(config, carried):
    """Does the snapshot fit this config and this code? CorralError if not.
    Touches no carried fd but to fstat it."""
    from corral.core.record import Group, Supervision
    from corral.services.internet import ListeningService
    from corral.service import walk

    sup = Supervision(groups={g.name: Group.of(g) for g in config.groups})
    for spec in config.services:
        sup.add(spec)
    core_snapshot.fit_scaled(sup, carried.core)  # a `corral scale`'s count, as restore takes it
    found = core_snapshot.problems(sup, carried.core)
    specs = {spec.name: spec for spec in config.services}
    for name, fds in carried.sockets.items():
        spec = specs.get(name)
        if spec is None:
            continue  # problems() named it
        if spec.kind.name == "python":
            want = sum(isinstance(n, ListeningService) for n in walk(spec.tree)) if spec.tree else 0
        elif spec.kind.name == "twisted":
            want = len(spec.tree.addresses)
        else:
            want = len(spec.sockets)
        if want != len(fds):
            found.append(f"{name}: {len(fds)} socket(s) held, {want} in the config")
    for fd in carried_fds(carried.data):
        try:
            os.fstat(fd)
        except OSError as exc:
            found.append(f"fd {fd} of the snapshot: {exc.strerror}")
    if found:
        raise CorralError("the snapshot does not fit: " + "; ".join(found))


def fall_back(carried, exc):
    """This image failed before it took anything over: exec the old one with
    the snapshot, marked so. Returns (to let the error out) if this already
    is the fallback, or the dry run."""
    data = carried.data
    if carried.dry_run or data["attempt"] != "upgrade":
        return
    data["attempt"], data["error"] = "fallback", f"{type(exc).__name__}: {exc}"
    for fd in carried_fds(data):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass  # lost: the fallback's check() will say so
    blob = json.dumps(data).encode()
    os.ftruncate(carried.fd, 0)
    os.pwrite(carried.fd, blob, 0)
    old = data["fallback"]
    print(f"corral: upgrade failed ({data['error']}); running the old image again",
          file=sys.stderr, flush=True)
    os.execve(old["executable"], old["argv"], {**old["env"], SNAPSHOT_VAR: str(carried.fd)})


def resume(master, carried):
    """Take over what the old image left: records, children, pipes, sockets,
    timers, probes. Called once the loop runs and the logs are open."""
    from corral.core import messages as m

    data = carried.data
    core_snapshot.restore(master.sup, data["core"])
    specs = {spec.name: spec for spec in master.config.services}
    for name, fds in data["sockets"].items():
        master.sockets.adopt(specs[name], fds)
    if data["notify_socket"] is not None:
        master.notify.adopt(data["notify_socket"])
    pipes = {}
    for pipe in data["pipes"]:
        pipes.setdefault(pipe["pid"], []).append(pipe)
    for item in data["children"]:
        own = {p["stream"]: p["fd"] for p in pipes.get(item["pid"], ())}
        child = Child(item["kind"], item["pid"], own.get("out"), own.get("err"),
                      item["notify"], pidfd=item["pidfd"],
                      stdin_fd=item.get("stdin"))  # .get: an older image's snapshot has none
        child.instance, child.since = item["name"], item["since"]
        child.marker = master.spawner.marker
        master.spawner.children[child.pid] = child
        master._children[child.pid] = child
        master.loop.add_reader(child.pidfd, master._on_child_exit, child.instance, child)
        if child.stdin_fd is not None:
            os.set_blocking(child.stdin_fd, False)  # kept across the exec; said again
        if child.notify_fd is not None:
            os.set_blocking(child.notify_fd, False)
            master.loop.add_reader(child.notify_fd, master._on_notify, child.instance, child)
    for pipe in data["pipes"]:
        master.loghub.attach(pipe["fd"], pipe["instance"], pipe["service"], pipe["pid"],
                             pipe["stream"], base64.b64decode(pipe["buf"]))
    for fd in carried_fds(data):
        os.set_inheritable(fd, False)
    master.events.extend(data["events"])
    for name in [None, *master.records]:  # the timers of every deadline
        master._arm(m.Arm(name))
    for name, pid in data["probes"]:  # answers the old image would have had
        record = master.records.get(name)
        if record is not None and record.pid == pid:
            what = "ready" if record.state.value == "STARTING" else "health"
            master._probe(m.Probe(name, pid, what))
    if data["error"]:
        master.log(f"upgrade failed: {data['error']}; the previous image took over again "
                   f"(corral {_version()}, pid {os.getpid()})")
    else:
        master.log(f"upgraded: corral {data['from_version']} -> {_version()}, pid {os.getpid()}, "
                   f"{len(data['children'])} worker(s) kept")
    master.feed(m.Settle())


def _version():
    from corral import __version__

    return __version__
