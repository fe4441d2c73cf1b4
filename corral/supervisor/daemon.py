"""Running on a real host: detach, pidfile lock, the master's own privileges.

Modelled on twistd's -n/--pidfile/--uid/--gid/--umask/--rundir and on
python-daemon's DaemonContext: each piece of OS work is one step that turns
an OSError into "Unable to <step>: <why>". run.py calls them in this order:

    find_owner         --uid/--gid -> ids; an unknown user or group fails here,
                       before anything is forked, bound or written
    set_umask          --umask, for the master and every worker it starts
    detach             (-d) fork, new session, fork again (never a session
                       leader, so never a controlling terminal), chdir to
                       --rundir (default /), stdin/stdout/stderr to /dev/null;
                       the launcher waits for the daemon's word
    lock_pidfile       exclusive lock, then our pid, held for the master's life
    (bind the control socket: control.py)
    drop_privileges    hand the socket to the new owner, then supplementary
                       groups, gid, uid (in that order: uid last)
    (run; Announcer.ok() once the socket is bound and autostart has begun)
    release_pidfile    on the way out: remove it, unlock it

Invariants: the launcher learns the outcome. The daemon writes one line on
a pipe, "ok" or "error: <message>", and a daemon that dies without a word
closes the pipe, which the launcher reports too; it never waits longer than
START_TIMEOUT. The pidfile lock is the truth, not the pid in the file: a
file nobody holds locked is stale whatever pid it names, and is taken over.
The lock is flock(2) on a close-on-exec fd, so commands never inherit it
and Python workers close it in their bootstrap (close_other_fds).
"""

import dataclasses
import errno
import fcntl
import os
import pwd
import select
import time

from corral import privileges, steps
from corral.errors import CorralError

START_TIMEOUT = 30.0  # s the launcher waits for the daemon to say how it went
EXIT_WAIT = 5.0  # s the launcher waits for a daemon that failed to be gone
LOCKED_READ_WAIT = 1.0  # s to wait for a locking master to write its pid


class DaemonError(CorralError):
    """One step of the OS work failed; the message says which and why."""


def _step(description, action, *args):
    return steps.step(DaemonError, description, action, *args)


# -- owner and umask ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Owner:
    uid: int = None  # None: keep ours
    gid: int = None
    user: str = None  # for initgroups; None when the uid has no passwd entry


def find_owner(uid=None, gid=None):
    """--uid/--gid (names or numbers) -> Owner, or None when neither is given.

    A user without --gid runs with the user's primary group, as in twistd.
    The look-ups are the ones of the per-service `user`/`group` keys.
    """
    if uid is None and gid is None:
        return None
    try:
        uid = None if uid is None else privileges.user_id(str(uid))
        gid = privileges.primary_group(uid) if gid is None else privileges.group_id(str(gid))
    except ValueError as exc:
        raise DaemonError(str(exc).replace("`group`", "--gid")) from None
    try:
        user = None if uid is None else pwd.getpwuid(uid).pw_name
    except KeyError:
        user = None  # a bare uid: supplementary groups become [gid]
    return Owner(uid=uid, gid=gid, user=user)


def set_umask(mask):
    if mask is not None:
        os.umask(mask)


def change_directory(path):
    _step(f"change directory to {path}", os.chdir, path)


def drop_privileges(owner, socket=None):
    """Become owner.uid/owner.gid; first give the control socket to them.

    The socket is mode 0600 and only its owner's uid (or root) may connect,
    so it must belong to the master's new uid for the master to keep it.
    """
    if owner is None:
        return
    uid = -1 if owner.uid is None else owner.uid
    gid = -1 if owner.gid is None else owner.gid
    if socket is not None:
        _step(f"hand the control socket {socket} to uid {uid} gid {gid}", os.chown, socket, uid, gid)
    if os.geteuid() == 0 and owner.gid is not None:
        if owner.user is not None and owner.uid is not None:
            _step(f"set the supplementary groups of {owner.user}", os.initgroups, owner.user, owner.gid)
        else:
            _step(f"set the supplementary groups to [{owner.gid}]", os.setgroups, [owner.gid])
    if owner.gid is not None:
        _step(f"change the group to {owner.gid}", os.setgid, owner.gid)
    if owner.uid is not None:
        _step(f"change the user to {owner.user or owner.uid}", os.setuid, owner.uid)


# -- detaching ------------------------------------------------------------------


