"""`supervisorctl status` with N programs: corral's XML-RPC against supervisord's.

Both run the same N `sleep` programs in the same run; each is asked ROUNDS
times (in turn), as a whole `supervisorctl status` command (wall ms, Python start-up
included) and as one getAllProcessInfo call over a kept connection.

    .venv/bin/python benchmarks/xmlrpc_status.py [N] [ROUNDS]
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


def main(n=100, rounds=20):
    folder = tempfile.mkdtemp(prefix="xrbench-", dir="/tmp")
    with open(f"{folder}/supervisord.conf", "w") as f:
        f.write(f"[unix_http_server]\nfile = {folder}/s.sock\n[supervisord]\n"
                f"logfile = {folder}/sd.log\npidfile = {folder}/sd.pid\nchildlogdir = {folder}\n"
                "[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = "
                "supervisor.rpcinterface:make_main_rpcinterface\n")
        for i in range(n):
            f.write(f"[program:p{i:03d}]\ncommand = sleep 100000\nstartsecs = 0\n")
    with open(f"{folder}/corral.toml", "w") as f:
        f.write(f'[corral]\nxmlrpc = "unix://{folder}/c.sock"\n')
        for i in range(n):
            f.write(f'[services.p{i:03d}]\ncommand = ["sleep", "100000"]\n')
    procs = {
        "supervisord": (subprocess.Popen([os.path.join(BIN, "supervisord"), "-n", "-c",
                                          f"{folder}/supervisord.conf"], start_new_session=True,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                        f"unix://{folder}/s.sock"),
        "corral": (subprocess.Popen([sys.executable, "-m", "corral", "run", f"{folder}/corral.toml",
                                     "--socket", f"{folder}/ctl.sock"], start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
                   f"unix://{folder}/c.sock"),
    }
    try:
        for name, (_proc, url) in procs.items():
            wait_running(url, n)
        print(f"{n} programs, median of {rounds}: `supervisorctl status` ms | "
              "getAllProcessInfo ms")
        results = measure([url for _proc, url in procs.values()], rounds)
        for name, (_proc, url) in procs.items():
            ctl, call = results[url]
            print(f"  {name:12} {ctl:8.1f} | {call:6.2f}")
    finally:
        for proc, _url in procs.values():
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
