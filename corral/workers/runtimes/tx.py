"""The Twisted runtime: one top-level service of a Twisted application, on
Twisted's asyncio reactor installed on the worker's own event loop.

So corral's lifecycle (runtimes/aio.py: READY=1 once started, heartbeat,
master watch, stop in reverse on the stop signal) runs unchanged, and
Twisted's code runs on the same loop. In order:

    new loop, reactor       asyncioreactor.install on a fresh loop, before the
                            user's file can import a reactor of its own
    logging                 Twisted's events into corral's stream (twisted/logs.py)
    load the file           the .tac again, here (tacfile.py), or a twistd
                            plugin's service made again from its options
                            (servicemakers.py); the service at the index the
                            master knows, checked by name
    adopt sockets           the master's held sockets, in tree order, instead
                            of binding (twisted/servers.py)
    start the reactor       startRunning: its startup triggers fire, reactor.running
    run the tree            privilegedStartService, startService (a Deferred is
                            awaited), READY=1; on the stop signal stopService,
                            its Deferred awaited
    stop the reactor        only then: reactor.stop and its shutdown triggers

A file that cannot be loaded, or whose start fails, exits EXIT_WORKER_BOOT
with its traceback in the log: the master does not retry it.
"""

import asyncio
import logging
import sys
import traceback

from twisted.internet import asyncioreactor

from corral.errors import EXIT_WORKER_BOOT
from corral.twisted import logs, servers, servicemakers, tacfile
from corral.workers.runtimes import aio

log = logging.getLogger("corral.worker")

REACTOR_STOP = 5.0  # s the reactor's shutdown triggers may take after the tree stopped


class TwistedHost(aio.Host):
    def __init__(self, loop):
        self.loop = loop

    def new_loop(self):
        return self.loop

    def before_close(self, loop):
        from twisted.internet import reactor

        if not reactor.running:
            return
        reactor.stop()  # its shutdown triggers, then it stops the loop
        guard = loop.call_later(REACTOR_STOP, loop.stop)
        loop.run_forever()
        guard.cancel()


def setup_logging(name):
    aio.setup_logging(name)  # the logging module's records (corral's own services)


def run(start, *, stop_signals, notify):
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(eventloop=loop)
    from twisted.internet import reactor

    tree = start.spec.tree
    try:
        if tree.plugin:
            application, children = servicemakers.load(tree.plugin[0], tree.plugin[1:], tree.folder)
        else:
            application, children = tacfile.load(tree.path)
    except (tacfile.TacError, servicemakers.OptionsDone) as exc:
        logs.begin()
        sys.stderr.write((exc.detail or "") + f"{tree.path}: {exc.message}\n"
                         if isinstance(exc, tacfile.TacError) else exc.text)
        return EXIT_WORKER_BOOT
    logs.begin(application)
    if tree.index >= len(children) or children[tree.index][0] != tree.name:
        log.error("%s no longer has the service %r where the master found it: "
                  "reload the config", tree.path, tree.name)
        return EXIT_WORKER_BOOT
    service = children[tree.index][1]
    held = servers.listening(service)
    if len(held) != len(start.sockets):
        log.error("%s: %r listens on %d addresses, the master holds %d: reload the config",
                  tree.path, tree.name, len(held), len(start.sockets))
        return EXIT_WORKER_BOOT
    try:
        for (server, _), (fd, _) in zip(held, start.sockets):
            servers.adopt(server, fd, reactor)
    except Exception:  # noqa: BLE001 - whatever fails, it cannot serve
        traceback.print_exc()
        return EXIT_WORKER_BOOT
    reactor.startRunning(installSignalHandlers=False)  # corral's handlers stop the tree
    return aio.run_tree(service, stop_signals=stop_signals, notify=notify,
                        master_pid=start.master_pid, privileged=True, host=TwistedHost(loop))
