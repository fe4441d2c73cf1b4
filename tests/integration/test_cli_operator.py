"""The operator's command line against real masters (issue 15, 9-19): check, a
socket found from any folder, logs and events on a real terminal (a pty),
shell completion in a real bash, export systemd checked by systemd-analyze.

Masters here are started without --socket, as a user would: the default
place beside the config is what is under test.
"""

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.harness import DEADLINE, Master, WaitTimeout, wait_until
from tests.integration.test_cli_integration import corral_cmd, one_error_line, up, worker

PY = sys.executable
CLEAN_ENV = {**os.environ, "CORRAL_SOCKET": "", "XDG_RUNTIME_DIR": ""}


class DefaultMaster(Master):
    """`corral run CONFIG` with no --socket, from a folder of the test's choice."""

    def start(self, wait=True, env=None, cwd="/"):
        self.socket = os.path.join(self.dir, os.path.splitext(os.path.basename(self.config))[0] + ".sock")
        with open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                [PY, "-m", "corral", "run", self.config, "--logfile", self.logfile],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=cwd, start_new_session=True, env={**CLEAN_ENV, **(env or {})},
            )
        if wait:
            wait_until(self._answers, message="the master to answer", dump=self.output)
        return self


@pytest.fixture
def default_master():
    started = []

    def make(config_text, suffix=".toml", cwd="/", env=None):
        m = DefaultMaster(config_text, suffix=suffix)
        started.append(m)
        return m.start(cwd=cwd, env=env)

    yield make
    for m in started:
        m.close()


PY_CONFIG = """
import corral

class Quiet(corral.Service):
    pass

application = corral.Application("shop")
Quiet().supervise(restart="always").setServiceParent(application)
"""


# -- 9: corral check ----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_check_prints_services_order_and_sockets_and_starts_nothing(tmp_path):
    config = tmp_path / "shop.toml"
    config.write_text(f"""
[services.db]
command = {worker()}

[services.web]
command = {worker()}
after = ["db"]
numprocs = 2
sockets = ["tcp://127.0.0.1:18123"]

[services.cron]
command = {worker()}
autostart = false
""")
    done = corral_cmd("check", str(config), env=CLEAN_ENV, cwd="/")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{config}: ok, 3 services, 4 instances"
    assert lines[1] == f"control socket: {tmp_path}/shop.sock (the default for this config)"
    assert "start order: db, cron, then web" in lines
    web = next(line for line in lines if line.startswith("web "))
    assert "web:0, web:1" in web and "tcp://127.0.0.1:18123" in web and " db " in web
    report = json.loads(corral_cmd("check", str(config), "--json", env=CLEAN_ENV).stdout)
    assert report["start_order"] == [["db", "cron"], ["web"]]
    assert [s["instances"] for s in report["services"]] == [["db"], ["web:0", "web:1"], ["cron"]]
    assert report["services"][2]["autostart"] is False
    assert report["socket"] == f"{tmp_path}/shop.sock" and report["socket_from"] == "default"
    assert not os.path.exists(tmp_path / "shop.sock")  # nothing was started or bound

    bad = tmp_path / "bad.toml"
    bad.write_text('[services.web]\ncommand = ["true"]\ncolour = "red"\n')
    done = corral_cmd("check", str(bad), env=CLEAN_ENV)
    assert done.returncode == 1 and done.stdout == ""
    line = one_error_line(done)
    assert str(bad) in line and "'web'" in line and "'colour'" in line


@pytest.mark.timeout(30)
def test_check_a_python_config_lists_its_servers(tmp_path):
    config = tmp_path / "app.py"
    config.write_text("""
import asyncio, corral

application = corral.Application("echo")
corral.TCPServer(18124, asyncio.Protocol, interface="127.0.0.1").setServiceParent(application)
""")
    report = json.loads(corral_cmd("check", str(config), "--json", env=CLEAN_ENV).stdout)
    [service] = report["services"]
    assert service["kind"] == "python" and service["sockets"] == ["TCPServer 127.0.0.1:18124"]


# -- 10: the socket is always found ------------------------------------------------------------


@pytest.mark.timeout(40)
@pytest.mark.parametrize("suffix", [".toml", ".py"])
def test_a_master_is_found_from_its_config_in_any_folder(default_master, tmp_path, suffix):
    text = f"[services.a]\ncommand = {worker()}\n" if suffix == ".toml" else PY_CONFIG
    m = default_master(text, suffix=suffix, cwd="/")  # started from another folder
    assert os.path.exists(m.socket)  # beside the config, named after it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = corral_cmd("-c", m.config, "status", "--json", env=CLEAN_ENV, cwd=str(elsewhere))
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 1
    # Relative -c from the config's folder, and no option at all there.
    name = os.path.basename(m.config)
    assert corral_cmd("status", "-c", name, env=CLEAN_ENV, cwd=m.dir).returncode == 0
    assert corral_cmd("status", env=CLEAN_ENV, cwd=m.dir).returncode == 0
    # 17: the first line says where it listens and what the watcher is, in words.
    first = m.wait_log(r"control socket") and m.log_text().splitlines()[0]
    assert f"control socket {m.socket}" in first and "if the master dies" in first, first


