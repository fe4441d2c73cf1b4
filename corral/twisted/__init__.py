"""Twisted applications in corral workers: .tac files whose `application`
is Twisted's (docs/twisted.md).

    (corral/loaders/tac.py, the master's side: is this file a Twisted
    application; learn its tree from a throwaway child, never loading
    Twisted's reactor in the master)
    probe.py    the throwaway child: load the file, report names, kinds,
                listening addresses and supervision settings as JSON
    tacfile.py  load a .tac the way twistd -y does (probe and worker)
    servers.py  Twisted's listening services: their addresses, and adopting
                the sockets the master holds for them
    logs.py     Twisted's log events into corral's log stream

The runtime that runs the tree in a worker is workers/runtimes/tx.py.
Nothing here is imported by the master (the loader imports no Twisted).
"""

__all__ = ["supervise"]


def supervise(service, **settings):
    """Attach corral's supervision settings (restart, numprocs, user, ready...,
    the names of TOML) to a top-level Twisted service; returns the service.

    As corral's own Service.supervise(): checked when the config loads, with
    errors that name the service and the key. They must be plain data (what
    TOML can say): the master reads them from a throwaway child."""
    current = getattr(service, "supervision", None)
    if not isinstance(current, dict):
        current = {}
    current.update(settings)
    service.supervision = current
    return service
