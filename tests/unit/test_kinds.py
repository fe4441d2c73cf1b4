"""The kinds of service as objects (corral/kinds.py, supervisor/kinds.py):
each fact the master asks about a kind, for a command and a Python tree."""

import pytest

from corral import kinds
from corral.errors import EXIT_WORKER_BOOT
from corral.probes import parse_tcp
from corral.service import MultiService, Service
from corral.spec import ServiceSpec
from corral.supervisor import kinds as runners
from corral.core.policy import Exit

CMD = ServiceSpec(name="c", command=("/bin/true",))
TREE = ServiceSpec(name="p", tree=Service())


def test_spec_kind_follows_what_runs_unless_given():
    assert CMD.kind is kinds.COMMAND
    assert TREE.kind is kinds.PYTHON_TREE
    other = ServiceSpec(name="p", kind=kinds.COMMAND)
    assert other.kind is kinds.COMMAND
    assert ServiceSpec(name="c", command=("/bin/true",)) == CMD


@pytest.mark.parametrize("ready, command_waits", [
    (None, False), (("notify",), True), (("tcp", parse_tcp(80)), False), (("seconds", 1.0), False),
])
def test_who_waits_for_a_ready_message(ready, command_waits):
    command = ServiceSpec(name="c", command=("/bin/true",), ready=ready)
    tree = ServiceSpec(name="p", tree=Service(), ready=ready)
    assert command.kind.awaits_ready_message(command) is command_waits
    assert tree.kind.awaits_ready_message(tree) is True  # startService's READY=1, always
    # Without `ready`, a command must stay up 1 s to count as started; a
    # worker's READY=1 says it started.
    assert command.kind.start_seconds == 1.0 and tree.kind.start_seconds == 0.0
    assert command.kind.waiting_for == "READY=1" and tree.kind.waiting_for == "startService"


def test_the_notify_socket_and_the_readiness_environment():
    plain = CMD
    notify = ServiceSpec(name="c", command=("/bin/true",), ready=("notify",))
    watched = ServiceSpec(name="c", command=("/bin/true",), watchdog=2.5)
    tree = ServiceSpec(name="p", tree=Service(), watchdog=2.5)
    assert [s.kind.needs_notify_socket(s) for s in (plain, notify, watched, tree)] == \
        [False, True, True, False]
    assert plain.kind.environment(plain, "@sock") == {}
    assert notify.kind.environment(notify, "@sock") == {"NOTIFY_SOCKET": "@sock"}
    assert notify.kind.environment(notify, None) == {}  # no socket: nothing to point at
    assert watched.kind.environment(watched, "@sock") == {"NOTIFY_SOCKET": "@sock",
                                                          "WATCHDOG_USEC": "2500000"}
    assert tree.kind.environment(tree, "@sock") == {"CORRAL_WATCHDOG_USEC": "2500000"}
    assert TREE.kind.environment(TREE) == {}
    names = set().union(*(s.kind.environment(s, "@x") for s in (notify, watched, tree)))
    assert names <= set(kinds.READINESS_VARS)


def test_only_a_worker_exit_code_means_it_cannot_boot():
    boot = Exit(code=EXIT_WORKER_BOOT)
    assert TREE.kind.cannot_boot(boot) and not CMD.kind.cannot_boot(boot)
    assert not TREE.kind.cannot_boot(Exit(code=1)) and not TREE.kind.cannot_boot(Exit(signal=9))


def test_how_a_kind_reads_in_the_tree():
    root = MultiService()
    root.setName("root")
    Service().setServiceParent(root)
    spec = ServiceSpec(name="p", tree=root)
    assert spec.kind.describe(spec) == {
        "kind": "python", "class": "corral.service.MultiService",
        "children": [{"name": None, "class": "corral.service.Service", "children": []}]}
    assert CMD.kind.describe(CMD) == {"kind": "command", "class": None, "children": []}


def test_each_kind_has_its_masters_half():
    assert isinstance(runners.of(CMD), runners.CommandKind)
    assert isinstance(runners.of(TREE), runners.PythonTreeKind)
    assert runners.of(CMD).bind(CMD) is None  # no sockets listed: nothing to hold
    assert runners.of(TREE).bind(ServiceSpec(name="p")) is None


def test_what_runs_and_its_sockets_as_check_shows_them():
    from corral.services.internet import TCPServer

    root = MultiService()
    TCPServer(8000, lambda: None).setServiceParent(root)
    tree = ServiceSpec(name="p", tree=root)
    command = ServiceSpec(name="c", command=("/bin/true", "-x"), sockets=("tcp://:80",))
    assert command.kind.what_runs(command) == ["/bin/true", "-x"]
    assert command.kind.sockets(command) == ["tcp://:80"]
    assert tree.kind.what_runs(tree) == "corral.service.MultiService"
    assert tree.kind.sockets(tree) == ["TCPServer *:8000"]


def test_built_in_servers_are_named_where_users_import_them():
    import asyncio

    import corral
    from corral.services import internet

    server = corral.TCPServer(0, asyncio.Protocol)
    assert kinds.class_name(server) == "corral.services.internet.TCPServer"
    assert kinds.class_name(internet.UDPServer(0, asyncio.DatagramProtocol)) == \
        "corral.services.internet.UDPServer"