@pytest.mark.timeout(40)
@pytest.mark.parametrize("suffix", [".toml", ".py"])
def test_a_master_on_another_socket_is_found_from_its_config(master, suffix):
    """--socket elsewhere (the harness's own way): a symlink beside the config
    points to it while the master runs, so -c CONFIG still finds it."""
    text = f"[services.a]\ncommand = {worker()}\n" if suffix == ".toml" else PY_CONFIG
    m = master(text, suffix=suffix)
    link = os.path.join(m.dir, "config.sock")
    assert os.readlink(link) == m.socket
    done = corral_cmd("-c", m.config, "status", "--json", env=CLEAN_ENV, cwd="/")
    assert done.returncode == 0, done.stderr
    m.call("shutdown")
    m.wait_exit()
    assert not os.path.lexists(link)  # removed with the master


@pytest.mark.timeout(40)
def test_two_projects_stay_apart(default_master):
    a = default_master(f"[services.a]\ncommand = {worker()}\n", cwd="/")
    b = default_master(f"[services.b]\ncommand = {worker()}\n", cwd="/")  # same folder, same file name
    for m, name in ((a, "a"), (b, "b")):
        done = corral_cmd("-c", m.config, "status", "--json", env=CLEAN_ENV, cwd="/")
        assert [row["name"] for row in json.loads(done.stdout)] == [name]


