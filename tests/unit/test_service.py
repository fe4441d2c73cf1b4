"""The service tree: Twisted's IService and IServiceCollection, on asyncio."""

import asyncio
import inspect
import logging

import pytest

from corral.service import (
    Application,
    MultiService,
    Service,
    ServiceTreeError,
    StopErrors,
    as_awaitable,
)
from tests import helpers
from tests.helpers import Boom


class Recorder(helpers.Recorder):
    """helpers.Recorder that journals privilegedStartService too."""

    def privilegedStartService(self):
        self.journal.append(f"privileged {self.name}")


def tree(journal, *specs, parent=None):
    parent = parent if parent is not None else MultiService()
    for name, start, stop in specs:
        Recorder(name, journal, start, stop).setServiceParent(parent)
    return parent


def run(awaitable_or_none):
    """Await what a start or stop returned, on a fresh loop, if anything."""
    if awaitable_or_none is None:
        return None

    async def main():
        return await awaitable_or_none

    return asyncio.run(main())


def run_call(method):
    """Call a start/stop method on a fresh loop and await its result."""

    async def main():
        result = method()
        if result is not None:
            await result

    asyncio.run(main())


# -- naming and parents -----------------------------------------------------


def test_set_name_before_parent():
    service = Service()
    assert service.name is None
    service.setName("web")
    assert service.name == "web"
    assert "web" in repr(service)


def test_set_name_with_a_parent_is_refused():
    parent = MultiService()
    child = Service()
    child.setName("a")
    child.setServiceParent(parent)
    with pytest.raises(ServiceTreeError, match="already has a parent"):
        child.setName("b")
    assert child.name == "a"


def test_set_and_disown_parent():
    parent = MultiService()
    child = Service()
    child.setName("a")
    assert child.setServiceParent(parent) is None
    assert child.parent is parent
    assert list(parent) == [child]
    assert parent.getServiceNamed("a") is child

    assert child.disownServiceParent() is None
    assert child.parent is None
    assert list(parent) == []
    with pytest.raises(KeyError):
        parent.getServiceNamed("a")
    # Disowning twice is harmless, and the child may then join another parent.
    assert child.disownServiceParent() is None
    other = MultiService()
    child.setServiceParent(other)
    assert child.parent is other


def test_set_service_parent_moves_a_service_as_twisted_does():
    first, second = MultiService(), MultiService()
    child = Service()
    child.setName("c")
    child.setServiceParent(first)
    assert child.setServiceParent(second) is None
    assert child.parent is second and list(first) == [] and list(second) == [child]
    assert "c" not in first.namedServices and second.getServiceNamed("c") is child


def test_add_service_of_a_service_with_a_parent_is_refused():
    # On purpose unlike Twisted's, which would leave it in two trees.
    first, second = MultiService(), MultiService()
    child = Service()
    child.setServiceParent(first)
    with pytest.raises(ServiceTreeError, match="already has a parent"):
        second.addService(child)
    assert child.parent is first
    assert list(second) == []


def test_two_children_with_one_name_are_refused():
    parent = MultiService()
    a1, a2 = Service(), Service()
    a1.setName("a")
    a2.setName("a")
    a1.setServiceParent(parent)
    with pytest.raises(ServiceTreeError, match="'a'"):
        a2.setServiceParent(parent)
    assert a2.parent is None
    assert list(parent) == [a1]
    assert parent.getServiceNamed("a") is a1


def test_unnamed_children_may_be_many():
    parent = MultiService()
    children = [Service() for _ in range(3)]
    for child in children:
        child.setServiceParent(parent)
    assert list(parent) == children
    assert len(parent) == 3


def test_a_cycle_is_refused():
    outer, inner = MultiService(), MultiService()
    inner.setServiceParent(outer)
    with pytest.raises(ServiceTreeError, match="cycle"):
        outer.setServiceParent(inner)
    alone = MultiService()
    with pytest.raises(ServiceTreeError, match="cycle"):
        alone.addService(alone)


def test_get_service_named_missing_raises_key_error():
    parent = MultiService()
    with pytest.raises(KeyError, match="nothing"):
        parent.getServiceNamed("nothing")


def test_iteration_in_insertion_order_and_safe_to_remove_while_iterating():
    journal = []
    parent = tree(journal, ("a", "sync", "sync"), ("b", "sync", "sync"), ("c", "sync", "sync"))
    assert [s.name for s in parent] == ["a", "b", "c"]
    for child in parent:
        child.disownServiceParent()
    assert list(parent) == []
    assert len(parent) == 0


def test_remove_service_that_is_not_a_child():
    with pytest.raises(ServiceTreeError, match="not a child"):
        MultiService().removeService(Service())


# -- running flags and order, synchronous -----------------------------------


