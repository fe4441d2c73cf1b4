"""A service's own user, group and umask: resolved at load, applied in the child.

At load (settings.py) names become ids, so that specs compare by ids on a
reload and an unknown user or group is a config error naming the key. A
user without a group runs with the user's primary group. Only root may run
a service as another user or group ("needs root").

In the child, after its fds are set up and before anything of the service
runs (a command's exec; a worker's chdir, env and tree), one step each, each
named in its error ("Unable to set user nobody: ..."):

    set the supplementary groups   initgroups(name, gid); setgroups([gid]) for a
                                   uid without a passwd entry or a group alone
                                   (root only: others cannot, and keep theirs)
    set group                      setgid   } groups before the uid: once the
    set user                       setuid   } uid is not 0 they are fixed
    set umask                      umask

The master never drops anything here: whatever needs root (binding, the log
files, which stay the master's) is done in the master, and only the child
becomes the service's user. Every lookup is done before the fork, in the
master (steps()), never in a command's child between fork and exec.

Linux clears PR_SET_PDEATHSIG when a process's uid or gid changes: callers
arm it again after these steps, or the worker would outlive its master.
"""

import grp
import os
import pwd
import re
from dataclasses import dataclass

from corral.steps import step as run_step

MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged" to the kernel


# -- load time: values -> ids (ValueError with the message for the key) -------

def user_id(value):
    """A user name or numeric uid -> uid; an unknown name is an error.

    A number needs no passwd entry (it then needs a `group`, see primary_group).
    """
    uid = _numeric(value, "user", "a user name or a numeric uid")
    if uid is not None:
        return uid
    try:
        return pwd.getpwnam(value).pw_uid
    except KeyError:
        raise ValueError(f"unknown user {value!r} (not in the passwd database)") from None


def group_id(value):
    """A group name or numeric gid -> gid; an unknown name is an error."""
    gid = _numeric(value, "group", "a group name or a numeric gid")
    if gid is not None:
        return gid
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise ValueError(f"unknown group {value!r} (not in the group database)") from None


def _numeric(value, kind, wanted):
    """The id in value (an int or a string of digits), None for a name."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise ValueError(f"must be {wanted}, not {value!r}")
    if isinstance(value, str) and not re.fullmatch(r"[0-9]+", value):
        return None
    number = int(value)
    if not 0 <= number <= MAX_ID:
        raise ValueError(f"{kind} id must be >= 0 and <= {MAX_ID}, not {value!r}")
    return number


def primary_group(uid):
    """The primary gid of uid, for a `user` given without a `group`."""
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        raise ValueError(f"uid {uid} has no passwd entry, hence no primary group: "
                         "give `group` as well") from None


def needs_root(uid, gid):
    """(key, why) if this process may not run a service as uid/gid, else None."""
    euid = os.geteuid()
    if euid == 0:
        return None
    if uid is not None and uid != euid:
        return "user", (f"needs root: corral runs as uid {euid}, and only root may "
                        f"run a service as another user (uid {uid})")
    if gid is not None and gid != os.getegid():
        return "group", (f"needs root: corral runs as gid {os.getegid()}, and only root "
                         f"may run a service as another group (gid {gid})")
    return None


def parse_umask(value):
    """An octal string ("022", "0o022") or an int (0o022 in Python/TOML) -> int."""
    if isinstance(value, str):
        digits = value[2:] if value[:2] in ("0o", "0O") else value
        if not re.fullmatch(r"[0-7]{1,4}", digits):
            raise ValueError(f'must be an octal string like "022" or "0o022", not {value!r}')
        mask = int(digits, 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        mask = value
    else:
        raise ValueError(f'must be an octal string like "022" or an integer, not {value!r}')
    if not 0 <= mask <= 0o777:
        raise ValueError(f"must be between 000 and 777 (octal), not {value!r}")
    return mask


# -- spawn time: who the child becomes ----------------------------------------

@dataclass(frozen=True)
class Account:
    """The user and group a child switches to (either may be None: unchanged)."""

    uid: int = None
    gid: int = None
    name: str = None  # the uid's passwd name; None without an entry
    home: str = None
    group_name: str = None

    @property
    def user_label(self):
        return self.name or str(self.uid)

    @property
    def group_label(self):
        return self.group_name or str(self.gid)


def account(spec):
    """The spec's Account, looked up now; None when it keeps the master's ids."""
    if spec.user is None and spec.group is None:
        return None
    name = home = group_name = None
    if spec.user is not None:
        try:
            entry = pwd.getpwuid(spec.user)
            name, home = entry.pw_name, entry.pw_dir
        except KeyError:
            pass
    if spec.group is not None:
        try:
            group_name = grp.getgrgid(spec.group).gr_name
        except KeyError:
            pass
    return Account(spec.user, spec.group, name, home, group_name)


def user_env(spec):
    """HOME, USER and LOGNAME of the spec's user ({} without a `user`)."""
    acct = account(spec)
    if acct is None or acct.uid is None:
        return {}
    return {"HOME": acct.home or "/", "USER": acct.user_label, "LOGNAME": acct.user_label}