@pytest.mark.timeout(40)
def test_the_runtime_dir_is_used_when_the_path_is_too_long(tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    m = DefaultMaster(f"[services.a]\ncommand = {worker()}\n")
    config = deep / "long.toml"
    shutil.copy(m.config, config)
    m.config = str(config)
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    try:
        m.start(env=env, wait=False)
        m.socket = None
        found = wait_until(lambda: m.proc.poll() is None and os.listdir(runtime / "corral")
                           if (runtime / "corral").exists() else None, message="a socket under the runtime dir",
                           dump=m.output)
        m.socket = str(runtime / "corral" / found[0])
        assert re.fullmatch(r"long-[0-9a-f]{8}\.sock", found[0])
        wait_until(m._answers, message="the master to answer", dump=m.output)
        done = corral_cmd("-c", str(config), "status", env={**CLEAN_ENV, **env}, cwd="/")
        assert done.returncode == 0, done.stderr
    finally:
        m.close()


@pytest.mark.timeout(30)
def test_no_master_lists_where_it_looked(tmp_path):
    config = tmp_path / "app.py"
    config.write_text(PY_CONFIG)
    runtime = tmp_path / "run"
    done = corral_cmd("-c", str(config), "status", env={**CLEAN_ENV, "XDG_RUNTIME_DIR": str(runtime)})
    assert done.returncode == 3
    line = one_error_line(done)
    assert f"{tmp_path}/app.sock: no such socket" in line
    assert re.search(rf"{runtime}/corral/app-[0-9a-f]{{8}}\.sock: no such socket", line), line


# -- 11: logs and events a person can read -----------------------------------------------------


class Terminal:
    """A command on a pty: what a person sees, colours included."""

    def __init__(self, argv, env=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: only exec
            try:
                environ = {**CLEAN_ENV, "TERM": "xterm", **(env or {})}
                environ.pop("NO_COLOR", None)
                os.execvpe(argv[0], argv, environ)
            finally:
                os._exit(127)
        self.text = ""

    def read_until(self, pattern, timeout=DEADLINE):
        regex = re.compile(pattern)
        end = time.monotonic() + timeout
        while not regex.search(self.text):
            left = end - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"no {pattern!r} on the terminal in {timeout} s: {self.text!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: the command ended and closed the pty
                    chunk = b""
                if not chunk:
                    if not regex.search(self.text):
                        raise WaitTimeout(f"the command ended before {pattern!r}: {self.text!r}")
                    break
                self.text += chunk.decode("utf-8", "replace")
        return self.text

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


LOGGING_WORKER = """
import logging, sys, time
logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")
log = logging.getLogger("app")
log.info("listening on 8000")
log.error("db down")
print("plain stdout line", flush=True)
time.sleep(600)
"""


@pytest.mark.timeout(40)
def test_logs_on_a_terminal_are_coloured_short_and_calm(master, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(LOGGING_WORKER)
    m = master(f'[services.app]\ncommand = {json.dumps([PY, "-u", str(script)])}\n'
               f'[services.a-longer-name]\ncommand = {worker()}\n')
    m.wait_log(r"plain stdout line")
    up(m, "a-longer-name")
    term = Terminal([PY, "-m", "corral", "logs", "--socket", m.socket])
    try:
        text = term.read_until(r"plain stdout line.*\n")
    finally:
        term.close()
    lines = [line for line in text.replace("\r", "").splitlines() if line]
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines]
    info = next(line for line in lines if "listening on 8000" in line)
    assert "\x1b[31m" not in info and " err:" not in info  # logging's INFO on stderr is no error
    assert "\x1b[31mERROR:app:db down" in next(line for line in lines if "db down" in line)
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3} \x1b\[\d+mapp\x1b\[0m", info), info  # today: no date
    # Names aligned: every text starts in the same column.
    starts = {len(re.match(r"\S+ \S+\s+", line)[0]) for line in plain}
    assert len(starts) == 1, plain

    done = m.cli("logs", "--grep", "^(INFO|ERROR)")
    assert [line.split(" ", 3)[3] for line in done.stdout.splitlines()] == [
        "INFO:app:listening on 8000", "ERROR:app:db down"]
    recent = m.cli("logs", "app", "--since", "10m").stdout
    assert recent == m.cli("logs", "app").stdout and recent.count("\n") >= 3
    assert m.cli("logs", "--since", "0s").stdout == ""


@pytest.mark.timeout(40)
def test_events_are_text_on_a_terminal_and_json_when_piped(master):
    m = master(f"[services.db]\ncommand = {worker()}\n")
    m.wait_state("db", "RUNNING")
    term = Terminal([PY, "-m", "corral", "events", "--socket", m.socket])
    try:
        text = term.read_until(r"RUNNING.*\n")
    finally:
        term.close()
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} \x1b\[\d+mdb\x1b\[0m .*STARTING.* -> .*RUNNING.*  pid \d+", text), text
    piped = m.cli("events")
    assert [json.loads(line)["to"] for line in piped.stdout.splitlines()][-1] == "RUNNING"
    term = Terminal([PY, "-m", "corral", "events", "--json", "--socket", m.socket])
    try:
        assert json.loads(term.read_until(r"\}\s*$").strip().splitlines()[-1])["name"] == "db"
    finally:
        term.close()


# -- 13: shell completion ----------------------------------------------------------------------


def bash_complete(line, env):
    """COMPREPLY of `corral completion bash` in a real bash for the command line `line`."""
    script = corral_cmd("completion", "bash", env=env).stdout
    driver = (f'{script}\nCOMP_LINE={json.dumps(line)}; COMP_POINT=${{#COMP_LINE}}\n'
              '_corral; printf "%s\\n" "${COMPREPLY[@]}"\n')
    bindir = os.path.dirname(PY)  # the test's corral first on PATH, as the script calls `corral`
    done = subprocess.run(["bash", "--norc", "-c", driver], capture_output=True, text=True, timeout=30,
                          env={**env, "PATH": bindir + os.pathsep + env.get("PATH", "")})
    assert done.returncode == 0, done.stderr
    return [word for word in done.stdout.splitlines() if word]


@pytest.mark.timeout(60)
def test_bash_completes_commands_options_and_names_from_the_master(default_master):
    if not os.path.exists(os.path.join(os.path.dirname(PY), "corral")):
        pytest.skip("no corral console script beside this interpreter")
    m = default_master(f"[services.web]\ncommand = {worker()}\nnumprocs = 2\n\n"
                       f"[services.db]\ncommand = {worker()}\n")
    m.wait_state("web:1", "RUNNING")
    env = dict(CLEAN_ENV)
    assert set(bash_complete("corral st", env)) == {"status", "start", "stop"}
    assert "--rolling" in bash_complete("corral restart --r", env)
    assert bash_complete(f"corral -c {m.config} restart w", env) == ["web", "web:0", "web:1"]
    # bash replaces what follows the colon: the replies are the rest of the name.
    assert bash_complete(f"corral --socket {m.socket} stop web:", env) == ["0", "1"]
    assert bash_complete("corral completion ", env) == ["bash", "zsh", "fish"]
    assert bash_complete("corral --socket /nonexistent.sock stop ", env) == []  # no master: nothing


@pytest.mark.timeout(30)
@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_parse(shell):
    script = corral_cmd("completion", shell, env=CLEAN_ENV)
    assert script.returncode == 0 and "_names" in script.stdout
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    check = ["zsh", "-n"] if shell == "zsh" else ["fish", "--no-execute"]
    done = subprocess.run(check, input=script.stdout, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.timeout(60)
def test_fish_and_zsh_complete_names_from_the_master(default_master):
    """fish answers `complete -C LINE` itself; zsh's compadd is replaced by a
    function that prints what it is given (zsh offers no completion without a terminal)."""
    if not os.path.exists(os.path.join(os.path.dirname(PY), "corral")):
        pytest.skip("no corral console script beside this interpreter")
    m = default_master(f"[services.web]\ncommand = {worker()}\nnumprocs = 2\n")
    m.wait_state("web:1", "RUNNING")
    env = {**CLEAN_ENV, "PATH": os.path.dirname(PY) + os.pathsep + os.environ.get("PATH", "")}
    ran = 0
    if shutil.which("fish"):
        script = corral_cmd("completion", "fish", env=env).stdout
        driver = f"{script}\ncomplete -C 'corral -c {m.config} stop w'; echo ---; complete -C 'corral st'"
        done = subprocess.run(["fish", "--no-config", "-c", driver], capture_output=True, text=True,
                              timeout=30, env=env)
        names, _, commands = done.stdout.partition("---\n")
        assert names.split() == ["web", "web:0", "web:1"] and done.stderr == "", done.stderr
        assert commands.split() == ["start", "status", "stop"]
        ran += 1
    if shutil.which("zsh"):
        script = corral_cmd("completion", "zsh", env=env).stdout
        driver = ('compadd() { print -l -- "${@:#--}" }; compdef() { }\n' + script
                  + f"\nwords=(corral --socket {m.socket} restart w); CURRENT=5; _corral")
        done = subprocess.run(["zsh", "-f", "-c", driver], capture_output=True, text=True, timeout=30, env=env)
        assert done.stdout.split() == ["web", "web:0", "web:1"], done.stderr
        ran += 1
    if not ran:
        pytest.skip("neither fish nor zsh is installed")


# -- 14: export systemd ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_export_systemd_writes_units_that_systemd_accepts(tmp_path):
    config = tmp_path / "shop.toml"
    config.write_text(f"""
[services.db]
command = {worker()}
env = {{GREETING = "hello world"}}
stop_signal = "INT"
stop_timeout = 3
ready = "notify"

[services.web]
command = {worker()}
after = ["db"]
sockets = ["tcp://127.0.0.1:18125#http"]
max_memory = "64M"

[services.pool]
command = {worker()}
numprocs = 2
restart = "on-failure"

[services.py]
service = "app:make"
""")
    (tmp_path / "app.py").write_text("import corral\ndef make():\n    return corral.Service()\n")
    out = tmp_path / "units"
    done = corral_cmd("export", "systemd", str(config), "-o", str(out), env=CLEAN_ENV)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == ["shop-db.service", "shop-pool@.service", "shop-web.service",
                                       "shop-web.socket"]
    assert "py: not exported: a Python service" in done.stderr
    db = (out / "shop-db.service").read_text()
    assert "Type=notify" in db and "KillSignal=SIGINT" in db and "TimeoutStopSec=3s" in db
    assert 'Environment="GREETING=hello world"' in db
    web = (out / "shop-web.service").read_text()
    assert "After=shop-db.service" in web and "MemoryMax=67108864" in web
    assert "Wants=shop-db.service" in web  # after: an order and a dependency
    assert "ListenStream=127.0.0.1:18125" in (out / "shop-web.socket").read_text()
    assert "Restart=on-failure" in (out / "shop-pool@.service").read_text()
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = [str(out / name) for name in ("shop-db.service", "shop-web.service", "shop-web.socket")]
    verify = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    complaints = [line for line in verify.stderr.splitlines()
                  if "shop-" in line and ("Unknown" in line or "Invalid" in line or "Failed" in line
                                          or "ignoring" in line)]
    assert complaints == [], verify.stderr


def test_export_systemd_of_supervisord_priority_is_an_order_only(tmp_path):
    """supervisord's priority layers are After= without Wants=: systemd's
    own word for an order that pulls nothing in."""
    config = tmp_path / "shop.conf"
    config.write_text("[program:db]\ncommand = /bin/sleep 1000\npriority = 1\n"
                      "[program:web]\ncommand = /bin/sleep 1001\npriority = 2\n")
    out = tmp_path / "units"
    done = corral_cmd("export", "systemd", str(config), "-o", str(out), env=CLEAN_ENV)
    assert done.returncode == 0, done.stderr
    web = (out / "shop-web.service").read_text()
    assert "After=shop-db.service" in web and "Wants=" not in web