def test_running_flags():
    journal = []
    parent = tree(journal, ("a", "sync", "sync"), ("b", "sync", "sync"))
    assert not parent.running
    assert not any(child.running for child in parent)
    parent.startService()
    assert parent.running
    assert all(child.running for child in parent)
    parent.stopService()
    assert not parent.running
    assert not any(child.running for child in parent)


def test_sync_tree_needs_no_event_loop():
    journal = []
    parent = tree(journal, ("a", "sync", "sync"), ("b", "sync", "sync"))
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    parent.privilegedStartService()
    assert parent.startService() is None
    stopped = parent.stopService()
    # Done already (every child stopped at once), and still an awaitable, as
    # Twisted's DeferredList: awaiting it needs no loop and does nothing more.
    assert journal == ["privileged a", "privileged b", "start a", "start b", "stop b", "stop a"]
    assert inspect.isawaitable(stopped)
    with pytest.raises(StopIteration):
        stopped.__await__().send(None)
    assert run(stopped) is None and journal[-1] == "stop a"


def test_start_in_insertion_order_stop_in_reverse_nested():
    journal = []
    root = Application("app")
    tree(journal, ("a", "sync", "sync"), parent=root)
    inner = tree(journal, ("b1", "sync", "sync"), ("b2", "sync", "sync"))
    inner.setName("b")
    inner.setServiceParent(root)
    tree(journal, ("c", "sync", "sync"), parent=root)

    root.privilegedStartService()
    root.startService()
    root.stopService()
    assert journal == [
        "privileged a", "privileged b1", "privileged b2", "privileged c",
        "start a", "start b1", "start b2", "start c",
        "stop c", "stop b2", "stop b1", "stop a",
    ]


def test_only_running_children_are_stopped():
    journal = []
    parent = tree(journal, ("a", "sync", "sync"), ("b", "raise", "sync"), ("c", "sync", "sync"))
    with pytest.raises(Boom):
        parent.startService()
    assert journal == ["start a", "start b"]
    assert not parent.getServiceNamed("c").running
    parent.stopService()
    # b set running before it raised, so it is stopped; c never started.
    assert journal[2:] == ["stop b", "stop a"]


def test_add_service_to_a_running_parent_starts_it():
    journal = []
    parent = tree(journal, ("a", "sync", "sync"))
    parent.startService()
    late = Recorder("late", journal)
    assert parent.addService(late) is None
    assert late.running
    assert journal[-2:] == ["privileged late", "start late"]


def test_set_service_parent_on_a_running_parent_returns_the_async_start():
    journal = []
    parent = tree(journal, ("a", "sync", "sync"))
    parent.startService()
    late = Recorder("late", journal, start="coro")
    pending = late.setServiceParent(parent)
    assert pending is not None  # else the start coroutine would never run
    run(pending)
    assert journal[-2:] == ["start-begin late", "start-end late"]


def test_remove_service_of_a_running_child_stops_it():
    journal = []
    parent = tree(journal, ("a", "sync", "sync"), ("b", "sync", "sync"))
    parent.startService()
    b = parent.getServiceNamed("b")
    assert parent.removeService(b) is None
    assert not b.running
    assert b.parent is None
    assert journal[-1] == "stop b"
    parent.stopService()
    assert journal[-1] == "stop a"
    assert journal.count("stop b") == 1


def test_remove_service_of_a_stopped_parent_does_not_stop():
    journal = []
    parent = tree(journal, ("a", "sync", "sync"))
    parent.getServiceNamed("a").disownServiceParent()
    assert journal == []


def test_remove_running_child_with_async_stop_returns_the_awaitable():
    journal = []
    parent = tree(journal, ("a", "sync", "coro"))
    parent.startService()
    a = parent.getServiceNamed("a")
    pending = a.disownServiceParent()
    assert pending is not None
    run(pending)
    assert journal[-2:] == ["stop-begin a", "stop-end a"]


# -- asynchronous starts and stops ------------------------------------------


def test_async_start_and_stop_awaited_in_order():
    journal = []
    parent = tree(
        journal,
        ("a", "coro", "future"),
        ("b", "sync", "sync"),
        ("c", "future", "coro"),
        ("d", "coro", "coro"),
    )

    async def main():
        result = parent.startService()
        assert result is not None  # some child is async
        await result
        assert all(child.running for child in parent)
        journal.append("--")
        await parent.stopService()

    asyncio.run(main())
    assert journal == [
        "start-begin a", "start-end a",
        "start b",
        "start-begin c", "start-end c",
        "start-begin d", "start-end d",
        "--",
        "stop-begin d", "stop-end d",
        "stop-begin c", "stop-end c",
        "stop b",
        "stop-begin a", "stop-end a",
    ]
    assert not any(child.running for child in parent)


