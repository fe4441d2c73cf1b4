"""Signals to the master, and the verb each one means.

Handlers only post: corral/signalpost.py runs them as ordinary callbacks
on the loop, never inside the signal itself, and a burst of other signals
cannot lose one. Each verb is also a
control command of the same name (one way to do each thing).

    SIGTERM   shutdown   ordered stop, reverse dependency order
    SIGINT    shutdown   the same; a second SIGINT kills every worker at once
    SIGHUP    reload     re-read the config, apply the difference
    SIGUSR1   reopen     reopen every log file (after logrotate moved them)
    SIGUSR2   upgrade    re-execute the master in place, workers kept (nginx's and
                         unicorn's signal for a new binary)
"""

import signal

from corral.errors import ControlError
from corral import signalpost


def install(loop, ops):
    """Route the master's signals to ops' verbs; return the signals taken."""
    interrupts = []

    def shutdown():
        ops.shutdown()  # begins now; nobody here waits for its end

    def on_interrupt():
        interrupts.append(1)
        if len(interrupts) > 1:
            ops.kill_all()
        shutdown()

    def reload():
        loop.create_task(_quiet(ops.reload()))

    def upgrade():
        loop.create_task(_quiet(ops.upgrade()))

    verbs = {
        signal.SIGTERM: shutdown,
        signal.SIGINT: on_interrupt,
        signal.SIGHUP: reload,
        signal.SIGUSR1: ops.reopen,
        signal.SIGUSR2: upgrade,
    }
    for sig, verb in verbs.items():
        signalpost.add(loop, sig, verb)
    return tuple(verbs)


def uninstall(loop, taken):
    for sig in taken:
        signalpost.remove(loop, sig)


async def _quiet(awaitable):
    try:
        await awaitable
    except ControlError:
        pass  # reload and upgrade already logged why they refused
