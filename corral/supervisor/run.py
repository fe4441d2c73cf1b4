"""`corral run`: load the config, then supervise in the foreground.

The control socket is bound before anything is spawned, so that a second
master on the same socket is refused before it starts a single worker.
"""

import asyncio
import dataclasses
import os

from corral import config as config_module
from corral.errors import ControlError
from corral.supervisor import signals
from corral.supervisor.control import ControlServer
from corral.supervisor.master import Master


def run_master(config_path, socket=None, logfile=None, log_dir=None):
    """Return the exit code. Raises ConfigError (nothing started) or
    CorralError (socket in use)."""
    config = config_module.load(config_path)
    settings = config.master
    settings = dataclasses.replace(
        settings,
        socket=os.path.abspath(socket or settings.socket),
        logfile=logfile or settings.logfile,
        log_dir=log_dir or settings.log_dir,
    )
    config = dataclasses.replace(config, master=settings)
    return asyncio.run(_main(config))


async def _main(config):
    loop = asyncio.get_running_loop()
    color = os.isatty(1) and "NO_COLOR" not in os.environ
    master = Master(config, console=1, color=color)
    control = ControlServer(master, config.master.socket)
    await control.start()
    master.attach_loop(loop)

    def reload():
        loop.create_task(_quiet(master.reload()))

    taken = signals.install(loop, master, reload=reload, reopen=master.loghub.reopen)
    try:
        master.start_autostart()
        code = await master.done
    finally:
        signals.uninstall(loop, taken)
        await control.close()
        master.loghub.close()
    return code


async def _quiet(awaitable):
    try:
        await awaitable
    except ControlError:
        pass  # reload already logged why it refused
