"""The three supervisors under test, behind one small interface.

    peer = make_peer("supervisord", knob="startsecs=0", workdir=..., python=...)
    peer.start([Svc("s0", [...]), ...])     # writes its config, launches the master
    peer.running()                          # how many services its API calls running
    peer.status_argv()                      # the whole `status` command
    peer.stop()                             # SIGTERM, then SIGKILL what is left

Each master runs in its own session (its pid is its process group) with
stdout/stderr in files under workdir. Its state is read through its own API
(corral's control socket, supervisord's XML-RPC, circus' ZeroMQ endpoint),
its processes through /proc (procs.py). Knobs: the one obvious setting that a
user would tune for fast restarts, labelled in every result.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import procs

HERE = os.path.dirname(os.path.abspath(__file__))
ECHO = os.path.join(HERE, "echo_server.py")
CORRAL_ECHO = os.path.join(HERE, "corral_echo.py")


@dataclass
class Svc:
    name: str
    argv: list = None          # a command; None with kind="echo"
    kind: str = "command"      # "command" | "echo" (the TCP echo server)
    port: int = None           # echo: the port
    log: bool = False          # its output to <workdir>/logs/<name>.log, no rotation
    env: dict = field(default_factory=dict)


class Peer:
    key = None

    def __init__(self, workdir, python, knob=None):
        self.workdir = workdir
        self.python = python              # the venv's interpreter
        self.bindir = os.path.dirname(python)
        self.knob = knob
        self.proc = None
        self.launched = None
        os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)

    @property
    def label(self):
        return self.key + (f" ({self.knob})" if self.knob else "")

    @property
    def pid(self):
        return self.proc.pid

    def log_path(self, name):
        return os.path.join(self.workdir, "logs", f"{name}.log")

    def log_files(self, name):
        """Every file that must end up with all of name's output."""
        return [self.log_path(name)]

    def start(self, services):
        argv, env = self.configure(services)
        # stdout and stderr to files, as under systemd or a container
        # runtime (issue 17 item 1): what a master copies to a stdout that is
        # not a terminal is its own cost. The peers write only their own
        # messages there; corral's console is "auto" (docs/config.md).
        out = open(os.path.join(self.workdir, "master.out"), "ab")
        err = open(os.path.join(self.workdir, "master.err"), "ab")
        self.launched = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=out, stderr=err,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir,
                                     env={**os.environ, **env}, start_new_session=True)
        out.close()
        err.close()
        return self

    def wait_api(self, timeout=20):
        """Wait until the master answers on its API; False if it never does."""
        value, _ = procs.wait_until(self._answers, timeout, pause=0.01)
        return bool(value)

    def _answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.label}: the master exited ({self.proc.returncode}); "
                               f"see {self.workdir}/master.err")
        try:
            self.running()
            return True
        except Exception:
            return False

    def wait_running(self, n, timeout=30, pause=0.005):
        """(True, monotonic time) once n services are running by the master's API."""
        def check():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label}: the master exited; see {self.workdir}/master.err")
            try:
                return self.running() >= n
            except Exception:
                return False
        return procs.wait_until(check, timeout, pause)

    def workers(self):
        return procs.live_children(self.pid)

    def stop(self, timeout=5):
        """SIGTERM, wait (bounded), then kill whatever is left below the master."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self):
        """SIGKILL the master and everything below it (by pid), and its group."""
        if self.proc is None:
            return
        procs.kill_tree(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.close()

    def close(self):
        pass

    # per peer
    def configure(self, services):
        raise NotImplementedError

    def running(self):
        raise NotImplementedError

    def status_argv(self):
        raise NotImplementedError


# -- corral -------------------------------------------------------------------


def _toml_str(value):
    return json.dumps(value)  # a JSON string is a valid TOML basic string


class Corral(Peer):
    key = "corral"

    def configure(self, services):
        self.sock = os.path.join(self.workdir, "corral.sock")
        self.logfile = os.path.join(self.workdir, "corral.log")
        env = {}
        if len(services) == 1 and services[0].kind == "echo":
            # The Python tree with a master-held socket; master settings by flag.
            config = CORRAL_ECHO
            env["BENCH_ECHO_PORT"] = str(services[0].port)
            self.echo_name = "echo"
        else:
            config = os.path.join(self.workdir, "corral.toml")
            lines = ["[corral]", f"socket = {_toml_str(self.sock)}",
                     f"logfile = {_toml_str(self.logfile)}",
                     f"log_dir = {_toml_str(os.path.join(self.workdir, 'logs'))}",
                     "log_max_bytes = 0", ""]
            for svc in services:
                argv = svc.argv if svc.kind == "command" else \
                    [self.python, ECHO, "--port", str(svc.port)]
                lines.append(f"[services.{svc.name}]")
                lines.append(f"command = [{', '.join(_toml_str(a) for a in argv)}]")
                if self.knob:
                    lines.append(self.knob.replace("=", " = ", 1))  # start_seconds = 0
                if svc.env:
                    lines.append("env = { " + ", ".join(
                        f"{k} = {_toml_str(v)}" for k, v in svc.env.items()) + " }")
                lines.append("")
            with open(config, "w") as f:
                f.write("\n".join(lines))
        argv = [self.python, "-m", "corral", "run", config, "--socket", self.sock,
                "--logfile", self.logfile, "--log-dir", os.path.join(self.workdir, "logs")]
        return argv, env

    def log_files(self, name):
        return [self.logfile, self.log_path(name)]  # the merged stream and its own file

    def client(self):
        from corral.cli.client import Client

        return Client(self.sock)

    def running(self):
        with self.client() as c:
            tree = c.call("tree")
        return sum(1 for node in tree["children"] for inst in node["instances"]
                   if inst["state"] == "RUNNING")

    def states(self):
        with self.client() as c:
            tree = c.call("tree")
        return {inst["name"]: inst["state"] for node in tree["children"]
                for inst in node["instances"]}

    def status_argv(self):
        return [self.python, "-m", "corral", "status", "--socket", self.sock]


# -- supervisord ---------------------------------------------------------------


class Supervisord(Peer):
    key = "supervisord"

    def configure(self, services):
        self.sock = os.path.join(self.workdir, "supervisor.sock")
        self.conf = os.path.join(self.workdir, "supervisord.conf")
        lines = [
            "[unix_http_server]", f"file={self.sock}", "",
            "[supervisord]", "nodaemon=true", f"logfile={self.workdir}/supervisord.log",
            f"pidfile={self.workdir}/supervisord.pid", f"childlogdir={self.workdir}/logs", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{self.sock}", "",
        ]
        for svc in services:
            argv = svc.argv if svc.kind == "command" else \
                [self.python, ECHO, "--port", str(svc.port)]
            lines += [f"[program:{svc.name}]", "command=" + shlex.join(argv)]
            if svc.log:
                lines += [f"stdout_logfile={self.log_path(svc.name)}",
                          "stdout_logfile_maxbytes=0", "redirect_stderr=true"]
            if self.knob:
                lines.append(self.knob)  # e.g. startsecs=0
            if svc.env:
                lines.append("environment=" + ",".join(
                    f'{k}="{v}"' for k, v in svc.env.items()))
            lines.append("")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))
        return [os.path.join(self.bindir, "supervisord"), "-c", self.conf], {}

    def proxy(self):
        import xmlrpc.client

        from supervisor.xmlrpc import SupervisorTransport

        return xmlrpc.client.ServerProxy(
            "http://127.0.0.1", transport=SupervisorTransport(None, None, f"unix://{self.sock}"))

    def running(self):
        return sum(1 for p in self.proxy().supervisor.getAllProcessInfo()
                   if p["statename"] == "RUNNING")

    def states(self):
        return {p["name"]: p["statename"] for p in self.proxy().supervisor.getAllProcessInfo()}

    def status_argv(self):
        return [os.path.join(self.bindir, "supervisorctl"), "-c", self.conf, "status"]


# -- circus ---------------------------------------------------------------------


class Circus(Peer):
    key = "circus"

    def __init__(self, workdir, python, knob=None, shared_socket=False):
        super().__init__(workdir, python, knob)
        self.shared_socket = shared_socket

    @property
    def label(self):
        parts = [p for p in (self.knob, "[socket:]" if self.shared_socket else None) if p]
        return self.key + (f" ({', '.join(parts)})" if parts else "")

    def configure(self, services):
        self.endpoint = f"ipc://{self.workdir}/circus.ctl"
        self.conf = os.path.join(self.workdir, "circus.ini")
        lines = ["[circus]", f"endpoint = {self.endpoint}",
                 f"pubsub_endpoint = ipc://{self.workdir}/circus.pub"]
        # No stats_endpoint: setting one turns circusd-stats on (an extra process).
        if self.knob:
            lines.append(self.knob.replace("=", " = ", 1))  # check_delay = 0.1
        lines.append("")
        for svc in services:
            if svc.kind == "echo" and self.shared_socket:
                argv = [self.python, ECHO, "--fd", f"$(circus.sockets.{svc.name})"]
                lines += [f"[socket:{svc.name}]", "host = 127.0.0.1", f"port = {svc.port}", ""]
            elif svc.kind == "echo":
                argv = [self.python, ECHO, "--port", str(svc.port)]
            else:
                argv = svc.argv
            lines += [f"[watcher:{svc.name}]", "cmd = " + shlex.join(argv), "numprocesses = 1"]
            if svc.kind == "echo" and self.shared_socket:
                lines.append("use_sockets = True")
            if svc.log:
                lines += ["stdout_stream.class = FileStream",
                          f"stdout_stream.filename = {self.log_path(svc.name)}"]
            if svc.env:
                lines += [f"[env:{svc.name}]"] + [f"{k} = {v}" for k, v in svc.env.items()]
            lines.append("")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines))
        return [os.path.join(self.bindir, "circusd"), "--log-output",
                os.path.join(self.workdir, "circusd.log"), self.conf], {}

    def client(self):
        from circus.client import CircusClient

        if getattr(self, "_client", None) is None:
            self._client = CircusClient(endpoint=self.endpoint, timeout=5)
        return self._client

    def close(self):
        client, self._client = getattr(self, "_client", None), None
        if client is not None:
            client.stop()

    def _statuses(self):
        reply = self.client().call({"command": "status", "properties": {}})
        if reply.get("status") != "ok":
            raise RuntimeError(reply)
        return reply["statuses"]

    def running(self):
        return sum(1 for s in self._statuses().values() if s == "active")

    def states(self):
        return dict(self._statuses())

    def status_argv(self):
        return [os.path.join(self.bindir, "circusctl"), "--endpoint", self.endpoint, "status"]


def make_peer(key, workdir, python, knob=None, shared_socket=False):
    if key == "corral":
        return Corral(workdir, python, knob)
    if key == "supervisord":
        return Supervisord(workdir, python, knob)
    if key == "circus":
        return Circus(workdir, python, knob, shared_socket)
    raise ValueError(key)


def versions(python):
    """{name: version} of the peers installed for python."""
    code = ("import json, importlib.metadata as m\n"
            "out = {}\n"
            "for n in ('supervisor', 'circus', 'pyzmq', 'tornado', 'psutil', 'multiprocess'):\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\n"
            "import corral; out['corral'] = corral.__version__\n"
            "print(json.dumps(out))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


if __name__ == "__main__":
    print(versions(sys.executable))
