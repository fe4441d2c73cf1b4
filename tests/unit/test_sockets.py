"""supervisor/sockets.py without a master: URLs, the fd shuffle of socket
activation in a forked child, and the bootstrap keeping inherited sockets."""

import json
import os
import socket

import pytest

from corral.supervisor import sockets
from corral.workers import bootstrap
from tests.helpers import free_port

RESULT_FD = 200  # the child's end of the result pipe: out of every body's way


def in_child(body):
    """Run body() in a forked child; return what it returned (JSON), or raise."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            os.close(r)
            os.dup2(w, RESULT_FD)
            os.close(w)
            w = RESULT_FD
            result = {"ok": body()}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            result = {"error": repr(exc)}
        try:
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    result = json.loads(data)
    assert "error" not in result, result["error"]
    return result["ok"]


def test_parse_normalises_and_names():
    assert sockets.parse("tcp://*:80") == sockets.Endpoint("tcp", "", 80, url="tcp://:80")
    v6 = sockets.parse("udp://[::1]:53#dns")
    assert (v6.kind, v6.host, v6.port, v6.name, v6.url) == ("udp", "::1", 53, "dns",
                                                            "udp://[::1]:53#dns")
    assert v6.fd_name("svc") == "dns" and sockets.parse("tcp://:1").fd_name("svc") == "svc"
    assert sockets.parse("unix://a/b.sock", "/srv").path == "/srv/a/b.sock"
    assert sockets.parse("unix://@x").path == "\0x"
    with pytest.raises(ValueError, match="at most 107 bytes"):
        sockets.parse("unix:///" + "x" * 120)


def test_activation_moves_overlapping_fds_into_place_and_sets_listen_vars():
    a, b = socket.socket(), socket.socket()
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    want = [a.getsockname()[1], b.getsockname()[1]]

    def body():
        # The worst case: the fd for 3 sits on 4 and the one for 4 on 3.
        os.dup2(a.fileno(), 4)
        os.dup2(b.fileno(), 3)
        activation = sockets.Activation([(4, "first"), (3, "second")], {"KEEP": "1"})
        assert activation.env is None and activation.pass_fds == (3, 4)
        activation.in_child()
        got = [socket.socket(fileno=os.dup(fd)).getsockname()[1] for fd in (3, 4)]
        return {"ports": got, "inheritable": [os.get_inheritable(3), os.get_inheritable(4)],
                "env": {k: os.environ.get(k) for k in
                        ("KEEP", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "HOME")},
                "pid": os.getpid()}

    try:
        got = in_child(body)
    finally:
        a.close()
        b.close()
    assert got["ports"] == want and got["inheritable"] == [True, True]
    assert got["env"] == {"KEEP": "1", "LISTEN_FDS": "2", "LISTEN_PID": str(got["pid"]),
                          "LISTEN_FDNAMES": "first:second", "HOME": None}


def test_activation_without_fds_changes_nothing():
    activation = sockets.Activation([], {"A": "1"})
    assert activation.env == {"A": "1"} and activation.pass_fds == ()
    with activation.reserved():
        pass
    assert in_child(lambda: activation.in_child() or sorted(os.environ) == sorted(os.environ))


def test_reserved_fills_holes_in_the_target_range_for_popen_only():
    def body():
        if _is_open(4):
            os.close(4)
        activation = sockets.Activation([(0, "x"), (1, "y")], {})
        with activation.reserved():
            inside = _is_open(4)
        return [inside, _is_open(4)]

    assert in_child(body) == [True, False]


def test_close_other_fds_keeps_the_inherited_sockets():
    def body():
        keep = socket.socket()
        other = socket.socket()
        bootstrap.close_other_fds([keep.fileno(), 1, RESULT_FD])
        return [_is_open(keep.fileno()), _is_open(other.fileno())]

    assert in_child(body) == [True, False]


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_held_sockets_handed_over_are_adopted_as_they_were(tmp_path):
    """corral upgrade: a keeper's sockets, by fd number, held again by a new
    keeper from the new config's specs: the same sockets (no bind), the same
    names; a tree's servers get theirs in tree order, so nothing binds."""
    from corral.service import MultiService
    from corral.services.internet import TCPServer, UNIXServer
    from corral.spec import ServiceSpec

    def tree():
        root = MultiService()
        TCPServer(0, lambda: None, interface="127.0.0.1").setServiceParent(root)
        UNIXServer(str(tmp_path / "u.sock"), lambda: None).setServiceParent(root)
        return root

    command = ServiceSpec(name="c", command=("true",),
                          sockets=(f"tcp://127.0.0.1:{free_port()}#web",))
    python = ServiceSpec(name="p", tree=tree())
    old = sockets.SocketKeeper()
    passed = old.prepare(command)
    old.prepare(python)
    handed = old.hand_over()
    addresses = {name: [s.socket.getsockname() for s in held.servers]
                 for name, held in old.held.items()}
    for held in old.held.values():  # as at the exec: the old image's objects never close them
        for server in held.servers:
            server.socket.detach()
    new = sockets.SocketKeeper()
    new.adopt(command, handed["c"])
    new.adopt(ServiceSpec(name="p", tree=tree()), handed["p"])  # a fresh tree: the new image's
    assert new.held["c"].fds() == passed == [(handed["c"][0], "web")]
    for name in ("c", "p"):
        assert [s.socket.fileno() for s in new.held[name].servers] == handed[name]
        assert [s.socket.getsockname() for s in new.held[name].servers] == addresses[name]
    with pytest.raises(ValueError, match="1 socket\\(s\\) held, 2 in its tree"):
        sockets.SocketKeeper().adopt(ServiceSpec(name="p", tree=tree()), handed["p"][:1])
    new.close_all()
