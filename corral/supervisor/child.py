"""A running worker process, as the master holds it: reaped by waitid on
its pidfd, signalled as a group and as a family (its cgroup, or the marker
of reaper.py), and its stdin pipe's write end. spawn.py makes Children;
resume.py makes them again for the workers an upgraded master inherits.
"""

import errno
import os

from corral.core.policy import Exit
from corral.supervisor import procfs, reaper


class Child:
    """A running worker process, reaped only through poll(): waitid on its
    pidfd, whatever started it, so that a master re-exec'd by `corral
    upgrade` (upgrade.py) reaps the workers of the image before it alike."""

    def __init__(self, kind, pid, out_fd, err_fd, notify_fd=None, *, popen=None, pidfd=None,
                 stdin_fd=None):
        self.kind = kind  # its spec's kind's name ("command", "python", ...)
        self.pid = pid
        self._popen = popen  # a command's subprocess.Popen, told its returncode
        self.out_fd = out_fd
        self.err_fd = err_fd
        self.notify_fd = notify_fd
        self.stdin_fd = stdin_fd  # the write end of its stdin pipe, non-blocking, or None
        self.pidfd = os.pidfd_open(pid) if pidfd is None else pidfd
        self.exit = None
        # Its family (reaper.py): set by Spawner.spawn.
        self.instance = self.marker = None
        self.since = 0  # when it started, in clock ticks since boot
        self.owns = None  # Spawner.owns: which of the master's children are not orphans
        self.cgroup = None  # (cgroups.Subtree, instance) when it runs in a cgroup of its own

    def poll(self):
        """Reap this pid if it has exited: return its Exit, else None."""
        if self.exit is None:
            self.exit = self._reap()
        return self.exit

    def _reap(self):
        """waitid(P_PIDFD): the pidfd names this process even if its pid is
        reused, and nothing but this call takes its exit status."""
        try:
            exit = _wait_pidfd(self.pidfd, self.pid)
        except ChildProcessError:  # reaped by someone else: cannot happen, but never spin
            return Exit(cause="exited (its exit status was taken by another waitpid)")
        if exit is None:
            return None
        if self._popen is not None:  # else Popen.__del__ would queue it for a waitpid
            self._popen.returncode = exit.code if exit.code is not None else -exit.signal
        return exit

    def signal_group(self, sig):
        """Send sig to the worker's process group (or to it, if not yet a leader)."""
        try:
            os.killpg(self.pid, sig)
            return True
        except ProcessLookupError:
            pass
        except PermissionError:
            return False
        try:  # between fork and setsid the group does not exist yet
            os.kill(self.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def group_alive(self):
        """True while a live (not zombie) process is left in the worker's group."""
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        # killpg also finds zombies that wait to be reaped: look closer.
        return group_has_live_member(self.pid, self._near())

    def signal_family(self, sig):
        """signal_group, and the same to its family outside the group (reaper.py).

        Once reaped, its pid may be another process's: only the group (alive
        while one member is) and the family are signalled then.
        """
        # The family first: once the group's leader dies of sig, its children
        # leave its subtree for the master's adopted orphans, which one loop
        # iteration reads once (reaper.adopted): looked for after the signal,
        # a child in its own session could be in neither list and be missed.
        family = self._family()
        if self.cgroup is not None:  # all of it, whatever left the group or the marker
            subtree, instance = self.cgroup
            ok = subtree.signal(instance, sig)
            return self.signal_group(sig) or ok if self.exit is None else ok
        if self.exit is None:
            ok = self.signal_group(sig)
        else:
            try:
                os.killpg(self.pid, sig)
                ok = True
            except (ProcessLookupError, PermissionError):
                ok = False
        for pid, pgrp in family:
            if pgrp != self.pid:  # the group has it already
                ok = reaper.kill(pid, sig) or ok
        return ok

    def family_alive(self):
        """True while a live process is left in its group or its family."""
        return self.group_alive() or bool(self._family())

    def _family(self):
        if self.cgroup is not None:  # its cgroup holds all of it (zombies aside)
            subtree, instance = self.cgroup
            return [(pid, fields[2]) for pid in subtree.procs(instance)
                    if (fields := procfs.stat_fields(pid)) and fields[0] not in (b"Z", b"X")
                    and (pid != self.pid or self.exit is None)]
        if self.marker is None:
            return []
        return reaper.family(self.marker, self.instance, self.since, self._near())

    def _near(self):
        """The pids its family can be among (reaper.near: its subtree while it
        runs, and the orphans the master adopted), or None: the whole host."""
        if self.owns is None or not reaper.adopting():
            return None
        roots = [self.pid] if self.exit is None else []
        return reaper.near(roots + reaper.adopted(self.owns))

    def write_stdin(self, data):
        """Write what of data fits in its stdin pipe now, never waiting: the
        count written. BrokenPipeError once its reader is gone (the pipe is
        closed then); ValueError when it has no stdin pipe (or no more)."""
        if self.stdin_fd is None:
            raise ValueError("no stdin pipe")
        done = 0
        try:
            while done < len(data):
                done += os.write(self.stdin_fd, data[done:])
        except BlockingIOError:
            pass  # full: the caller refuses the rest (the master buffers nothing)
        except BrokenPipeError:  # SIGPIPE is ignored in the master (Python's default)
            self.close_stdin()
            raise
        return done

    def close_stdin(self):
        if self.stdin_fd is not None:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def close(self):
        """Once reaped: its pidfd and its stdin pipe go (the log pipes drain first)."""
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.close_stdin()


_P_PIDFD = getattr(os, "P_PIDFD", None)  # waitid by pidfd: Linux 5.4


def _wait_pidfd(pidfd, pid):
    """The Exit of the child pidfd names if it has exited, else None. On a
    5.3 kernel (pidfd_open, no waitid P_PIDFD) waitpid on its pid, which
    is ours and not reused while unreaped."""
    global _P_PIDFD
    if _P_PIDFD is not None:
        try:
            result = os.waitid(_P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            _P_PIDFD = None
        else:
            if result is None:
                return None
            if result.si_code == os.CLD_EXITED:
                return Exit(code=result.si_status)
            return Exit(signal=result.si_status)  # CLD_KILLED, CLD_DUMPED
    done, status = os.waitpid(pid, os.WNOHANG)
    return Exit.from_status(status) if done else None


def group_has_live_member(pgid, among=None):
    """True if /proc shows a process of group pgid that is not a zombie
    (among: the pids to look at; None: every process)."""
    # /proc, not psutil: psutil has no pgrp call (procfs.py).
    for pid in procfs.pids() if among is None else among:
        fields = procfs.stat_fields(pid)
        if fields and len(fields) > 2 and int(fields[2]) == pgid \
                and fields[0] not in (b"Z", b"X"):
            return True
    return False
