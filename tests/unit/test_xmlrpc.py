"""supervisord's structures, faults, log slices and access rules, without a master."""

import asyncio
import base64
import hashlib
import os
import pwd
import signal
import time
import xmlrpc.client
from dataclasses import replace

import pytest

from corral.errors import ConfigError, CorralError
from corral.frontends import xmlrpc_http as http
from corral.frontends.httpwire import HttpError
from corral.frontends.xmlrpc import XMLRPCHandler, check_access
from corral.frontends.xmlrpc_methods import XMLRPCInterface
from corral.frontends.xmlrpc_structs import (
    Faults, RPCError, parse_signal, process_info, read_slice, split_namespec, state_of,
    tail_slice)
from corral.spec import Config, MasterSpec, ServiceSpec
from corral.supervisor.report import Status
from tests.helpers import run

BASE = Status(name="web", service="web", state="RUNNING", pid=42, uptime=3725.4,
              since=1000.0, restarts=0, last_exit=None, exit_code=None, exit_signal=None,
              spawn_error=None, cpu_percent=None, rss=None, reason="running",
              retry_in=None, status_text=None, health=None, log_error=None)
WEB = ("web", "web")


def test_state_codes_are_supervisords():
    assert {s: state_of(s)[0] for s in ("STOPPED", "STARTING", "RUNNING", "BACKOFF",
                                        "STOPPING", "EXITED", "FATAL")} == {
        "STOPPED": 0, "STARTING": 10, "RUNNING": 20, "BACKOFF": 30, "STOPPING": 40,
        "EXITED": 100, "FATAL": 200}
    assert state_of("WAITING") == (10, "STARTING")
    assert state_of("FAILING") == (40, "STOPPING")
    assert state_of("SOMETHING NEW") == (1000, "UNKNOWN")


def test_process_info_running_has_pid_and_uptime():
    info = process_info(BASE, ("web", "web"), now=10_000.0)
    assert info["description"] == "pid 42, uptime 1:02:05"
    assert (info["name"], info["group"], info["state"], info["statename"]) == (
        "web", "web", 20, "RUNNING")
    assert info["start"] == int(10_000.0 - 3725.4) and info["stop"] == 0
    assert set(info) == {"name", "group", "start", "stop", "now", "state", "statename",
                         "spawnerr", "exitstatus", "logfile", "stdout_logfile",
                         "stderr_logfile", "pid", "description"}
    xmlrpc.client.dumps((info,))  # marshallable: no None anywhere


def test_process_info_of_other_states():
    never = replace(BASE, state="STOPPED", pid=None, uptime=None, since=None)
    assert process_info(never, WEB, 10.0)["description"] == "Not started"
    assert process_info(never, WEB, 10.0)["pid"] == 0
    stopped = replace(never, since=1_700_000_000.0, last_exit="SIGTERM", exit_code=None)
    assert process_info(stopped, WEB, 1.0)["description"] == time.strftime(
        "%b %d %I:%M %p", time.localtime(1_700_000_000))
    fatal = replace(never, state="FATAL", spawn_error="no such file", last_exit="x",
                    exit_code=2)
    info = process_info(fatal, WEB, 1.0)
    assert (info["description"], info["spawnerr"], info["exitstatus"]) == (
        "no such file", "no such file", 2)
    sub = replace(BASE, name="work:3", service="work", state="STOPPING")
    info = process_info(sub, ("work", "3"), 1.0)
    assert (info["name"], info["group"], info["description"], info["state"]) == (
        "3", "work", "", 40)


def test_names():
    assert split_namespec("web") == ("web", "web")
    assert split_namespec("work:3") == ("work", "3")
    assert split_namespec("work:*") == ("work", None)


