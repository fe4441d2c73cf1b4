"""corral.config.load: TOML and Python configs, and every error they can give."""

import os
import signal
import sys
import textwrap

import pytest

from corral import kinds
from corral.config import load, tree_fingerprint
from corral.errors import ConfigError
from corral.service import Application, MultiService, Service
from corral.spec import SERVICE_DEFAULTS, Config, MasterSpec

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "configs")
FIXTURES = os.path.abspath(FIXTURES)


@pytest.fixture(autouse=True)
def isolate_imports(tmp_path):
    """load() leaves the config folder on sys.path and modules imported; undo it.

    Only the modules loaded from a test's folder (and the config module) are
    dropped, so each test imports its own files afresh; never stdlib or corral.
    """
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    folders = (str(tmp_path) + os.sep, FIXTURES + os.sep)
    for name in set(sys.modules) - modules:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if name == "__corral_config__" or origin.startswith(folders):
            del sys.modules[name]


def service_of(config, name):
    return {spec.name: spec for spec in config.services}[name]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def toml(tmp_path, text, name="corral.toml"):
    return write(tmp_path, name, text)


def error(path):
    """The ConfigError load(path) raises, after checking it is one line."""
    with pytest.raises(ConfigError) as info:
        load(path)
    err = info.value
    assert "\n" not in str(err)
    assert str(path) in str(err)
    return err


def service_error(tmp_path, body, service="svc", key=None, name="corral.toml"):
    """Load a TOML service table `body` for `svc`; return the ConfigError."""
    path = toml(tmp_path, f'[services.{service}]\n' + textwrap.dedent(body), name)
    err = error(path)
    assert err.service == service
    assert f"service {service!r}" in str(err)
    if key is not None:
        assert err.key == key
        assert f"key {key!r}" in str(err)
    return err


TRUE = "command = ['true']\n"


# -- file type and reading ---------------------------------------------------

class TestFile:
    def test_unknown_extension(self, tmp_path):
        err = error(write(tmp_path, "corral.yaml", "a: 1"))
        assert "'.yaml'" in err.message and ".toml" in err.message

    def test_no_extension(self, tmp_path):
        err = error(write(tmp_path, "corralfile", ""))
        assert "no extension" in err.message

    def test_missing(self, tmp_path):
        err = error(tmp_path / "missing.toml")
        assert "cannot read" in err.message

    def test_directory(self, tmp_path):
        (tmp_path / "dir.toml").mkdir()
        assert "cannot read" in error(tmp_path / "dir.toml").message

    @pytest.mark.skipif(os.geteuid() == 0, reason="root reads anything")
    def test_unreadable(self, tmp_path):
        path = toml(tmp_path, "[services.a]\ncommand = 'true'\n")
        path.chmod(0)
        assert "cannot read" in error(path).message

    def test_path_made_absolute(self, tmp_path, monkeypatch):
        toml(tmp_path, "[services.a]\ncommand = 'true'\n")
        monkeypatch.chdir(tmp_path)
        cfg = load("corral.toml")
        assert cfg.path == str(tmp_path / "corral.toml")
        assert cfg.services[0].source == cfg.path


# -- TOML: the happy paths -------------------------------------------------

