"""The service tree: Twisted's IService and IServiceCollection, on asyncio.

A tree is built in the master (by a config) but only ever started inside a
worker process. startService and stopService may return an awaitable; a
MultiService then awaits each child before it moves to the next one, so a
service that loads data finishes before the listener after it starts.
Trees made only of plain methods stay plain: nothing needs an event loop
unless some service asks for one.
"""

import asyncio
import inspect
import logging
import sys
import types

log = logging.getLogger("corral.service")


class ServiceTreeError(RuntimeError):
    """A tree built the wrong way: two parents, two children with one name."""


class NotAChild(ServiceTreeError, KeyError, ValueError):
    """removeService of a service that is not a child: Twisted raises
    KeyError for a named one and ValueError for an unnamed one; this is both."""

    __str__ = RuntimeError.__str__  # KeyError's would show the message's repr


class StopErrors(RuntimeError):
    """Some children raised in stopService; each was logged when it happened."""

    def __init__(self, names):
        self.names = names
        super().__init__("stopService failed for: " + ", ".join(names))


def as_awaitable(result):
    """What to await for a start or stop result, or None for a plain one.

    A Twisted Deferred (with Twisted installed) is awaited as an asyncio
    future on the running loop: awaited as it is, asyncio refuses it. A
    coroutine may itself `await` Deferreds (see _with_deferreds). A stop
    that was done at once (Stopped) is plain: its error, if any, is raised.
    """
    if isinstance(result, Stopped):
        if result.error is not None:
            raise result.error
        return None
    if _is_deferred(result):
        try:
            return result.asFuture(asyncio.get_running_loop())
        except RuntimeError:
            return result  # no loop: whoever awaits it (ensureDeferred, say)
    if inspect.iscoroutine(result) and "twisted.internet.defer" in sys.modules:
        return _bridge(result)
    return result if inspect.isawaitable(result) else None


def _is_deferred(value):
    """A Twisted Deferred (or DeferredList...): only if Twisted was imported."""
    defer = sys.modules.get("twisted.internet.defer")
    return defer is not None and isinstance(value, defer.Deferred)


async def _bridge(coro):
    return await _with_deferreds(coro)


@types.coroutine
def _with_deferreds(coro):
    """Drive coro for an asyncio task, and let it `await` a Deferred.

    Awaiting a Deferred yields the Deferred itself, which asyncio's task
    refuses ("bad yield"). Here the yield is taken: we wait, through the
    task, until the Deferred has fired, and resume the coroutine, which
    then reads the result (or raises the failure) from the Deferred.
    Everything else the coroutine yields (asyncio's futures) goes to the
    task as it is, and what the task sends or throws (a cancel) goes back.
    """
    send = throw = None
    while True:
        try:
            yielded = coro.send(send) if throw is None else coro.throw(throw)
        except StopIteration as done:
            return done.value
        send = throw = None
        try:
            if _is_deferred(yielded):
                yield from _fired(yielded)
            else:
                send = yield yielded
        except BaseException as exc:  # noqa: BLE001 - a cancel goes on to the coroutine
            throw = exc


def _fired(deferred):
    """A future done when deferred fires; the result stays the Deferred's."""
    future = asyncio.get_running_loop().create_future()

    def wake(result):
        if not future.done():
            future.set_result(None)
        return result

    deferred.addBoth(wake)
    return future


class Stopped:
    """MultiService.stopService's result when every child stopped at once:
    an awaitable that is already done (awaiting it needs no event loop), and
    raises StopErrors if some child's stop raised."""

    def __init__(self, error=None):
        self.error = error

    def __await__(self):
        if self.error is not None:
            raise self.error
        return None
        yield  # noqa: unreachable - makes this a generator, as __await__ must be


def _in_order(steps, on_error=None):
    """Call each step in turn; await any awaitable before the next step.

    Returns None when every step was plain, else an awaitable for the rest.
    On a running loop the rest is a task, so that it goes on even when the
    caller drops the awaitable (a subclass written the Twisted way calls
    the base startService and ignores its result). on_error(step, exc), if
    given, handles a step's exception and the sequence goes on; otherwise
    the exception propagates.
    """
    steps = list(steps)
    for index, step in enumerate(steps):
        try:
            result = as_awaitable(step())
        except Exception as exc:
            if on_error is None:
                raise
            on_error(step, exc)
            continue
        if result is not None:
            rest = _finish_in_order(result, step, steps[index + 1:], on_error)
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return rest  # no loop: whoever awaits it drives it
            return asyncio.ensure_future(rest)
    return None


async def _finish_in_order(pending, pending_step, rest, on_error):
    try:
        await pending
    except Exception as exc:
        if on_error is None:
            raise
        on_error(pending_step, exc)
    for step in rest:
        try:
            result = as_awaitable(step())
            if result is not None:
                await result
        except Exception as exc:
            if on_error is None:
                raise
            on_error(step, exc)