def test_signals():
    assert parse_signal("HUP") is signal.SIGHUP
    assert parse_signal("sigusr1") is signal.SIGUSR1
    assert parse_signal("15") is signal.SIGTERM
    assert parse_signal(9) is signal.SIGKILL
    for bad in ("NOPE", 999, "", True, 1.5):
        with pytest.raises(RPCError) as err:
            parse_signal(bad)
        assert err.value.code == Faults.BAD_SIGNAL


def test_read_slice_is_supervisords_readfile():
    data = b"0123456789"
    assert read_slice(data, -4, 0) == b"6789"
    assert read_slice(data, -40, 0) == data
    assert read_slice(data, 2, 3) == b"234"
    assert read_slice(data, 8, 0) == b"89"
    for offset, length in ((-4, 2), (0, -1)):
        with pytest.raises(RPCError) as err:
            read_slice(data, offset, length)
        assert err.value.text == "BAD_ARGUMENTS"


def test_tail_slice_is_supervisords_tailfile():
    data = b"0123456789"
    assert tail_slice(data, 0, 4) == ["6789", 10, True]  # grew past: the newest, overflow
    assert tail_slice(data, 8, 4) == ["6789", 10, False]
    assert tail_slice(data, 10, 4) == ["", 10, False]  # nothing new
    assert tail_slice(b"", 0, 100) == ["", 0, False]


def test_passwords_and_basic_auth():
    assert http.check_password("pw", "pw") and not http.check_password("pw", "px")
    sha = "{SHA}" + hashlib.sha1(b"pw").hexdigest()
    assert http.check_password("pw", sha) and not http.check_password(sha, sha)

    def header(text):
        return {"authorization": "Basic " + base64.b64encode(text.encode()).decode()}

    assert http.authorized({}, None, None)
    assert http.authorized(header("u:pw"), "u", sha)
    assert not http.authorized(header("u:nope"), "u", sha)
    assert not http.authorized(header("v:pw"), "u", sha)
    assert not http.authorized({}, "u", sha)
    assert not http.authorized({"authorization": "Basic !!!"}, "u", sha)


def test_access_rules():
    check_access(("unix:///tmp/x.sock", "tcp://127.0.0.1:9001", "tcp://[::1]:9001"), None, None)
    check_access(("tcp://0.0.0.0:9001",), "u", "p")
    for address in ("tcp://0.0.0.0:9001", "tcp://:9001", "tcp://example.com:9001"):
        with pytest.raises(CorralError, match="not a loopback address"):
            check_access((address,), None, None)
    with pytest.raises(CorralError, match="go together"):
        check_access(("unix:///x",), "u", None)


def test_config_keys(tmp_path):
    from corral import config

    path = tmp_path / "c.toml"
    path.write_text('[corral]\nxmlrpc = ["unix://x.sock", "127.0.0.1:9001", "*:9002", ":9003"]\n'
                    'xmlrpc_username = "u"\nxmlrpc_password = "p"\n'
                    '[services.a]\ncommand = ["true"]\n')
    master = config.load(str(path)).master
    assert master.xmlrpc == (f"unix://{tmp_path}/x.sock", "tcp://127.0.0.1:9001", "tcp://:9002",
                             "tcp://:9003")
    assert (master.xmlrpc_username, master.xmlrpc_password) == ("u", "p")
    for bad in ('"9001"', '"host:99999"', '"host:"', "42", '["unix://a", 3]'):
        path.write_text(f"[corral]\nxmlrpc = {bad}\n[services.a]\ncommand = [\"true\"]\n")
        with pytest.raises(ConfigError, match="xmlrpc"):
            config.load(str(path))


class FakeOps:
    """Enough of api.Operations for the marshalling: one RUNNING instance."""

    shutting_down = False
    config = Config("x.toml", MasterSpec(), (ServiceSpec("web", command=("true",)),))

    def status(self, names=(), usage=True):
        if names and not set(names) <= {"web", "all"}:
            from corral.errors import ControlError

            raise ControlError("no_such_service", "no")
        return [BASE]

    def version(self):
        return {"pid": 7}

    def instance_names(self, service):
        return {"web": ["web"]}[service]