class TestTomlHappy:
    def test_command_string_and_list(self, tmp_path):
        path = toml(tmp_path, """
            [services.a]
            command = "sh -c 'echo hi there'"
            [services.b]
            command = ["sh", "-c", "echo $HOME"]
        """)
        cfg = load(path)
        assert isinstance(cfg, Config)
        a, b = cfg.services
        sh = os.path.realpath(os.path.abspath(a.command[0]))
        assert os.path.basename(sh) in ("sh", "dash", "bash", "busybox")
        assert os.path.isabs(a.command[0])
        assert a.command[1:] == ("-c", "echo hi there")  # shlex, never a shell
        assert b.command[1:] == ("-c", "echo $HOME")
        assert isinstance(b.command, tuple)
        assert a.kind is kinds.COMMAND and a.source == str(path)
        assert a.factory is None and a.tree is None

    def test_defaults(self, tmp_path):
        spec = load(toml(tmp_path, "[services.a]\n" + TRUE)).services[0]
        for key, default in SERVICE_DEFAULTS.items():
            if key not in ("ready", "start_seconds"):
                assert getattr(spec, key) == default, key
        # A command counts as started once it stayed up 1 s (the kind's).
        assert spec.ready == ("seconds", 1.0) and spec.start_seconds == 1.0
        assert type(spec.stop_signal) is int
        assert load(toml(tmp_path, "[services.a]\n" + TRUE)).master == MasterSpec()

    def test_every_supervision_key(self, tmp_path):
        (tmp_path / "work").mkdir()
        spec = service_of(load(toml(tmp_path, """
            [services.db]
            command = "true"
            [services.a]
            command = "true"
            restart = "on-failure"
            exit_codes = [2, 0, 2]
            after = ["db", "db"]
            numprocs = 3
            stop_signal = "INT"
            stop_timeout = 2
            env = { B = "2", A = "1" }
            cwd = "work"
            autostart = false
            backoff_initial = 1
            backoff_factor = 1
            backoff_max = 1.5
            backoff_jitter = 0
            backoff_reset = 0.5
            max_restarts = 0
            restart_window = 60
        """)), "a")
        assert spec.restart == "on-failure"
        assert spec.exit_codes == (0, 2)
        assert spec.after == ("db",)
        assert spec.numprocs == 3
        assert spec.instance_names() == ["a:0", "a:1", "a:2"]
        assert spec.stop_signal == signal.SIGINT and type(spec.stop_signal) is int
        assert spec.stop_timeout == 2.0 and type(spec.stop_timeout) is float
        assert spec.env == (("A", "1"), ("B", "2"))
        assert spec.cwd == str(tmp_path / "work")
        assert spec.autostart is False
        assert (spec.backoff_initial, spec.backoff_factor, spec.backoff_max) == (1.0, 1.0, 1.5)
        assert (spec.backoff_jitter, spec.backoff_reset) == (0.0, 0.5)
        assert (spec.max_restarts, spec.restart_window) == (0, 60.0)
        hash(spec)

    @pytest.mark.parametrize("value, expected", [
        ('"TERM"', signal.SIGTERM), ('"SIGKILL"', signal.SIGKILL),
        ('"hup"', signal.SIGHUP), (str(int(signal.SIGUSR1)), signal.SIGUSR1),
    ])
    def test_stop_signal_forms(self, tmp_path, value, expected):
        spec = load(toml(tmp_path, f"[services.a]\n{TRUE}stop_signal = {value}\n")).services[0]
        assert spec.stop_signal == int(expected)

    def test_master_paths_resolve_against_config_folder(self, tmp_path, monkeypatch):
        monkeypatch.chdir("/")
        path = toml(tmp_path, """
            [corral]
            socket = "run/corral.sock"
            logfile = "../corral.log"
            log_dir = "/var/log/corral"
            [services.a]
            command = "true"
        """, name="etc/corral.toml")
        master = load(path).master
        assert master.socket == str(tmp_path / "etc" / "run" / "corral.sock")
        assert master.logfile == str(tmp_path / "corral.log")
        assert master.log_dir == "/var/log/corral"

    def test_default_socket_stays_relative(self, tmp_path):
        master = load(toml(tmp_path, "[corral]\nlogfile = 'x.log'\n[services.a]\n" + TRUE)).master
        assert master.socket == "corral.sock"
        assert master.log_dir is None

    def test_relative_program_against_config_folder(self, tmp_path, monkeypatch):
        script = write(tmp_path, "bin/run.sh", "#!/bin/sh\n")
        script.chmod(0o755)
        monkeypatch.chdir("/")
        spec = load(toml(tmp_path, "[services.a]\ncommand = './bin/run.sh --x'\n")).services[0]
        assert spec.command == (str(script), "--x")

    def test_relative_program_against_cwd(self, tmp_path):
        script = write(tmp_path, "work/bin/run", "#!/bin/sh\n")
        script.chmod(0o755)
        spec = load(toml(tmp_path, """
            [services.a]
            cwd = "work"
            command = ["bin/run"]
        """)).services[0]
        assert spec.command == (str(script),)

    def test_program_found_on_env_path(self, tmp_path):
        prog = write(tmp_path, "mybin/only-here", "#!/bin/sh\n")
        prog.chmod(0o755)
        spec = load(toml(tmp_path, f"""
            [services.a]
            command = "only-here arg"
            env = {{ PATH = "{tmp_path / 'mybin'}" }}
        """)).services[0]
        assert spec.command == (str(prog), "arg")

    def test_python_factory_with_args(self, tmp_path):
        cfg = load(os.path.join(FIXTURES, "factory.toml"))
        greeter, pair = cfg.services
        assert greeter.factory == "corral_fixture_factories:make_greeter"
        assert greeter.args == (("greeting", "hi"), ("ports", (8080, 8081)))
        kind, factory, args, code = greeter.fingerprint
        assert (kind, factory, args) == ("factory", greeter.factory, greeter.args)
        assert [part.split(":")[0] for part in code] == ["corral_fixture_factories"]
        assert greeter.tree.greeting == "hi"
        assert greeter.tree.ports == [8080, 8081]  # the factory gets TOML's own values
        assert greeter.restart == "on-failure"
        assert greeter.kind is not kinds.COMMAND
        assert isinstance(pair.tree, MultiService) and len(pair.tree) == 2
        assert pair.after == ("greeter",) and pair.args == ()
        assert cfg.master.log_dir == os.path.join(FIXTURES, "logs")
        hash(greeter)
        assert FIXTURES in sys.path

    def test_factory_nested_tables_and_dotted_attribute(self, tmp_path):
        write(tmp_path, "mod_nested.py", """
            from corral.service import Service
            class S(Service):
                pass
            class Makers:
                @staticmethod
                def make(**kw):
                    s = S()
                    s.kw = kw
                    return s
        """)
        spec = load(toml(tmp_path, """
            [services.a]
            service = "mod_nested:Makers.make"
            args = { opts = { z = 1, a = [1, 2] }, name = "x" }
        """)).services[0]
        assert spec.args == (("name", "x"), ("opts", (("a", (1, 2)), ("z", 1))))
        assert spec.tree.kw == {"opts": {"z": 1, "a": [1, 2]}, "name": "x"}
        hash(spec)

    def test_reload_compares_equal(self, tmp_path):
        path = toml(tmp_path, "[services.a]\ncommand = 'true'\nafter = []\n")
        assert load(path) == load(path)


