"""Containment by cgroup v2, where the master may write below its own cgroup.

The marker (reaper.py) finds a worker's family by its environment, so a
descendant that clears it (`setsid env -i sleep 3601 &`) escapes it. A
cgroup does not: what a process forks stays in its cgroup, whatever it does
to its session or environment. So where the master's own cgroup v2 is
writable to it (systemd's `Delegate=yes`, a container with its own cgroup
namespace, root on a host whose hierarchy it owns), each instance runs in a
cgroup of its own:

    <the master's cgroup>/corral-<marker>/<instance>

The worker joins it itself, before it runs anything of the user's (a
command through a one-line /bin/sh shim, or in the preexec step; a Python
worker first thing after the fork), so nothing it starts is ever outside.
A stop signals every process in it, a SIGKILL is one write of
`cgroup.kill` (kernel 5.14; before that each pid of `cgroup.procs`), and an
instance is gone once `cgroup.procs` is empty. The undertaker kills the
whole `corral-<marker>` subtree when the master dies, then removes it.

Detected, never assumed (detect()): cgroup v2 mounted, the master's cgroup
found in /proc/self/cgroup, and a folder made below it. Anything else, or
`[corral] cgroups = "off"`, keeps the marker alone. No controller is
enabled (no memory.max or cpu.weight): that needs the controllers delegated
too, and would forbid processes in the master's own cgroup.
"""

import os
import signal

CGROUP_MOUNTS = "/proc/self/mountinfo"


def _unified_mount():
    """Where cgroup v2 is mounted, or None."""
    try:
        with open(CGROUP_MOUNTS) as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split()[4]
    except OSError:
        pass
    return None


def _own_cgroup():
    """This process's cgroup v2 path ("0::/PATH" in /proc/self/cgroup), or None."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def detect(marker, setting="auto"):
    """(Subtree, None) where the master may make cgroups, else (None, why)."""
    if setting == "off":
        return None, "off ([corral] cgroups = \"off\")"
    mount, own = _unified_mount(), _own_cgroup()
    if mount is None:
        return None, "no cgroup v2 hierarchy is mounted"
    if own is None:
        return None, "this process has no cgroup v2 path"
    base = os.path.join(mount, own.lstrip("/"))
    root = os.path.join(base, f"corral-{marker}")
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as exc:
        return None, f"cannot make a cgroup in {base}: {exc.strerror} (not delegated)"
    return Subtree(root), None


class Subtree:
    """This master's cgroups: one per instance, below one root."""

    def __init__(self, root):
        self.root = root
        self.kill_file = os.path.exists(os.path.join(root, "cgroup.kill"))

    def path(self, instance):
        return os.path.join(self.root, instance.replace("/", "_"))

    def prepare(self, instance):
        """The instance's cgroup folder, made if need be (None if it cannot be)."""
        path = self.path(instance)
        try:
            os.makedirs(path, exist_ok=True)
        except OSError:
            return None
        return path

    def procs(self, instance):
        """The pids in the instance's cgroup now."""
        try:
            with open(os.path.join(self.path(instance), "cgroup.procs"), "rb") as f:
                return [int(pid) for pid in f.read().split()]
        except (OSError, ValueError):
            return []

    def signal(self, instance, sig):
        """sig to every process in the instance's cgroup; True if one was there."""
        if sig == signal.SIGKILL and self.kill_file:
            pids = self.procs(instance)
            return _write(os.path.join(self.path(instance), "cgroup.kill"), b"1") and bool(pids)
        sent = False
        for pid in self.procs(instance):
            try:
                os.kill(pid, sig)
                sent = True
            except (ProcessLookupError, PermissionError):
                pass
        return sent

    def remove(self):
        """rmdir the instances' cgroups and the root (those still busy stay)."""
        remove_tree(self.root)


def shim(path):
    """argv that puts a command into its cgroup, then execs it: a shell, so that
    Popen keeps its vfork path (a preexec step forks the master's whole image
    and blocks the loop). A failed join is said on stderr, not hidden."""
    return ["/bin/sh", "-c", 'echo 0 > "$0/cgroup.procs" || echo "corral: $0: not contained" >&2; '
            'exec "$@"', path]


def kill_tree(root):
    """SIGKILL everything below root (the undertaker, once the master is gone)."""
    if _write(os.path.join(root, "cgroup.kill"), b"1"):
        return
    for folder, _, _ in os.walk(root):
        try:
            with open(os.path.join(folder, "cgroup.procs"), "rb") as f:
                pids = [int(pid) for pid in f.read().split()]
        except (OSError, ValueError):
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def remove_tree(root):
    for folder, _, _ in sorted(os.walk(root), key=lambda item: -len(item[0])):
        try:
            os.rmdir(folder)
        except OSError:
            pass


def _write(path, data):
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        os.write(fd, data)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
