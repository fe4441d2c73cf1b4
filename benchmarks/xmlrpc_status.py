"""`supervisorctl status` with N programs: corral's XML-RPC against supervisord's.

Both run the same supervisord.conf (N `sleep` programs) in the same run;
each is asked ROUNDS times (in turn), as a whole `supervisorctl status` command (wall ms, Python start-up
included) and as one getAllProcessInfo call over a kept connection.

    .venv/bin/python benchmarks/xmlrpc_status.py [N] [ROUNDS] [BEFORE]

BEFORE: the folder of another corral checkout (e.g. /work/main), run as a
third master on the same file (PYTHONPATH=BEFORE), to compare a change
with the code before it in the same run.
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

from supervisor.xmlrpc import SupervisorTransport

BIN = os.path.dirname(sys.executable)


def wait_running(url, n, deadline=60.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            infos = proxy(url).supervisor.getAllProcessInfo()
            if sum(info["statename"] == "RUNNING" for info in infos) == n:
                return
        except (OSError, xmlrpc.client.Fault):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url}: not {n} RUNNING after {deadline} s")


def proxy(url):
    return xmlrpc.client.ServerProxy("http://127.0.0.1",
                                     transport=SupervisorTransport(None, None, url))


def measure(urls, rounds):
    """{url: (median command ms, median call ms)}, the servers asked in turn
    in each round so that a busy moment of the machine costs both alike."""
    ctl = {url: [] for url in urls}
    call = {url: [] for url in urls}
    servers = {url: proxy(url) for url in urls}
    for _ in range(rounds):
        for url in urls:
            began = time.perf_counter()
            done = subprocess.run([os.path.join(BIN, "supervisorctl"), "-s", url, "status"],
                                  capture_output=True)
            ctl[url].append((time.perf_counter() - began) * 1000)
            assert done.returncode == 0, done.stdout
            began = time.perf_counter()
            servers[url].supervisor.getAllProcessInfo()
            call[url].append((time.perf_counter() - began) * 1000)
    return {url: (statistics.median(ctl[url]), statistics.median(call[url])) for url in urls}


def write_conf(folder, n):
    """The same supervisord.conf for both, each in its own folder (%(here)s)."""
    os.makedirs(folder)
    with open(f"{folder}/supervisord.conf", "w") as f:
        f.write("[unix_http_server]\nfile = %(here)s/s.sock\n[supervisord]\n"
                "logfile = %(here)s/sd.log\npidfile = %(here)s/sd.pid\n"
                "childlogdir = %(here)s\n[rpcinterface:supervisor]\n"
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n")
        for i in range(n):
            f.write(f"[program:p{i:03d}]\ncommand = sleep 100000\nstartsecs = 0\n")
    return f"{folder}/supervisord.conf"


def corral(conf, folder, pythonpath=None):
    env = dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else None
    return subprocess.Popen([sys.executable, "-m", "corral", "run", conf, "--socket",
                             f"{folder}/ctl.sock"], start_new_session=True, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(n=100, rounds=20, before=None):
    folder = tempfile.mkdtemp(prefix="xrbench-", dir="/tmp")
    theirs, ours = write_conf(f"{folder}/sd", n), write_conf(f"{folder}/corral", n)
    procs = {
        "supervisord": (subprocess.Popen([os.path.join(BIN, "supervisord"), "-n", "-c", theirs],
                                         start_new_session=True, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL),
                        f"unix://{folder}/sd/s.sock"),
        "corral": (corral(ours, f"{folder}/corral"), f"unix://{folder}/corral/s.sock"),
    }
    if before:
        procs["corral before"] = (corral(write_conf(f"{folder}/before", n), f"{folder}/before",
                                         os.path.abspath(before)), f"unix://{folder}/before/s.sock")
    try:
        for name, (_proc, url) in procs.items():
            wait_running(url, n)
        print(f"{n} programs, median of {rounds}: `supervisorctl status` ms | "
              "getAllProcessInfo ms")
        results = measure([url for _proc, url in procs.values()], rounds)
        for name, (_proc, url) in procs.items():
            ctl, call = results[url]
            print(f"  {name:14} {ctl:8.1f} | {call:6.2f}")
    finally:
        for proc, _url in procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]), *sys.argv[3:4])