# -- TOML: errors ------------------------------------------------------------

class TestTomlErrors:
    def test_syntax_error_has_line(self, tmp_path):
        path = toml(tmp_path, "[services.a]\ncommand = 'true'\nrestart = \n")
        err = error(path)
        assert err.line == 3
        assert f"{path}:3:" in str(err)
        assert "invalid TOML" in err.message and "at line" not in err.message

    def test_not_utf8(self, tmp_path):
        path = tmp_path / "corral.toml"
        path.write_bytes(b"[services.a]\ncommand = '\xff'\n")
        assert "UTF-8" in error(path).message

    def test_unknown_top_level_key(self, tmp_path):
        err = error(toml(tmp_path, "[service.a]\ncommand = 'true'\n"))
        assert err.key == "service" and "key 'service'" in str(err)
        assert "did you mean 'services'?" in err.message

    def test_no_services(self, tmp_path):
        assert "defines no services" in error(toml(tmp_path, "[corral]\n")).message

    def test_services_not_a_table(self, tmp_path):
        assert error(toml(tmp_path, "services = 1\n")).key == "services"

    def test_service_not_a_table(self, tmp_path):
        err = error(toml(tmp_path, "[services]\nweb = 1\n"))
        assert err.service == "web"

    def test_corral_not_a_table(self, tmp_path):
        assert error(toml(tmp_path, "corral = 'x'\n[services.a]\n" + TRUE)).key == "corral"

    def test_unknown_corral_key(self, tmp_path):
        err = error(toml(tmp_path, "[corral]\nsocekt = 'x'\n[services.a]\n" + TRUE))
        assert err.key == "socekt" and err.service is None
        assert "did you mean 'socket'?" in err.message

    def test_console_copy_is_decided_by_the_key_the_terminal_and_the_log_files(self, tmp_path):
        from corral.serve import console_copy

        def master(extra=""):
            return load(toml(tmp_path, f"[corral]\n{extra}\n[services.a]\n" + TRUE)).master

        assert master().console == "auto"
        assert console_copy(master(), tty=True) and console_copy(master(), tty=False)
        logged = master("logfile = 'c.log'")
        assert console_copy(logged, tty=True) and not console_copy(logged, tty=False)
        assert not console_copy(master("log_dir = 'logs'"), tty=False)
        assert console_copy(master("logfile = 'c.log'\nconsole = 'always'"), tty=False)
        assert not console_copy(master("console = 'never'"), tty=True)
        err = error(toml(tmp_path, "[corral]\nconsole = 'yes'\n[services.a]\n" + TRUE))
        assert err.key == "console" and "one of auto, always, never" in err.message

    def test_corral_path_not_string(self, tmp_path):
        err = error(toml(tmp_path, "[corral]\nlogfile = 3\n[services.a]\n" + TRUE))
        assert err.key == "logfile"

    @pytest.mark.parametrize("name", ["all", "corral", "a:b", "a b", "é", "a" * 201])
    def test_bad_service_names(self, tmp_path, name):
        err = error(toml(tmp_path, f'[services."{name}"]\n{TRUE}'))
        assert err.service == name and repr(name) in str(err)

    def test_neither_command_nor_service(self, tmp_path):
        err = service_error(tmp_path, "restart = 'never'\n")
        assert "'command'" in err.message and "'service'" in err.message

    def test_both_command_and_service(self, tmp_path):
        err = service_error(tmp_path, "command = 'true'\nservice = 'm:f'\n", key="service")
        assert "both" in err.message

    def test_args_without_service(self, tmp_path):
        service_error(tmp_path, "command = 'true'\nargs = {}\n", key="args")

    def test_unknown_key_suggests(self, tmp_path):
        err = service_error(tmp_path, TRUE + "restrat = 'never'\n", key="restrat")
        assert err.message == "unknown key 'restrat' (did you mean 'restart'?)"

    def test_unknown_key_without_suggestion(self, tmp_path):
        err = service_error(tmp_path, TRUE + "zzzzzz = 1\n", key="zzzzzz")
        assert err.message == "unknown key 'zzzzzz'"

    @pytest.mark.parametrize("value", ["[]", "''", "['']", "[1]", "3", "\"'unclosed\""])
    def test_bad_command_values(self, tmp_path, value):
        service_error(tmp_path, f"command = {value}\n", key="command")

    def test_program_not_on_path(self, tmp_path):
        err = service_error(tmp_path, "command = 'no-such-program-corral'\n", key="command")
        assert "not found on PATH" in err.message

    def test_program_not_on_env_path(self, tmp_path):
        # `true` is on the master's PATH but not on the service's own.
        err = service_error(tmp_path, f"command = 'true'\nenv = {{ PATH = '{tmp_path}' }}\n",
                            key="command")
        assert str(tmp_path) in err.message

    def test_relative_program_missing(self, tmp_path):
        err = service_error(tmp_path, "command = './nope'\n", key="command")
        assert str(tmp_path / "nope") in err.message

    def test_program_not_executable(self, tmp_path):
        write(tmp_path, "script.sh", "echo\n").chmod(0o644)
        err = service_error(tmp_path, "command = './script.sh'\n", key="command")
        assert "not executable" in err.message

    def test_program_is_directory(self, tmp_path):
        (tmp_path / "adir").mkdir()
        service_error(tmp_path, "command = './adir'\n", key="command")

    @pytest.mark.parametrize("key, value", [
        ("restart", "'sometimes'"), ("restart", "1"),
        ("exit_codes", "[]"), ("exit_codes", "0"), ("exit_codes", "[256]"),
        ("exit_codes", "[-1]"), ("exit_codes", "[true]"), ("exit_codes", "['0']"),
        ("log_max_bytes", "'10X'"), ("log_max_bytes", "-1"), ("log_max_bytes", "true"),
        ("after", "'db'"), ("after", "[1]"),
        ("numprocs", "0"), ("numprocs", "1.5"), ("numprocs", "true"), ("numprocs", "257"),
        ("stop_signal", "'NOPE'"), ("stop_signal", "9999"), ("stop_signal", "true"),
        ("stop_signal", "1.0"), ("stop_timeout", "-1"), ("stop_timeout", "'10'"),
        ("stop_timeout", "true"), ("stop_timeout", "nan"), ("stop_timeout", "inf"),
        ("env", "['A=1']"), ("env", "{ A = 1 }"), ("env", "{ 'A=B' = '1' }"),
        ("cwd", "'missing-dir'"), ("cwd", "3"), ("cwd", "''"),
        ("autostart", "1"), ("autostart", "'yes'"),
        ("backoff_initial", "0"), ("backoff_initial", "false"),
        ("backoff_factor", "0.5"), ("backoff_max", "0"),
        ("backoff_jitter", "-0.1"), ("backoff_jitter", "1.5"),
        ("backoff_reset", "0"), ("max_restarts", "-1"), ("max_restarts", "2.0"),
        ("max_restarts", "false"), ("restart_window", "0"),
    ])
    def test_bad_supervision_values(self, tmp_path, key, value):
        err = service_error(tmp_path, f"{TRUE}{key} = {value}\n", key=key)
        assert err.message.startswith(("must be", "bad", "the value")) or "directory" in err.message

    def test_cwd_is_a_file(self, tmp_path):
        write(tmp_path, "afile", "")
        err = service_error(tmp_path, TRUE + "cwd = 'afile'\n", key="cwd")
        assert str(tmp_path / "afile") in err.message

    def test_backoff_max_below_initial(self, tmp_path):
        err = service_error(tmp_path, TRUE + "backoff_initial = 5\nbackoff_max = 2\n",
                            key="backoff_max")
        assert "backoff_initial" in err.message

    def test_backoff_initial_above_default_max(self, tmp_path):
        err = service_error(tmp_path, TRUE + "backoff_initial = 60\n", key="backoff_initial")
        assert "backoff_max (30.0)" in err.message

    def test_after_unknown(self, tmp_path):
        path = toml(tmp_path, "[services.db]\n" + TRUE + "[services.web]\n" + TRUE
                    + "after = ['dbb']\n")
        err = error(path)
        assert (err.service, err.key) == ("web", "after")
        assert "unknown service 'dbb' (did you mean 'db'?)" in err.message

    def test_after_itself(self, tmp_path):
        service_error(tmp_path, TRUE + "after = ['svc']\n", key="after")

    def test_cycle(self, tmp_path):
        path = toml(tmp_path, """
            [services.c]
            command = "true"
            [services.a]
            command = "true"
            after = ["b"]
            [services.b]
            command = "true"
            after = ["a", "c"]
        """)
        err = error(path)
        assert (err.service, err.key) == ("a", "after")
        assert err.message == "dependency cycle: a -> b -> a"


