"""Plugins end to end: a real `corral run NAME` master, `corral plugins`, `corral run NAME --help`.

The built-in `web` plugin comes from corral's own installed entry point;
the fixture plugins (tests/fixtures/plugins) are installed for a child
process by putting their folder, with its .dist-info, on PYTHONPATH.
"""

import http.client
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from tests.helpers import free_port
from tests.integration.harness import Master, wait_until

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "plugins")


def env_with_fixture_plugins():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (FIXTURES, env.get("PYTHONPATH")) if p)
    return env


def corral(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "corral", *args], capture_output=True, text=True,
                          timeout=30, env=env, cwd=cwd, stdin=subprocess.DEVNULL, check=False)


class PluginMaster(Master):
    """`corral run --socket S --logfile L NAME [plugin options]` in a fresh
    folder (or in cwd: twistd's plugins are found from the current folder)."""

    def __init__(self, argv, env=None, cwd=None):
        super().__init__("", suffix=".unused")
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd

    def start(self, wait=True):
        with open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "corral", "run", "--socket", self.socket,
                 "--logfile", self.logfile, *self.argv],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.cwd or self.dir, start_new_session=True, env=self.env,
            )
        if wait:
            wait_until(self._answers, message="the master to answer", dump=self.output)
        return self


@pytest.fixture
def plugin_master():
    started = []

    def make(*argv, env=None):
        m = PluginMaster(argv, env)
        started.append(m)
        return m.start()

    yield make
    for m in started:
        m.close()


def fetch(port, path, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def raw_get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    reply = b"".join(chunks)
    return int(reply.split(b" ", 2)[1]), reply


@pytest.mark.timeout(60)
def test_run_web_plugin_serves_files(plugin_master, tmp_path):
    site = tmp_path / "site"
    (site / "docs").mkdir(parents=True)
    (site / "hello.txt").write_text("hello from corral\n")
    (site / "docs" / "index.html").write_text("<h1>docs</h1>")
    (tmp_path / "secret.txt").write_text("do not serve")
    port = free_port()
    m = plugin_master("web", "--port", str(port), "--path", str(site))
    row = m.wait_state("web", "RUNNING")
    assert row["pid"]
    m.wait_log(rf"web\[\d+\] +serving {re.escape(str(site))} on http://127\.0\.0\.1:{port}/")

    status, headers, body = fetch(port, "/hello.txt")
    assert (status, body) == (200, b"hello from corral\n")
    assert headers["Content-Length"] == str(len(body)) and headers["Content-Type"] == "text/plain"
    assert fetch(port, "/docs/")[0::2] == (200, b"<h1>docs</h1>")
    assert fetch(port, "/hello.txt", "HEAD")[0::2] == (200, b"")
    assert fetch(port, "/missing.txt")[0] == 404
    status, reply = raw_get(port, "/../secret.txt")
    assert status == 403 and b"do not serve" not in reply
    m.wait_log(r'"GET /missing.txt HTTP/1.1" 404')

    tree = m.call("tree")
    assert "plugin web" in str(tree)
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.timeout(60)
def test_run_third_party_plugin_and_reload(plugin_master):
    m = plugin_master("hello", "--greeting", "good morning", "--every", "0.2", env=env_with_fixture_plugins())
    m.wait_state("hello", "RUNNING")
    m.wait_log(r"hello\[\d+\] +greeting: good morning", count=2)
    pid = m.status("hello")["pid"]
    result = m.call("reload")  # make_service again, same options: nothing changes
    assert result["unchanged"] == ["hello"] and result["changed"] == []
    assert m.status("hello")["pid"] == pid
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0


@pytest.mark.timeout(60)
def test_plugins_command_lists_broken_by_name():
    done = corral("plugins", env=env_with_fixture_plugins())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "broken           (broken: ModuleNotFoundError: No module named 'corral_fixture_not_installed')" in lines
    assert "hello            Prints a greeting now and then." in lines
    web = [line for line in lines if line.startswith("web ")]
    assert web and web[0].startswith("web              A static file server")

    plain = corral("plugins")  # only installed entry points: corral's own
    assert plain.returncode == 0
    own = plain.stdout.split("\n\n")[0]  # twistd's plugins follow, with Twisted installed
    names = [line.split()[0] for line in own.splitlines()]
    assert "web" in names and "hello" not in names and "broken" not in names


@pytest.mark.timeout(60)
def test_run_web_help():
    done = corral("run", "web", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: corral run [run options] web [options]")
    assert "A static file server" in done.stdout
    for option in ("--port PORT", "--path DIR", "--interface ADDR"):
        assert option in done.stdout


@pytest.mark.timeout(60)
def test_run_errors_start_nothing(tmp_path):
    sock = str(tmp_path / "c.sock")
    unknown = corral("run", "--socket", sock, "no-such-plugin", cwd=str(tmp_path))
    assert unknown.returncode == 2
    assert "'no-such-plugin' is neither a config file nor a plugin (plugins: " in unknown.stderr
    assert "web" in unknown.stderr
    broken = corral("run", "--socket", sock, "broken", env=env_with_fixture_plugins(), cwd=str(tmp_path))
    assert broken.returncode == 1
    assert broken.stderr.rstrip().endswith(
        "is broken: ModuleNotFoundError: No module named 'corral_fixture_not_installed'")
    late = corral("run", "web", "--socket", sock, cwd=str(tmp_path))
    assert late.returncode == 2 and "unrecognized arguments: --socket" in late.stderr
    assert not os.path.exists(sock)


@pytest.mark.timeout(60)
def test_without_twisted_corrals_own_plugins_are_all_there_is():
    """A Python where `import twisted` fails (sys.modules["twisted"] = None):
    the listing, a plugin's --help and the unknown-name error are as before."""
    def without_twisted(*argv):
        code = ("import sys; sys.modules['twisted'] = None\n"
                "from corral.cli.main import main; sys.exit(main(sys.argv[1:]))")
        return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL, check=False)

    listed = without_twisted("plugins")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("web ") and "twistd plugins" not in listed.stdout
    assert listed.stderr == ""
    shown = without_twisted("run", "web", "--help")
    assert shown.returncode == 0 and "--path DIR" in shown.stdout
    unknown = without_twisted("run", "fastpoetry")
    assert unknown.returncode == 2
    assert unknown.stderr == ("corral: error: 'fastpoetry' is neither a config file nor a "
                              "plugin (plugins: web)\n")