def call(body):
    handler = XMLRPCHandler(FakeOps(), log=print)
    return run(handler.xmlrpc(body))


def test_marshalling_values_and_faults():
    reply = call(xmlrpc.client.dumps(("web",), "supervisor.getProcessInfo").encode())
    (info,), _ = xmlrpc.client.loads(reply)
    assert info["description"].startswith("pid 42, uptime")
    for params, method, code in (((), "supervisor.nosuch", 1),
                                 ((5,), "supervisor.getProcessInfo", 2),
                                 ((), "supervisor.getProcessInfo", 2),
                                 (("x",), "supervisor.getProcessInfo", 10),
                                 (("web", "NOPE"), "supervisor.signalProcess", 11),
                                 ((True,), "system.methodHelp", 2)):
        with pytest.raises(xmlrpc.client.Fault) as fault:
            xmlrpc.client.loads(call(xmlrpc.client.dumps(params, method).encode()))
        assert fault.value.faultCode == code, method
    for body in (b"", b"<methodCall>", b"<a/>", b"\xff\xfe",
                 b"<methodCall><params/></methodCall>"):
        with pytest.raises(HttpError) as err:
            call(body)
        assert err.value.status == 400


def test_shutdown_state_refuses_supervisor_methods():
    ops = FakeOps()
    ops.shutting_down = True
    interface = XMLRPCInterface(ops)
    with pytest.raises(RPCError) as err:
        run(interface.call("supervisor.getAllProcessInfo", ()))
    assert err.value.code == Faults.SHUTDOWN_STATE
    assert "system.listMethods" in run(interface.call("system.listMethods", ()))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_the_unix_sockets_go_to_the_uid_the_master_becomes(tmp_path):
    from corral.frontends.xmlrpc import XMLRPCServer

    nobody = pwd.getpwnam("nobody")
    server = XMLRPCServer(FakeOps(), (), log=print)
    server.paths = [str(tmp_path / "x.sock")]
    open(server.paths[0], "w").close()
    server.hand_over(nobody.pw_uid, None)
    st = os.stat(server.paths[0])
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, os.getgid())


def test_a_refused_verb_is_a_supervisord_fault():
    from corral.errors import E_SHUTTING_DOWN, ControlError

    class Refusing(FakeOps):
        def states(self, names=()):
            return {"web": "STOPPED"}

        async def start(self, names, wait=True):
            raise ControlError(E_SHUTTING_DOWN, "start: the master is shutting down")

    ops = Refusing()
    ops.status = lambda names=(), usage=True: [replace(BASE, state="STOPPED", pid=None, uptime=None)]
    with pytest.raises(RPCError) as err:
        run(XMLRPCInterface(ops).call("supervisor.startProcess", ("web",)))
    assert (err.value.code, err.value.text) == (
        Faults.SHUTDOWN_STATE, "SHUTDOWN_STATE: start: the master is shutting down")