class TestFactoryErrors:
    @pytest.fixture(autouse=True)
    def factories(self, tmp_path):
        write(tmp_path, "facts.py", """
            from corral.service import Service
            def ok(**kw):
                return Service()
            def boom():
                raise RuntimeError("factory exploded")
            def number():
                return 42
            NOT_CALLABLE = "text"
        """)
        write(tmp_path, "broken.py", "import no_such_module_for_corral\n")
        write(tmp_path, "raises.py", "x = 1\nraise ValueError('at import')\n")

    def factory_error(self, tmp_path, value, extra=""):
        return service_error(tmp_path, f"service = {value!r}\n{extra}", key="service")

    @pytest.mark.parametrize("value", ["facts", "facts:", ":ok", "facts:ok()", "a b:c"])
    def test_bad_form(self, tmp_path, value):
        assert "module:callable" in self.factory_error(tmp_path, value).message

    def test_not_a_string(self, tmp_path):
        service_error(tmp_path, "service = 3\n", key="service")

    def test_missing_module(self, tmp_path):
        err = self.factory_error(tmp_path, "nosuchmod_corral:make")
        assert "cannot import 'nosuchmod_corral'" in err.message

    def test_module_whose_import_fails(self, tmp_path):
        err = self.factory_error(tmp_path, "broken:make")
        assert "ModuleNotFoundError" in err.message
        assert "broken.py" in err.detail

    def test_module_raises_at_import(self, tmp_path):
        err = self.factory_error(tmp_path, "raises:make")
        assert err.message == "importing 'raises' raised ValueError: at import"
        assert err.detail.startswith("Traceback")
        assert "raises.py\", line 2" in err.detail
        assert "corral/loaders" not in err.detail and "importlib" not in err.detail

    def test_missing_attribute(self, tmp_path):
        err = self.factory_error(tmp_path, "facts:nope")
        assert "has no attribute 'nope'" in err.message

    def test_not_callable(self, tmp_path):
        assert "not a callable" in self.factory_error(tmp_path, "facts:NOT_CALLABLE").message

    def test_factory_raises(self, tmp_path):
        err = self.factory_error(tmp_path, "facts:boom")
        assert err.message == "facts:boom(...) raised RuntimeError: factory exploded"
        assert "facts.py" in err.detail and "corral/loaders" not in err.detail

    def test_factory_bad_args(self, tmp_path):
        err = self.factory_error(tmp_path, "facts:boom", "args = { x = 1 }\n")
        assert "TypeError" in err.message

    def test_wrong_return_type(self, tmp_path):
        err = self.factory_error(tmp_path, "facts:number")
        assert "returned 42, not a corral Service" in err.message

    def test_args_not_a_table(self, tmp_path):
        service_error(tmp_path, "service = 'facts:ok'\nargs = [1]\n", key="args")

    def test_errors_leave_no_half_config(self, tmp_path):
        # The first bad service stops the load; nothing is returned.
        path = toml(tmp_path, "[services.a]\nservice = 'facts:ok'\n"
                    "[services.b]\nservice = 'facts:boom'\n")
        assert error(path).service == "b"