def steps(spec):
    """[(description, action, *args)] that make a child the spec's user, in order."""
    acct = account(spec)
    plan = []
    if acct is not None:
        if os.geteuid() == 0 and acct.gid is not None:
            if acct.uid is not None and acct.name is not None:
                plan.append((f"set the supplementary groups of {acct.name}",
                             os.initgroups, acct.name, acct.gid))
            else:
                plan.append((f"set the supplementary groups to [{acct.group_label}]",
                             os.setgroups, [acct.gid]))
        if acct.gid is not None:
            plan.append((f"set group {acct.group_label}", os.setgid, acct.gid))
        if acct.uid is not None:
            plan.append((f"set user {acct.user_label}", os.setuid, acct.uid))
    if spec.umask is not None:
        plan.append((f"set umask {spec.umask:03o}", os.umask, spec.umask))
    return plan


class PrivilegeError(Exception):
    """A step failed; the message names it: "Unable to set user nobody: ..."."""


def run_steps(plan):
    for description, action, *args in plan:
        run_step(PrivilegeError, description, action, *args)


class CommandDrop:
    """The steps for a command's preexec_fn, and a pipe to say which one failed.

    subprocess reports any exception in preexec_fn as the bare "Exception
    occurred in preexec_fn.", so the child writes the real message on a pipe
    of its own (closed at exec by close_fds) and the master reads it back
    with why(). With a plan, the cwd is entered after it too, as the user.
    """

    def __init__(self, spec):
        self.plan = steps(spec)  # looked up here, in the master
        self.changes_user = spec.user is not None or spec.group is not None
        self.cwd = spec.cwd if self.changes_user else None
        if self.cwd:
            self.plan.append((f"change directory to {self.cwd}", os.chdir, self.cwd))
        self._r = self._w = None
        if self.plan:
            self._r, self._w = os.pipe()
            os.set_blocking(self._r, False)

    def __call__(self):
        """In the child, between fork and exec."""
        try:
            run_steps(self.plan)
        except PrivilegeError as exc:
            try:
                os.write(self._w, str(exc).encode("utf-8", "replace")[:4096])
            except OSError:
                pass
            raise

    def why(self):
        """In the master, after Popen failed: the failed step's message, or None."""
        if self._r is None:
            return None
        try:
            return os.read(self._r, 4096).decode("utf-8", "replace") or None
        except OSError:
            return None

    def close(self):
        for fd in (self._r, self._w):
            if fd is not None:
                os.close(fd)
        self._r = self._w = None


def groups_of(acct):
    """The gids a child of acct has after steps(): its supplementary groups
    (initgroups) and its group; the master's own when it keeps its ids."""
    if acct is None:
        return set(os.getgroups()) | {os.getegid()}
    gid = acct.gid if acct.gid is not None else os.getegid()
    if acct.uid is not None and acct.name is not None:
        return set(os.getgrouplist(acct.name, gid)) | {gid}
    return {gid}


def unreadable_folder(path, uid, gids):
    """The first folder on the way to path (itself included) that uid, with
    gids, may not enter (and path not read), by the mode bits; None when it
    may, and always for root. POSIX ACLs are not read: a folder where one
    decides is judged by its mode bits alone."""
    if uid == 0:
        return None
    path = os.path.abspath(path)
    parts = path.split(os.sep)[1:]
    folders = ["/"] + [os.sep + os.path.join(*parts[:n]) for n in range(1, len(parts) + 1)]
    for folder in folders:
        try:
            st = os.stat(folder)
        except OSError:
            return folder
        if st.st_uid == uid:
            bits = st.st_mode >> 6
        elif st.st_gid in gids:
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        need = 0o5 if folder == path else 0o1  # r-x for path itself, x on the way
        if bits & need != need:
            return folder
    return None