class Announcer:
    """The daemon's end of the start-up pipe: says "ok" or "error: ..." once.

    After an error the pipe stays open until the daemon's exit closes it, so
    that the launcher, which waits for that, returns once the daemon is gone.
    """

    def __init__(self, fd):
        self.fd = fd

    def ok(self):
        self._say("ok", close=True)

    def failed(self, exc):
        message = str(exc) if isinstance(exc, CorralError) else f"internal error: {exc!r}"
        self._say("error: " + " ".join(message.split()), close=False)

    def _say(self, text, close):
        if self.fd is None:
            return  # said already
        fd, self.fd = self.fd, None
        try:
            os.write(fd, text.encode("utf-8", "replace") + b"\n")
        except OSError:
            pass  # the launcher is gone: nobody to tell
        if close:
            os.close(fd)


def detach(rundir, timeout=START_TIMEOUT):
    """Become a daemon; return its Announcer in the daemon.

    In the launcher this waits for the daemon's word: it returns None once
    the daemon said "ok", and raises CorralError with the daemon's message
    otherwise. Only the daemon returns an Announcer; the intermediate child
    never returns into the caller's code.
    """
    read_fd, write_fd = _step("create the start-up pipe", os.pipe)
    pid = _step("fork the daemon", os.fork)
    if pid > 0:
        os.close(write_fd)
        try:
            _step("wait for the session leader", os.waitpid, pid, 0)  # it exits at once
            return wait_for_daemon(read_fd, timeout)
        finally:
            os.close(read_fd)
    os.close(read_fd)
    announce = Announcer(write_fd)
    try:
        _step("start a new session", os.setsid)
        if _step("fork the daemon out of its session leader", os.fork) > 0:
            os._exit(0)
        change_directory(rundir)
        _step("redirect stdin, stdout and stderr to /dev/null", _redirect_stdio)
    except BaseException as exc:
        announce.failed(exc)
        os._exit(1)
    return announce


def _redirect_stdio():
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def wait_for_daemon(fd, timeout=START_TIMEOUT):
    """Read the daemon's one line; None for "ok", CorralError otherwise."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DaemonError(f"the daemon did not report within {timeout:g} s; it may still be "
                              "starting: see its log")
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    if line == "ok":
        return None
    if line.startswith("error: "):
        _wait_for_eof(fd, EXIT_WAIT)  # the daemon's exit closes its end
        raise DaemonError(line[len("error: "):])
    raise DaemonError("the daemon exited during start-up without saying why; see its log")


def _wait_for_eof(fd, timeout):
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0] and not os.read(fd, 4096):
            return


# -- the pidfile ----------------------------------------------------------------


@dataclasses.dataclass
class Pidfile:
    path: str
    fd: int
    notice: str = None  # to log once the log is open (a stale file was taken over)


def lock_pidfile(path, pid=None):
    """Open and lock path, write our pid; return a Pidfile held until release.

    A file locked by someone else is refused, naming the pid it holds. A
    file nobody has locked is stale, whatever it says, and is taken over.
    """
    pid = os.getpid() if pid is None else pid
    for _attempt in range(10):
        fd = _step(f"open the pidfile {path}", os.open, path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _wait_for_pid(fd) if exc.errno in (errno.EWOULDBLOCK, errno.EACCES) else None
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise DaemonError(f"Unable to lock the pidfile {path}: {exc.strerror}") from exc
            who = f"running master pid {holder}" if holder else "another process"
            raise DaemonError(f"pidfile {path} is locked by {who}") from None
        if _is_file_at(fd, path):
            break
        os.close(fd)  # removed or replaced between our open and our lock: lock the new one
    else:
        raise DaemonError(f"Unable to lock the pidfile {path}: it keeps being replaced")
    try:
        stale = _read_pid(fd)
        _step(f"write the pidfile {path}", _write_pid, fd, pid)
    except BaseException:
        os.close(fd)
        raise
    notice = None
    if stale is not None and stale != pid:
        notice = f"pidfile {path}: stale pid {stale} (no master held its lock): taken over"
    return Pidfile(path, fd, notice)


def release_pidfile(pidfile):
    """Remove the pidfile (if it is still ours), then unlock it by closing."""
    if pidfile is None or pidfile.fd is None:
        return
    fd, pidfile.fd = pidfile.fd, None
    try:
        if _is_file_at(fd, pidfile.path):
            try:
                os.unlink(pidfile.path)
            except PermissionError:
                # Privileges dropped and the folder is not ours: leave it
                # empty; unlocked, it is stale for the next master anyway.
                os.ftruncate(fd, 0)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_file_at(fd, path):
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_pid(fd):
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _wait_for_pid(fd):
    """The pid in a locked pidfile; its master may be between lock and write."""
    deadline = time.monotonic() + LOCKED_READ_WAIT
    while (pid := _read_pid(fd)) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid


def _write_pid(fd, pid):
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid}\n".encode(), 0)
    os.fsync(fd)