# -- Python configs ----------------------------------------------------------

APP = """
    import corral
    from corral.service import Service, MultiService

    class Web(Service):
        def __init__(self, port):
            super().__init__()
            self.port = port

    application = corral.Application("demo")
    db = Service()
    db.setName("db")
    db.supervise(restart="never", stop_signal="INT")
    db.setServiceParent(application)
    Web(8080).supervise(after=["db"], numprocs=2).setServiceParent(application)
"""


class TestPython:
    def test_two_top_level_services(self, tmp_path):
        path = write(tmp_path, "app.py", APP)
        cfg = load(path)
        db, web = cfg.services
        assert (db.name, web.name) == ("db", "web")
        assert db.restart == "never" and db.stop_signal == signal.SIGINT
        assert web.after == ("db",) and web.numprocs == 2
        assert web.tree.port == 8080 and type(web.tree).__name__ == "Web"
        assert web.fingerprint[0] == tree_fingerprint(web.tree)
        assert db.command is None and db.factory is None
        assert db.source == str(path)
        assert cfg.master == MasterSpec()
        hash(web)

    def test_tac_extension(self, tmp_path):
        cfg = load(write(tmp_path, "app.tac", APP))
        assert [s.name for s in cfg.services] == ["db", "web"]

    def test_fixture_config(self):
        cfg = load(os.path.join(FIXTURES, "app.py"))
        assert [s.name for s in cfg.services] == ["greeter", "web"]
        assert cfg.services[0].restart == "never"

    def test_module_globals_and_sys_path(self, tmp_path):
        write(tmp_path, "helper_mod_corral.py", "PORT = 1234\n")
        path = write(tmp_path, "app.py", """
            import os, corral
            from helper_mod_corral import PORT
            assert __name__ == "__corral_config__"
            assert os.path.isabs(__file__)
            s = corral.Service(); s.port = PORT; s.file = __file__
            application = corral.Application()
            s.setServiceParent(application)
        """)
        spec = load(path).services[0]
        assert spec.tree.port == 1234 and spec.tree.file == str(path)
        assert sys.path[0] == str(tmp_path)

    def test_derived_names(self, tmp_path):
        cfg = load(write(tmp_path, "app.py", """
            import corral
            class Worker(corral.Service):
                pass
            application = corral.Application()
            for _ in range(3):
                Worker().setServiceParent(application)
            named = Worker()
            named.setName("worker-2")  # taken: derived names skip it
            named.setServiceParent(application)
            corral.MultiService().setServiceParent(application)
        """))
        names = [s.name for s in cfg.services]
        assert names == ["worker", "worker-3", "worker-4", "worker-2", "multiservice"]

    def test_derived_names_stable_across_loads(self, tmp_path):
        path = write(tmp_path, "app.py", APP)
        assert load(path) == load(path)

    def test_fingerprint_changes_with_attributes(self, tmp_path):
        path = write(tmp_path, "app.py", APP)
        before = service_of(load(path), "web")
        write(tmp_path, "app.py", APP.replace("8080", "8081"))
        after = service_of(load(path), "web")
        assert before != after
        assert service_of(load(path), "db") == service_of(load(path), "db")

    def test_missing_application(self, tmp_path):
        err = error(write(tmp_path, "app.py", "x = 1\n"))
        assert "no variable 'application'" in err.message
        assert "corral.Application(" in err.message and "setServiceParent" in err.message

    def test_application_wrong_type(self, tmp_path):
        err = error(write(tmp_path, "app.py", "import corral\napplication = corral.Service()\n"))
        assert "not a corral Application" in err.message

    def test_application_empty(self, tmp_path):
        err = error(write(tmp_path, "app.py", "import corral\napplication = corral.Application()\n"))
        assert "defines no services" in err.message

    def test_raises(self, tmp_path):
        path = write(tmp_path, "app.py", """
            import corral

            def build():
                return {}["port"]

            application = build()
        """)
        err = error(path)
        assert err.message == "raised KeyError: 'port'"
        assert err.line == 5
        assert f"{path}:5:" in str(err)
        assert err.detail.startswith("Traceback")
        assert f'File "{path}", line 7' in err.detail
        assert "corral/loaders" not in err.detail

    def test_raises_inside_imported_module(self, tmp_path):
        write(tmp_path, "bad_helper_corral.py", "def f():\n    raise OSError('disk')\n")
        path = write(tmp_path, "app.py", "import bad_helper_corral\n\nbad_helper_corral.f()\n")
        err = error(path)
        assert err.line == 3  # the user's own line that led there
        assert "OSError: disk" in err.message
        assert "bad_helper_corral.py" in err.detail

    def test_system_exit_is_an_error(self, tmp_path):
        err = error(write(tmp_path, "app.py", "import sys\nsys.exit(3)\n"))
        assert err.message == "raised SystemExit: 3" and err.line == 2

    def test_syntax_error(self, tmp_path):
        path = write(tmp_path, "app.tac", "import corral\n\napplication = (\n")
        err = error(path)
        assert err.message.startswith("raised SyntaxError")
        assert err.line == 3
        assert "application" in err.detail

    def test_null_bytes(self, tmp_path):
        path = tmp_path / "app.py"
        path.write_bytes(b"x = 1\0\n")
        error(path)

    def test_failed_load_does_not_register_module(self, tmp_path):
        sys.modules.pop("__corral_config__", None)
        error(write(tmp_path, "app.py", "x = 1\n"))
        error(write(tmp_path, "app.py", APP.replace("numprocs=2", "numprocs=0")))
        assert "__corral_config__" not in sys.modules
        load(write(tmp_path, "app.py", APP))
        assert sys.modules["__corral_config__"].__file__ == str(tmp_path / "app.py")


