"""How long the master can keep a client waiting while log followers meet a flood.

    python benchmarks/follow_stall.py [--followers 10] [--lines 2000000] [--idle 0]
                                      [--cmd version] [--src DIR]

A master runs one service that prints --lines empty lines at once (64 KiB
reads of "\\n": the most lines per byte, so the most work per line for
followers). Meanwhile --followers raw connections follow `logs` and never
read (a 4 KiB receive buffer), --idle connections are opened and never send
anything, and one `corral logs -f` reads to /dev/null. A client asks --cmd
(`version`, or `status`) every 20 ms for 8 s, each time on a fresh
connection; printed: the median, p99 and slowest answer, the requests that
failed, and the master's peak RSS (sampled every request).
--src runs the corral of another checkout (a baseline: git worktree add DIR
REV). Everything listens on a unix socket in a fresh folder under /tmp; the
master and the CLI are ended by pid.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def ask(path, cmd):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall(json.dumps({"id": 1, "cmd": cmd}).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("the master closed the connection")
            reply += chunk
    answer = json.loads(reply)
    if not answer.get("ok"):
        raise RuntimeError(f"{cmd} failed: {reply[:200]!r}")
    return answer


def rss_mb(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=10)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--cmd", default="version", choices=("version", "status"))
    parser.add_argument("--src", default=os.path.dirname(HERE))
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.path.abspath(args.src)}
    folder = tempfile.mkdtemp(prefix="corral-follow-", dir="/tmp")
    config = os.path.join(folder, "c.toml")
    flood = (f"import sys, time; time.sleep(1); sys.stdout.write(chr(10) * {args.lines}); "
             "sys.stdout.flush(); time.sleep(1000)")
    with open(config, "w") as f:
        f.write(f"[services.flood]\ncommand = {json.dumps([sys.executable, '-c', flood])}\n")
    sock = os.path.join(folder, "s")
    master = subprocess.Popen(
        [sys.executable, "-m", "corral", "run", config, "--socket", sock,
         "--logfile", os.path.join(folder, "corral.log")],
        env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    followers, cli = [], None
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                ask(sock, "version")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the master never answered") from None
                time.sleep(0.01)
        for _ in range(args.idle):
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            followers.append(s)
        for _ in range(args.followers):
            s = socket.socket(socket.AF_UNIX)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(sock)
            s.sendall(b'{"id": 1, "cmd": "logs", "args": {"follow": true, "lines": 0}}\n')
            followers.append(s)
        cli = subprocess.Popen([sys.executable, "-m", "corral", "logs", "-f", "-n", "0",
                                "--socket", sock], env=env, stdout=subprocess.DEVNULL)
        times, failed, peak, end = [], 0, 0.0, time.monotonic() + 8
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                ask(sock, args.cmd)
                times.append(time.monotonic() - started)
            except (OSError, RuntimeError):
                failed += 1
            peak = max(peak, rss_mb(master.pid))
            time.sleep(0.02)
        times.sort()
        ms = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000  # noqa: E731
        print(f"corral from {args.src}: {args.followers} stuck followers, {args.idle} idle, "
              f"`corral logs -f`, {args.lines} empty lines, `{args.cmd}` x{len(times) + failed}: "
              f"p50 {ms(0.5):.1f} ms, p99 {ms(0.99):.1f} ms, slowest {times[-1] * 1000:.0f} ms, "
              f"{failed} failed, master peak RSS {peak:.0f} MB")
    finally:
        for s in followers:
            s.close()
        if cli is not None:
            cli.kill()
            cli.wait()
        master.terminate()  # its ordered stop; SIGKILL only if that hangs
        try:
            master.wait(15)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
