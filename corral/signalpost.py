"""Signal handlers on the master's loop that a burst of signals cannot lose.

asyncio learns of a signal from the one byte its C handler writes to the
loop's wakeup socket. That socket holds about 280 such bytes here: a burst
of SIGCHLDs while the loop is busy (hundreds of workers exiting at once)
fills it, and a SIGTERM or SIGHUP in that moment loses its byte ("Exception
ignored when trying to write to the signal wakeup fd") and is never
handled. Python's own handler runs for every signal delivered, so here it
is the one that posts the callback; the socket's bytes only wake the loop,
and a full socket wakes it too.
"""

import signal


def add(loop, sig, callback):
    """Run callback on loop, soon after each delivery of sig."""

    def post(signum, frame):
        # Runs between two bytecodes of the master's one thread, whatever
        # it is doing: only post, and never raise into that code.
        if not loop.is_closed():
            loop.call_soon_threadsafe(callback)

    loop.add_signal_handler(sig, _nothing)  # asyncio's wakeup socket and bookkeeping
    signal.signal(sig, post)
    signal.siginterrupt(sig, False)  # system calls restart, as asyncio sets it
    # A full socket is harmless now: no warning for each signal it drops.
    signal.set_wakeup_fd(signal.set_wakeup_fd(-1), warn_on_full_buffer=False)


def remove(loop, sig):
    loop.remove_signal_handler(sig)  # the default disposition back


def _nothing():
    pass
