"""prctl, which the standard library lacks, through ctypes.

libc is loaded once, at import, in the master: a forked child calls these
between fork and exec, where loading a library could deadlock. Neither
side's: the master (reaper.py, a command's preexec) and a worker's
bootstrap (through procsetup.py) both use it.
"""

import ctypes
import os

PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option, value):
    """prctl(option, value); OSError on failure. value: an int or bytes."""
    arg = ctypes.c_char_p(value) if isinstance(value, bytes) else value
    if _libc.prctl(option, arg, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