class Service:
    """One unit that can be started and stopped. Subclass and override."""

    name = None
    parent = None
    running = False

    def __init__(self):
        # Supervision settings (restart, after, numprocs, ...) for a
        # top-level service, with the same names as in TOML; see supervise().
        self.supervision = {}

    def __repr__(self):
        label = f" {self.name!r}" if self.name is not None else ""
        return f"<{type(self).__name__}{label}>"

    def __getstate__(self):
        # As Twisted's: a copy (pickle, copy.copy) is not running.
        state = self.__dict__.copy()
        state.pop("running", None)
        state.pop("_starting", None)
        return state

    def setName(self, name):
        if self.parent is not None:
            raise ServiceTreeError(
                f"cannot rename {self!r}: it already has a parent; "
                "set the name before setServiceParent()"
            )
        self.name = name

    def setServiceParent(self, parent):
        """Add self to parent; a service that has a parent moves (as in Twisted)."""
        if self.parent is not None:
            self.disownServiceParent()
        return parent.addService(self)

    def disownServiceParent(self):
        parent = self.parent
        if parent is None:
            return None
        return parent.removeService(self)

    def supervise(self, **settings):
        """Give supervision settings (same names as TOML); returns self.

        They are checked when the config loads, with errors that name the
        service and the key, and apply to top-level services only.
        """
        if not hasattr(self, "supervision"):  # a subclass skipped __init__
            self.supervision = {}
        self.supervision.update(settings)
        return self

    def privilegedStartService(self):
        pass

    def startService(self):
        self.running = True

    def stopService(self):
        self.running = False


class MultiService(Service):
    """A service that holds services: starts them in order, stops in reverse."""

    def __init__(self):
        super().__init__()
        self.services = []
        self.namedServices = {}

    def __iter__(self):
        return iter(list(self.services))

    def __len__(self):
        return len(self.services)

    def getServiceNamed(self, name):
        try:
            return self.namedServices[name]
        except KeyError:
            raise KeyError(f"{self!r} has no child named {name!r}") from None

    def addService(self, service):
        if service.parent is not None:
            raise ServiceTreeError(
                f"{service!r} already has a parent {service.parent!r}; "
                "call disownServiceParent() first"
            )
        if service is self or _is_ancestor(service, self):
            raise ServiceTreeError(f"adding {service!r} to {self!r} would make a cycle")
        if service.name is not None:
            if service.name in self.namedServices:
                raise ServiceTreeError(
                    f"{self!r} already has a child named {service.name!r}"
                )
            self.namedServices[service.name] = service
        self.services.append(service)
        service.parent = self
        if self.running:
            # As in Twisted: a child added to a running parent starts now.
            service.privilegedStartService()
            return service.startService()
        return None

    def removeService(self, service):
        if service not in self.services:
            raise NotAChild(f"{service!r} is not a child of {self!r}")
        if service.name is not None:
            self.namedServices.pop(service.name, None)
        self.services.remove(service)
        service.parent = None
        if self.running and service.running:
            return service.stopService()
        return None

    def privilegedStartService(self):
        Service.privilegedStartService(self)
        for service in self:
            service.privilegedStartService()

    def startService(self):
        Service.startService(self)
        self._starting = _in_order(service.startService for service in self)
        return self._starting

    def stopService(self):
        """Stop the running children, one at a time in reverse, each awaited.

        Returns an awaitable that is done when every child has stopped (as
        Twisted's DeferredList); a child whose stop raises is logged and
        the others still stop, and awaiting it then raises StopErrors."""
        Service.stopService(self)
        failed = []

        def on_error(step, exc):
            child = step.__self__
            failed.append(child.name or repr(child))
            log.error("stopService of %r failed", child, exc_info=exc)

        steps = [s.stopService for s in reversed(self.services) if s.running]
        pending = _in_order(steps, on_error)
        if pending is None:
            return Stopped(StopErrors(failed) if failed else None)
        return _raise_if_failed(pending, failed)


async def _raise_if_failed(pending, failed):
    await pending
    if failed:
        raise StopErrors(failed)


def walk(tree):
    """tree and every service below it, depth first, in tree order: the one
    walk of a corral tree (sockets, check, code digests)."""
    yield tree
    if isinstance(tree, MultiService):
        for child in tree:
            yield from walk(child)


def pending_starts(tree):
    """The starts in tree still running as tasks: those of MultiServices
    whose caller dropped the awaitable (the runtime awaits them before ready)."""
    found = []
    stack = [tree]
    while stack:
        node = stack.pop()
        task = getattr(node, "_starting", None)
        if isinstance(task, asyncio.Future) and not task.done():
            found.append(task)
        stack.extend(getattr(node, "services", ()))
    return found


def _is_ancestor(candidate, node):
    while node is not None:
        if node is candidate:
            return True
        node = node.parent
    return False


class Application(MultiService):
    """The root of a tree; each direct child runs in its own worker process.

    uid, gid: as twistd's Application(name, uid, gid), who the application
    runs as: the `user` and `group` of each child that does not set its own
    (in supervise(), or TOML's names for it)."""

    def __init__(self, name=None, uid=None, gid=None):
        super().__init__()
        self.name = name
        self.uid, self.gid = uid, gid
        self.master_settings = {}

    def configure(self, **settings):
        """The master's settings, with the names of TOML's [corral] table
        (socket, logfile, log_dir, pidfile, log_max_bytes, log_backups,
        on_fatal, env_file); checked when the config loads. Returns self."""
        self.master_settings.update(settings)
        return self

    def addService(self, service):
        result = super().addService(service)
        for key, value in (("user", self.uid), ("group", self.gid)):
            if value is not None:
                service.supervise(**{key: service.supervision.get(key, value)})
        return result