def test_names_are_supervisords_for_numprocs_and_group_sections(tmp_path):
    from corral.frontends.xmlrpc_names import Names, group_diff
    from corral.loaders import load

    conf = tmp_path / "supervisord.conf"
    programs = ("[program:web]\ncommand=sleep 1\nnumprocs=2\n"
                "process_name=%(program_name)s_%(process_num)d\n"
                "[program:db]\ncommand=sleep 1\npriority=5\n[program:cache]\ncommand=sleep 1\n")
    conf.write_text(programs + "[group:shop]\nprograms=db,cache\npriority=10\n")
    old = Names(load(str(conf)))
    assert old.where == {"db": ("shop", "db"), "cache": ("shop", "cache"),
                         "web_0": ("web", "web_0"), "web_1": ("web", "web_1")}
    assert old.instance[("web", "web_1")] == "web_1" and ("web_1", "web_1") not in old.instance
    assert [old.namespec(i) for i in old.where] == ["shop:db", "shop:cache", "web:web_0",
                                                    "web:web_1"]
    assert (old.members["shop"], old.priority["shop"], old.process_priority["db"]) == (
        ["db", "cache"], 10, 5)
    out, err = old.logfiles["web_1"]  # AUTO files, as getProcessInfo names them
    assert out.endswith("/web_1-stdout---supervisor.log") and err.endswith("-stderr---supervisor.log")
    ops = FakeOps()
    ops.config = load(str(conf))
    assert run(XMLRPCInterface(ops).call("supervisor.getIdentification", ())) == "supervisor"
    conf.write_text(programs.replace("numprocs=2", "numprocs=1").replace("sleep 1\npriority",
                                                                         "sleep 2\npriority")
                    + "[program:new]\ncommand=sleep 1\n[group:shop]\nprograms=db,cache\n")
    new = Names(load(str(conf)))
    services = {"added": ["web_0", "new"], "removed": ["web_1"], "changed": ["db"]}
    assert group_diff(old, new, services) == (["new"], ["shop", "web"], [])
    assert group_diff(old, old, {"added": [], "removed": [], "changed": []}) == ([], [], [])
    toml = Config("x.toml", MasterSpec(), (ServiceSpec("work", command=("true",), numprocs=2),))
    assert Names(toml).where == {"work:0": ("work", "0"), "work:1": ("work", "1")}


def test_each_supervisord_listener_has_its_own_pair(tmp_path):
    from corral.loaders import load
    from corral.serve import xmlrpc_settings

    conf = tmp_path / "supervisord.conf"
    conf.write_text("[unix_http_server]\nfile = %(here)s/s.sock\n"
                    "[inet_http_server]\nport = 9001\nusername = u\npassword = p\n"
                    "[program:web]\ncommand = sleep 1\n")
    assert xmlrpc_settings(load(str(conf)).master) == [
        (f"unix://{tmp_path}/s.sock", None, None), ("tcp://127.0.0.1:9001", "u", "p")]
    toml = MasterSpec(xmlrpc=("unix:///x.sock", "tcp://127.0.0.1:1"), xmlrpc_username="a",
                      xmlrpc_password="b")
    assert xmlrpc_settings(toml) == [("unix:///x.sock", "a", "b"), ("tcp://127.0.0.1:1", "a", "b")]


def test_a_reload_takes_the_files_groups_and_keeps_the_listeners(tmp_path):
    from corral.loaders import load

    conf = tmp_path / "supervisord.conf"
    conf.write_text("[unix_http_server]\nfile = %(here)s/a.sock\n[program:web]\ncommand = sleep 1\n")
    old = load(str(conf)).master
    conf.write_text("[unix_http_server]\nfile = %(here)s/b.sock\n[program:web]\ncommand = sleep 1\n"
                    "numprocs = 2\nprocess_name = w%(process_num)d\npriority = 3\n")
    new = load(str(conf)).master
    kept = old.reloaded(new).xmlrpc
    assert kept.groups == (("web", 3, ("w0", "w1")),) and dict(kept.priorities)["w1"] == 3
    assert kept.unix.path == str(tmp_path / "a.sock")  # the master's listeners stay
    toml = MasterSpec(xmlrpc=("unix:///x.sock",))
    assert toml.reloaded(MasterSpec(xmlrpc=("unix:///y.sock",))) is toml


def test_names_follow_a_scale_of_a_toml_service():
    from corral.frontends.xmlrpc_names import Names

    config = Config("x.toml", MasterSpec(), (ServiceSpec("web", command=("true",), numprocs=2),))
    assert Names(config).members["web"] == ["web:0", "web:1"]        # the config's count
    scaled = Names(config, lambda service: ["web:0", "web:1", "web:2"])
    assert scaled.members["web"] == ["web:0", "web:1", "web:2"]
    assert scaled.of("web:2") == ("web", "2") and scaled.namespec("web:2") == "web:2"
