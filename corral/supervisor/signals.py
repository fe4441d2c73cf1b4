"""Signals to the master, and the verb each one means.

Handlers only post: loop.add_signal_handler already runs them as ordinary
callbacks on the loop, never inside the signal itself. Each verb is also a
control command of the same name (one way to do each thing).

    SIGTERM   shutdown   ordered stop, reverse dependency order
    SIGINT    shutdown   the same; a second SIGINT kills every worker at once
    SIGHUP    reload     re-read the config, apply the difference
    SIGUSR1   reopen     reopen every log file (after logrotate moved them)
"""

import signal


def install(loop, master, reload, reopen):
    """Route the master's signals to its verbs; return the signals taken."""
    interrupts = []

    def on_interrupt():
        interrupts.append(1)
        if len(interrupts) > 1:
            master.kill_all()
        master.begin_shutdown()

    verbs = {
        signal.SIGTERM: master.begin_shutdown,
        signal.SIGINT: on_interrupt,
        signal.SIGHUP: reload,
        signal.SIGUSR1: reopen,
    }
    for sig, verb in verbs.items():
        loop.add_signal_handler(sig, verb)
    return tuple(verbs)


def uninstall(loop, taken):
    for sig in taken:
        loop.remove_signal_handler(sig)