class TestPythonSupervision:
    def app(self, tmp_path, settings, name="'svc'"):
        return write(tmp_path, "app.py", f"""
            import corral
            application = corral.Application()
            s = corral.Service()
            s.setName({name})
            s.supervise({settings})
            s.setServiceParent(application)
        """)

    def test_same_checks_as_toml(self, tmp_path):
        err = error(self.app(tmp_path, "numprocs=0"))
        assert (err.service, err.key) == ("svc", "numprocs")
        assert "service 'svc'" in str(err) and "key 'numprocs'" in str(err)

    def test_unknown_key_suggests(self, tmp_path):
        err = error(self.app(tmp_path, "restrat='never'"))
        assert err.key == "restrat" and "did you mean 'restart'?" in err.message

    @pytest.mark.parametrize("key", ["command", "service", "args"])
    def test_what_keys_not_allowed(self, tmp_path, key):
        err = error(self.app(tmp_path, f"{key}='x'"))
        assert (err.service, err.key) == ("svc", key)

    def test_values_stored(self, tmp_path):
        (tmp_path / "w").mkdir()
        spec = load(self.app(tmp_path, "env={'X': '1'}, cwd='w', stop_timeout=1, "
                                       "after=(), autostart=False")).services[0]
        assert spec.env == (("X", "1"),) and spec.cwd == str(tmp_path / "w")
        assert spec.stop_timeout == 1.0 and spec.autostart is False

    def test_after_unknown_and_cycle(self, tmp_path):
        err = error(self.app(tmp_path, "after=['ghost']"))
        assert (err.service, err.key) == ("svc", "after")
        path = write(tmp_path, "app.py", """
            import corral
            application = corral.Application()
            for name, after in [("x", "y"), ("y", "x")]:
                s = corral.Service(); s.setName(name); s.supervise(after=[after])
                s.setServiceParent(application)
        """)
        err = error(path)
        assert err.message == "dependency cycle: x -> y -> x" and err.service == "x"

    def test_reserved_name(self, tmp_path):
        err = error(self.app(tmp_path, "", name="'all'"))
        assert err.service == "all"

    def test_supervision_not_a_dict(self, tmp_path):
        path = write(tmp_path, "app.py", """
            import corral
            application = corral.Application()
            s = corral.Service(); s.setName("svc"); s.supervision = ["restart"]
            s.setServiceParent(application)
        """)
        assert error(path).service == "svc"

    def test_subclass_without_init(self, tmp_path):
        path = write(tmp_path, "app.py", """
            import corral
            class Bare(corral.Service):
                def __init__(self):
                    pass  # never calls Service.__init__: no `supervision`
            application = corral.Application()
            Bare().setServiceParent(application)
        """)
        assert load(path).services[0].name == "bare"


