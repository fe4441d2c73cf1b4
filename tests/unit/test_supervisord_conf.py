"""supervisord.conf: every section, key and expansion, and each error with its file:line."""

import dataclasses
import os
import signal
import socket
import textwrap

import pytest

from corral.errors import ConfigError
from corral.loaders import load, supervisord
from corral.loaders.supervisord import http


def conf(tmp_path, text, name="supervisord.conf"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def services(path):
    return {spec.name: spec for spec in load(path).services}


def error(path):
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value


def test_every_program_key(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    (tmp_path / "logs").mkdir()
    monkeypatch.setenv("GREETING", "hi")
    path = conf(tmp_path, """
        [program:app]
        command = /bin/echo %(ENV_GREETING)s %(program_name)s   ; a comment
        priority = 5
        autostart = false
        autorestart = unexpected
        exitcodes = 0,2
        startsecs = 3
        startretries = 7
        stopsignal = INT
        stopwaitsecs = 4
        stopasgroup = true
        killasgroup = true
        directory = %(here)s/work
        umask = 027
        environment = A="1",B="two words",C='x,y'
        redirect_stderr = false
        stdout_logfile = %(here)s/logs/%(program_name)s.out
        stdout_logfile_maxbytes = 1MB
        stdout_logfile_backups = 2
        stderr_logfile = logs/app.err
        stderr_logfile_maxbytes = 0
        stderr_logfile_backups = 0
        serverurl = unix:///tmp/other.sock
        """)
    spec = services(path)["app"]
    assert spec.command == ("/bin/echo", "hi", "app")
    assert (spec.autostart, spec.restart, spec.exit_codes) == (False, "on-failure", (0, 2))
    assert spec.ready == ("seconds", 3.0) and spec.start_timeout == 0
    assert spec.max_restarts == 7
    assert (spec.stop_signal, spec.stop_timeout) == (signal.SIGINT, 4.0)
    assert spec.cwd == str(tmp_path / "work") and spec.umask == 0o027
    env = dict(spec.env)
    assert (env["A"], env["B"], env["C"]) == ("1", "two words", "x,y")
    assert env["SUPERVISOR_ENABLED"] == "1" and env["SUPERVISOR_PROCESS_NAME"] == "app"
    assert env["SUPERVISOR_GROUP_NAME"] == "app"
    assert env["SUPERVISOR_SERVER_URL"] == "unix:///tmp/other.sock"
    out, err = spec.stream_files
    assert (out.stream, out.path, out.max_bytes, out.backups) == (
        "out", str(tmp_path / "logs" / "app.out"), 1 << 20, 2)
    assert (err.stream, err.path, err.max_bytes, err.backups) == (
        "err", str(tmp_path / "logs" / "app.err"), 0, 0)


def test_defaults_are_supervisords(tmp_path):
    path = conf(tmp_path, """
        [supervisord]
        childlogdir = %(here)s
        [program:app]
        command = true
        """)
    spec = services(path)["app"]
    assert (spec.restart, spec.exit_codes, spec.autostart) == ("on-failure", (0,), True)
    assert spec.ready == ("seconds", 1.0) and spec.max_restarts == 3
    assert (spec.stop_signal, spec.stop_timeout) == (signal.SIGTERM, 10.0)
    assert [(f.stream, f.path, f.max_bytes, f.backups) for f in spec.stream_files] == [
        ("out", str(tmp_path / "app-stdout---supervisor.log"), 50 << 20, 10),
        ("err", str(tmp_path / "app-stderr---supervisor.log"), 50 << 20, 10)]
    assert spec.stdin == "pipe"  # supervisord's stdin pipe, for sendProcessStdin


@pytest.mark.parametrize("value, restart", [("true", "always"), ("false", "never"),
                                            ("unexpected", "on-failure"), ("TRUE", "always")])
def test_autorestart(tmp_path, value, restart):
    path = conf(tmp_path, f"[program:a]\ncommand = true\nautorestart = {value}\n")
    assert services(path)["a"].restart == restart


def test_startsecs_zero_is_running_at_once(tmp_path):
    spec = services(conf(tmp_path, "[program:a]\ncommand = true\nstartsecs = 0\n"))["a"]
    assert spec.ready is None


def test_numprocs_and_process_num_formats(tmp_path):
    path = conf(tmp_path, """
        [program:worker]
        command = /bin/echo %(process_num)d of %(numprocs)d
        process_name = %(program_name)s_%(process_num)02d
        numprocs = 3
        numprocs_start = 8
        stdout_logfile = %(here)s/w-%(process_num)03d.log
        """)
    specs = services(path)
    assert list(specs) == ["worker_08", "worker_09", "worker_10"]
    assert specs["worker_09"].command == ("/bin/echo", "9", "of", "3")
    assert specs["worker_10"].stream_files[0].path == str(tmp_path / "w-010.log")


def test_group_name_host_node_name_and_literal_percent(tmp_path):
    path = conf(tmp_path, """
        [group:pool]
        programs = a
        [program:a]
        command = /bin/echo %(group_name)s %(host_node_name)s 100%%
        """)
    assert services(path)["a"].command == ("/bin/echo", "pool", socket.gethostname(), "100%")


def test_redirect_stderr_and_none_and_console(tmp_path):
    path = conf(tmp_path, """
        [program:a]
        command = true
        redirect_stderr = true
        stdout_logfile = %(here)s/a.log
        stderr_logfile = %(here)s/ignored.log
        [program:b]
        command = true
        stdout_logfile = /dev/stdout
        stdout_logfile_maxbytes = 0
        stderr_logfile = NONE
        """)
    specs = services(path)
    assert [(f.stream, f.path) for f in specs["a"].stream_files] == [
        ("out", str(tmp_path / "a.log")), ("err", str(tmp_path / "a.log"))]
    assert specs["b"].stream_files == ()


def test_priority_gives_start_layers_and_groups_order_first(tmp_path):
    path = conf(tmp_path, """
        [program:web]
        command = true
        priority = 300
        [program:db]
        command = true
        priority = 100
        [program:cache]
        command = true
        priority = 100
        [program:off]
        command = true
        priority = 200
        autostart = false
        [group:jobs]
        programs = cron
        priority = 50
        [program:cron]
        command = true
        priority = 999
        """)
    cfg = load(path)
    order = [spec.name for spec in cfg.services]
    assert order == ["cron", "db", "cache", "off", "web"]
    assert all(spec.after == () for spec in cfg.services)  # an order, not a dependency
    after = {spec.name: spec.order_after for spec in cfg.services}
    # off does not autostart: web waits for the layer below it that does.
    assert after == {"cron": (), "db": ("cron",), "cache": ("cron",), "off": ("db", "cache"),
                     "web": ("db", "cache")}
    assert cfg.master.xmlrpc.groups[0] == ("jobs", 50, ("cron",))


def test_supervisord_section(tmp_path, monkeypatch):
    monkeypatch.setenv("APPENV", "prod")
    path = conf(tmp_path, """
        [supervisord]
        logfile = %(here)s/supervisord.log
        logfile_maxbytes = 10MB
        logfile_backups = 3
        loglevel = info
        pidfile = %(here)s/supervisord.pid
        nodaemon = true
        umask = 022
        minfds = 1024
        identifier = box1
        environment = STAGE="%(ENV_APPENV)s"
        childlogdir = %(here)s
        [program:a]
        command = true
        """)
    master, specs, notes = supervisord.parse(str(path))
    assert (master.logfile, master.pidfile) == (str(tmp_path / "supervisord.log"),
                                                str(tmp_path / "supervisord.pid"))
    assert (master.log_max_bytes, master.log_backups) == (10 << 20, 3)
    assert master.xmlrpc.identifier == "box1" and master.xmlrpc.minfds == 1024
    assert master.xmlrpc.master_umask == 0o022
    assert dict(specs[0].env)["STAGE"] == "prod"
    assert "a-stdout---box1.log" in specs[0].stream_files[0].path
    assert any("loglevel" in note for note in notes) and any("minfds" in n for n in notes)


def test_http_sections(tmp_path):
    sha = "{SHA}" + "a" * 40
    path = conf(tmp_path, f"""
        [unix_http_server]
        file = %(here)s/supervisor.sock
        chmod = 0770
        chown = {os.getuid()}
        username = admin
        password = {sha}
        [inet_http_server]
        port = 9001
        [supervisorctl]
        serverurl = unix://%(here)s/supervisor.sock
        prompt = box
        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
        [program:a]
        command = true
        """)
    rpc = load(path).master.xmlrpc
    assert rpc.unix == http.UnixHttpServer(str(tmp_path / "supervisor.sock"), 0o770,
                                           (os.getuid(), os.getgid()), "admin", sha)
    assert rpc.inet == http.InetHttpServer("127.0.0.1", 9001)  # a bare port: loopback
    assert rpc.ctl.serverurl == f"unix://{tmp_path}/supervisor.sock" and rpc.ctl.prompt == "box"
    env = dict(load(path).services[0].env)
    assert env["SUPERVISOR_SERVER_URL"] == f"unix://{tmp_path}/supervisor.sock"
    notes = supervisord.parse(str(path))[2]
    assert [n for n in notes if n.startswith("[unix_http_server]")] == [
        f"[unix_http_server] {key}: checked, not applied (the socket keeps mode 0600 and "
        "admits only the master's uid, or root)" for key in ("chmod", "chown")]


def test_include_globs_relative_to_the_including_file(tmp_path):
    conf(tmp_path, "[program:b]\ncommand = true\n", "conf.d/b.conf")
    conf(tmp_path, "[program:a]\ncommand = true\n", "conf.d/a.conf")
    conf(tmp_path, "[program:x]\ncommand = true\n", "conf.d/x.ini")
    path = conf(tmp_path, "[include]\nfiles = conf.d/*.conf %(here)s/conf.d/*.ini\n",
                "etc/../supervisord.conf")
    assert list(services(path)) == ["a", "b", "x"]


def test_claims_by_content(tmp_path):
    path = conf(tmp_path, "; hello\n\n[program:a]\ncommand = true\n", "myconfig")
    assert list(services(path)) == ["a"]


# -- errors: one line, naming the file, the line, the section and the key ------------

@pytest.mark.parametrize("body, line, where, words", [
    ("[program:a]\ncommand = true\nautostart = maybe\n", 3, "[program:a] key 'autostart'",
     "true or false"),
    ("[program:a]\ncommand = true\nautorestart = sometimes\n", 3,
     "[program:a] key 'autorestart'", "unexpected"),
    ("[program:a]\ncommand = true\nexitcodes = 0,x\n", 3, "[program:a] key 'exitcodes'",
     "integer"),
    ("[program:a]\ncommand = true\nstartsecs = -1\n", 3, "[program:a] key 'startsecs'", ">= 0"),
    ("[program:a]\ncommand = true\nstopsignal = NOPE\n", 3, "[program:a] key 'stopsignal'",
     "signal"),
    ("[program:a]\ncommand = true\ncomand = x\n", 3, "[program:a] key 'comand'",
     "did you mean 'command'"),
    ("[program:a]\nautostart = true\n", 1, "[program:a]", "needs 'command'"),
    ("[program:a]\ncommand = no-such-program-corral\n", 2, "[program:a] key 'command'",
     "not found on PATH"),
    ("[program:a]\ncommand = /bin/echo %(nope)s\n", 2, "[program:a] key 'command'",
     "%(nope)s cannot be expanded"),
    ("[program:a]\ncommand = /bin/echo 100%\n", 2, "[program:a] key 'command'", "%%"),
    ("[program:a]\ncommand = true\nnumprocs = 2\n", 3, "[program:a] key 'numprocs'",
     "%(process_num)s"),
    ("[program:a]\ncommand = true\nenvironment = A=1 B=2\n", 3,
     "[program:a] key 'environment'", "KEY=\"value\""),
    ("[program:a]\ncommand = true\nstdout_logfile = /no/such/dir/a.log\n", 3,
     "[program:a] key 'stdout_logfile'", "does not exist"),
    ("[program:a]\ncommand = true\nstdout_logfile_maxbytes = 5 apples\n", 3,
     "[program:a] key 'stdout_logfile_maxbytes'", "must be a size"),
    ("[program:a]\ncommand = true\ndirectory = /no/such/dir\n", 3,
     "[program:a] key 'directory'", "not an existing directory"),
    ("[program:a]\ncommand = true\numask = 999\n", 3, "[program:a] key 'umask'", "octal"),
    ("[program:a]\ncommand = true\nuser = no-such-user-corral\n", 3, "[program:a] key 'user'",
     "no-such-user-corral"),
    ("[program:a b]\ncommand = true\n", 1, "service 'a b'", "bad service name"),
    ("[program:a]\ncommand = true\n[eventlistener:x]\ncommand = true\n", 3,
     "[eventlistener:x]", "corral events -f"),
    ("[program:a]\ncommand = true\n[rpcinterface:mine]\nx = y\n", 3, "[rpcinterface:mine]",
     "built in"),
    ("[program:a]\ncommand = true\n[fcgi-program:x]\ncommand = true\n", 3,
     "[fcgi-program:x]", "needs 'socket'"),
    ("[fcgi-program:x]\ncommand = true\nsocket = udp://:53\n", 3,
     "[fcgi-program:x] key 'socket'", "tcp://HOST:PORT or unix:///PATH"),
    ("[fcgi-program:x]\ncommand = true\nsocket = tcp://127.0.0.1:99999\n", 3,
     "[fcgi-program:x] key 'socket'", "port from 1 to 65535"),
    ("[fcgi-program:x]\ncommand = true\nsocket = unix:///tmp/x.sock\nnumprocs = 2\n"
     "process_name = x_%(process_num)d\n", 4, "[fcgi-program:x] key 'numprocs'",
     "FastCGI server that runs its own workers"),
    ("[program:a]\ncommand = true\n[programs:b]\n", 3, "[programs:b]",
     "did you mean 'program'"),
    ("[group:g]\nprograms = a,zz\n[program:a]\ncommand = true\n", 2,
     "[group:g] key 'programs'", "unknown program 'zz'"),
    ("[supervisord]\nnodaemon = perhaps\n[program:a]\ncommand = true\n", 2,
     "[supervisord] key 'nodaemon'", "true or false"),
    ("[supervisord]\nlogfiel = x\n[program:a]\ncommand = true\n", 2,
     "[supervisord] key 'logfiel'", "did you mean 'logfile'"),
    ("[inet_http_server]\nport = *:9001\n[program:a]\ncommand = true\n", 2,
     "[inet_http_server] key 'port'", "password"),
    ("[inet_http_server]\nport = 127.0.0.1:99999\n[program:a]\ncommand = true\n", 2,
     "[inet_http_server] key 'port'", "1 to 65535"),
    ("[inet_http_server]\nport = 9001\nusername = u\n[program:a]\ncommand = true\n", 1,
     "[inet_http_server]", "go together"),
    ("[unix_http_server]\nfile = /tmp/x.sock\npassword = {SHA}12\nusername = u\n"
     "[program:a]\ncommand = true\n", 3, "[unix_http_server] key 'password'", "40 hex"),
    ("[unix_http_server]\nfile = /no/such/dir/s.sock\n[program:a]\ncommand = true\n", 2,
     "[unix_http_server] key 'file'", "does not exist"),
    ("[supervisorctl]\nserverurl = ftp://x\n[program:a]\ncommand = true\n", 2,
     "[supervisorctl] key 'serverurl'", "unix:///PATH"),
    ("[program:a]\ncommand = true\ncommand = false\n", 3, "[program:a] key 'command'", "twice"),
    ("[program:a]\ncommand = true\n[program:a]\ncommand = true\n", 3, "[program:a]", "twice"),
    ("command = true\n", 1, "", "before the first [section]"),
])
def test_errors_name_file_line_section_and_key(tmp_path, body, line, where, words):
    path = conf(tmp_path, body)
    err = error(path)
    text = str(err)
    assert text.startswith(f"{path}:{line}: "), text
    assert where in text and words in text, text
    assert "\n" not in text


def test_an_error_in_an_included_file_names_that_file(tmp_path):
    inc = conf(tmp_path, "[program:b]\ncommand = true\nstartsecs = soon\n", "conf.d/b.conf")
    path = conf(tmp_path, "[include]\nfiles = conf.d/*.conf\n")
    assert str(error(path)).startswith(f"{inc}:3: [program:b] key 'startsecs'")


def test_no_programs(tmp_path):
    assert "defines no services" in str(error(conf(tmp_path, "[supervisord]\n")))


def test_two_programs_with_one_process_name(tmp_path):
    path = conf(tmp_path, "[program:a]\ncommand = true\nprocess_name = x\n"
                          "[program:b]\ncommand = true\nprocess_name = x\n")
    assert "two processes are named 'x'" in str(error(path))


# -- corral convert -----------------------------------------------------------------------

CONVERTIBLE = """
    [supervisord]
    logfile = %(here)s/main.log
    logfile_backups = 2
    [unix_http_server]
    file = %(here)s/s.sock
    username = u
    password = p
    [inet_http_server]
    port = 9001
    username = u
    password = p
    [program:db]
    command = /bin/sleep 100
    priority = 1
    stopsignal = INT
    umask = 027
    [program:web]
    command = /bin/echo "a b" c
    autorestart = true
    exitcodes = 0,3
    startsecs = 0
    environment = MODE="fast"
    stdout_logfile = NONE
    stderr_logfile = %(here)s/web.err
    """


def test_convert_writes_toml_that_loads_to_the_same_services(tmp_path):
    from corral.loaders.supervisord.convert import convert

    path = conf(tmp_path, CONVERTIBLE)
    text, notes = convert(str(path))
    converted = tmp_path / "corral.toml"
    converted.write_text(text)
    original, again = load(path), load(converted)
    assert [s.name for s in again.services] == ["db", "web"]
    for before, after in zip(original.services, again.services):
        # every compared setting but where it came from; priority's order is TOML's after
        assert dataclasses.replace(before, source=None, after=before.after + before.order_after,
                                   order_after=()) == dataclasses.replace(after, source=None)
    assert any(note.startswith("priority: the start layers are `after` in the TOML") for note in notes)
    assert (again.master.logfile, again.master.log_backups) == (str(tmp_path / "main.log"), 2)
    assert any("web.err" in note for note in notes)           # raw stream files: a note
    assert again.master.xmlrpc == (f"unix://{tmp_path}/s.sock", "tcp://127.0.0.1:9001")
    assert (again.master.xmlrpc_username, again.master.xmlrpc_password) == ("u", "p")


def test_corral_convert_prints_toml_and_notes(tmp_path, capsys):
    from corral.cli.main import main

    path = conf(tmp_path, CONVERTIBLE)
    assert main(["convert", str(path)]) == 0
    captured = capsys.readouterr()
    assert "[services.web]" in captured.out and 'exit_codes = [0, 3]' in captured.out
    assert "corral: note: web: raw per-stream log files" in captured.err


def test_corral_convert_of_a_bad_file_is_one_error_line(tmp_path, capsys):
    from corral.cli.main import main

    path = conf(tmp_path, "[program:a]\ncommand = true\nstartsecs = x\n")
    assert main(["convert", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == f"corral: error: {path}:3: [program:a] key 'startsecs': must be an integer >= 0, not 'x'\n"


def test_an_fcgi_program_gets_its_socket_on_stdin(tmp_path):
    from corral import kinds
    from corral.loaders.supervisord.convert import convert

    path = conf(tmp_path, """
        [fcgi-program:php]
        command = true
        socket = unix://%(here)s/%(program_name)s.sock
        socket_mode = 0770
        [fcgi-program:tcp]
        command = true
        socket = tcp://127.0.0.1:9009
        [group:web]
        programs = php
        """)
    found = services(path)
    assert (found["php"].kind, found["php"].sockets) == (
        kinds.FASTCGI, (f"unix://{tmp_path}/php.sock",))
    assert found["tcp"].sockets == ("tcp://127.0.0.1:9009",)
    assert found["php"].stdin == found["tcp"].stdin == "null"  # fd 0 is the socket
    assert ("web", 999, ("php",)) in load(path).master.xmlrpc.groups
    _toml, notes = convert(str(path))
    assert any("socket_mode: not carried over" in note for note in notes)
    assert any("php: its [fcgi-program] socket" in note for note in notes)


def test_convert_says_what_the_xmlrpc_keys_cannot_carry(tmp_path):
    from corral.loaders.supervisord.convert import convert

    path = conf(tmp_path, """
        [unix_http_server]
        file = %(here)s/s.sock
        chmod = 0770
        [inet_http_server]
        port = 9001
        username = u
        password = p
        [program:web]
        command = /bin/sleep 100
        numprocs = 2
        process_name = web_%(process_num)d
        """)
    text, notes = convert(str(path))
    assert f'xmlrpc = ["unix://{tmp_path}/s.sock", "tcp://127.0.0.1:9001"]' in text
    assert "xmlrpc_username" not in text
    assert any("different usernames or passwords" in note for note in notes)
    assert any("chmod: checked, not applied" in note for note in notes)
    assert any("web:web_0, web:web_1" in note for note in notes)