def test_async_tree_nested_each_stop_finished_before_the_next_begins():
    journal = []
    root = Application("app")
    tree(journal, ("a", "future", "coro"), parent=root)
    inner = tree(journal, ("b1", "coro", "future"), ("b2", "sync", "coro"))
    inner.setServiceParent(root)
    tree(journal, ("c", "coro", "future"), parent=root)

    run_call(root.startService)
    run_call(root.stopService)

    stops = [entry for entry in journal if entry.startswith("stop")]
    assert stops == [
        "stop-begin c", "stop-end c",
        "stop-begin b2", "stop-end b2",
        "stop-begin b1", "stop-end b1",
        "stop-begin a", "stop-end a",
    ]
    starts = [entry for entry in journal if entry.startswith("start")]
    assert starts == [
        "start-begin a", "start-end a",
        "start-begin b1", "start-end b1",
        "start b2",
        "start-begin c", "start-end c",
    ]


def test_async_start_error_stops_the_sequence():
    journal = []
    parent = tree(
        journal, ("a", "coro", "sync"), ("b", "coro-raise", "sync"), ("c", "sync", "sync")
    )
    with pytest.raises(Boom, match="start b failed"):
        run_call(parent.startService)
    assert "start c" not in journal
    assert not parent.getServiceNamed("c").running


# -- errors while stopping --------------------------------------------------


def test_stop_error_is_logged_others_still_stop(caplog):
    journal = []
    parent = tree(journal, ("a", "sync", "sync"), ("b", "sync", "raise"), ("c", "sync", "sync"))
    parent.startService()
    with caplog.at_level(logging.ERROR, logger="corral.service"):
        stopped = parent.stopService()  # logs b's error, does not raise it
        assert journal[-3:] == ["stop c", "stop b", "stop a"]
        with pytest.raises(StopErrors) as info:
            run(stopped)  # the errors collected
    assert info.value.names == ["b"]
    assert "b" in str(info.value)
    assert not any(child.running for child in parent)
    [record] = [r for r in caplog.records if r.name == "corral.service"]
    assert "'b'" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], Boom)


def test_async_stop_errors_are_logged_others_still_stop(caplog):
    journal = []
    parent = tree(
        journal,
        ("a", "sync", "coro"),
        ("b", "sync", "coro-raise"),
        ("c", "sync", "future"),
        ("d", "sync", "raise"),
    )
    parent.startService()
    with caplog.at_level(logging.ERROR, logger="corral.service"):
        with pytest.raises(StopErrors) as info:
            run_call(parent.stopService)
    assert info.value.names == ["d", "b"]
    assert [e for e in journal if e.startswith("stop")] == [
        "stop d",
        "stop-begin c", "stop-end c",
        "stop-begin b", "stop-fail b",
        "stop-begin a", "stop-end a",
    ]
    failed = [r for r in caplog.records if r.name == "corral.service"]
    assert len(failed) == 2
    assert all(isinstance(r.exc_info[1], Boom) for r in failed)


# -- Application and supervision settings -----------------------------------


def test_application():
    app = Application("shop")
    assert app.name == "shop"
    assert isinstance(app, MultiService)
    assert Application().name is None
    web = Service()
    web.setName("web")
    web.setServiceParent(app)
    assert app.getServiceNamed("web") is web
    assert web.parent is app


def test_supervise_stores_settings():
    service = Service()
    assert service.supervision == {}
    assert service.supervise(restart="always", numprocs=2) is service
    service.supervise(after=["db"], numprocs=3)
    assert service.supervision == {"restart": "always", "numprocs": 3, "after": ["db"]}


def test_supervise_on_a_subclass_that_skipped_init():
    class Bare(Service):
        def __init__(self):  # does not call super().__init__()
            pass

    bare = Bare()
    bare.supervise(stop_timeout=5)
    assert bare.supervision == {"stop_timeout": 5}
    assert Service().supervision == {}  # not shared between instances


def test_a_subclass_that_ignores_the_base_start_still_starts_every_child():
    # Written the usual Twisted way: call the base, ignore its result.
    import asyncio

    from corral.workers.runtimes import aio

    journal = []

    class Slow(Service):
        async def startService(self):
            super().startService()
            await asyncio.sleep(0.05)
            journal.append("slow")

    class After(Service):
        def startService(self):
            super().startService()
            journal.append("after")

    class Mine(MultiService):
        def startService(self):
            MultiService.startService(self)
            journal.append("mine")

    tree = Mine()
    Slow().setServiceParent(tree)
    After().setServiceParent(tree)

    async def start():
        await aio._start(tree, privileged=False)
        return list(journal)

    assert asyncio.run(start()) == ["mine", "slow", "after"]