class TestFingerprint:
    def test_plain_attributes_and_children(self):
        root = MultiService()
        root.setName("root")
        child = Service()
        child.port = 80
        child.opts = {"b": [1, 2], "a": None}
        child.sock = object()  # not plain: ignored
        child.setServiceParent(root)
        fp = tree_fingerprint(root)
        hash(fp)
        cls, name, attrs, children = fp
        assert cls == "corral.service.MultiService" and name == "root"
        assert children == (tree_fingerprint(child),)
        child_attrs = dict(children[0][2])
        assert child_attrs["port"] == 80
        assert child_attrs["opts"] == (("a", None), ("b", (1, 2)))
        assert "sock" not in child_attrs and "parent" not in child_attrs

    def test_equal_for_equal_trees(self):
        def build(port):
            root = Application("x")
            s = Service()
            s.port = port
            s.setServiceParent(root)
            return root
        assert tree_fingerprint(build(1)) == tree_fingerprint(build(1))
        assert tree_fingerprint(build(1)) != tree_fingerprint(build(2))

    def test_running_ignored(self):
        a, b = Service(), Service()
        b.running = True
        assert tree_fingerprint(a) == tree_fingerprint(b)

    def test_nan_and_self_reference(self):
        a = Service()
        a.x = float("nan")
        loop = []
        loop.append(loop)
        a.loop = loop
        assert tree_fingerprint(a) == tree_fingerprint(a)
        assert "loop" not in dict(tree_fingerprint(a)[2])



def test_stdin_is_dev_null_or_a_pipe_for_commands_only(tmp_path):
    path = toml(tmp_path, """
        [services.a]
        command = ["true"]
        [services.b]
        command = ["true"]
        stdin = "pipe"
        """)
    assert [(s.name, s.stdin) for s in load(path).services] == [("a", "null"), ("b", "pipe")]
    err = service_error(tmp_path, TRUE + 'stdin = "file"\n', key="stdin")
    assert "must be one of null, pipe, not 'file'" in str(err)
    write(tmp_path, "stdinapp.py", "from corral.service import Service\n"
                                  "def make():\n    return Service()\n")
    err = service_error(tmp_path, 'service = "stdinapp:make"\nstdin = "pipe"\n', key="stdin")
    assert '"pipe" is for commands' in str(err)