def test_a_copy_is_not_running_and_application_takes_uid_gid():
    import copy
    import pickle

    from corral.service import Application

    service = Service()
    service.startService()
    assert copy.copy(service).running is False
    assert pickle.loads(pickle.dumps(service)).running is False and service.running
    app = Application("app", uid=1000, gid=1001)
    mine = Service().supervise(user=0)
    mine.setServiceParent(app)
    other = Service()
    other.setServiceParent(app)
    assert mine.supervision == {"user": 0, "group": 1001}
    assert other.supervision == {"user": 1000, "group": 1001}
    assert Application("plain").uid is None


def test_remove_service_of_a_stranger_raises_value_error_as_twisted():
    with pytest.raises(ValueError, match="not a child"):
        MultiService().removeService(Service())


def test_a_corral_service_may_return_a_deferred():
    import asyncio

    from twisted.internet import defer

    from corral.workers.runtimes import aio

    journal = []

    class Deferring(Service):
        def startService(self):
            super().startService()
            d = defer.Deferred()
            asyncio.get_running_loop().call_later(0.02, d.callback, None)
            return d.addCallback(lambda _: journal.append("deferred"))

    class After(Service):
        def startService(self):
            journal.append("after")

    tree = MultiService()
    Deferring().setServiceParent(tree)
    After().setServiceParent(tree)

    async def start():
        await aio._start(tree, privileged=False)

    asyncio.run(start())
    assert journal == ["deferred", "after"]


def test_multiservice_stop_resolves_when_every_child_has_stopped():
    journal = []
    parent = tree(journal, ("a", "sync", "coro"), ("b", "sync", "future"), ("c", "sync", "sync"))
    parent.startService()

    async def main():
        stopped = parent.stopService()
        assert inspect.isawaitable(stopped)
        assert "stop-end a" not in journal  # a's stop waits for b's
        await stopped
        return list(journal)

    seen = asyncio.run(main())
    assert [e for e in seen if e.startswith("stop")] == [
        "stop c", "stop-begin b", "stop-end b", "stop-begin a", "stop-end a"]


def test_nested_sync_stop_errors_reach_the_root_and_the_others_still_stop(caplog):
    journal = []
    root = MultiService()
    tree(journal, ("a", "sync", "sync"), parent=root)
    inner = tree(journal, ("b", "sync", "raise"), ("c", "sync", "sync"))
    inner.setServiceParent(root)
    tree(journal, ("d", "sync", "sync"), parent=root)
    root.startService()
    with caplog.at_level(logging.ERROR, logger="corral.service"):
        stopped = root.stopService()
    assert journal[-4:] == ["stop d", "stop c", "stop b", "stop a"]
    with pytest.raises(StopErrors):
        run(stopped)


def test_remove_service_of_a_named_stranger_raises_key_error_as_twisted():
    stranger = Service()
    stranger.setName("web")
    with pytest.raises(KeyError) as info:
        MultiService().removeService(stranger)
    assert "'web'" in str(info.value) and "not a child" in str(info.value)


def test_disown_and_remove_return_the_stop_as_twisted():
    parent = MultiService()
    child = Service()
    child.setServiceParent(parent)
    assert child.disownServiceParent() is None  # parent not running: nothing to stop
    assert child.parent is None and list(parent) == []
    child.setServiceParent(parent)
    parent.startService()
    assert child.running
    assert parent.removeService(child) is None and not child.running  # a plain stop


def test_an_async_corral_service_can_await_a_deferred():
    from twisted.internet import defer

    journal = []

    class Waits(Service):
        async def startService(self):
            super().startService()
            d = defer.Deferred()
            asyncio.get_running_loop().call_later(0.01, d.callback, "loaded")
            journal.append(await d)
            await asyncio.sleep(0)  # asyncio's own awaitables still work beside it
            failing = defer.Deferred()
            asyncio.get_running_loop().call_soon(failing.errback, ValueError("no db"))
            try:
                await failing
            except ValueError as exc:
                journal.append(f"failed: {exc}")
            journal.append(await defer.succeed("already"))

    tree_ = MultiService()
    Waits().setServiceParent(tree_)
    helpers.Recorder("after", journal, "sync", "sync").setServiceParent(tree_)
    run_call(tree_.startService)
    assert journal == ["loaded", "failed: no db", "already", "start after"]


def test_a_cancelled_start_reaches_the_coroutine_awaiting_a_deferred():
    from twisted.internet import defer

    seen = []

    class Waits(Service):
        async def startService(self):
            try:
                await defer.Deferred()  # never fires
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise

    async def main():
        task = asyncio.ensure_future(as_awaitable(Waits().startService()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["cancelled"]


def test_a_deferred_list_is_awaited_as_a_deferred():
    from twisted.internet import defer

    d = defer.Deferred()
    both = defer.DeferredList([d, defer.succeed(2)])

    async def main():
        pending = as_awaitable(both)
        asyncio.get_running_loop().call_soon(d.callback, 1)
        return await pending

    assert asyncio.run(main()) == [(True, 1), (True, 2)]
