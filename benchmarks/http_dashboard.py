"""The HTTP listener with many services: scrape cost, first paint, dashboards in a flood.

Starts a master with N sleeping command services (default 500) and `http`
on, then measures:
1. /metrics: the wall time of one scrape and the master's CPU time per
   scrape (its utime+stime from /proc), back to back (the usage sample
   cached, api.USAGE_MAX_AGE) and 1.1 s apart (a fresh /proc pass each);
2. the dashboard in Debian's chromium (if installed): first contentful
   paint and the time until the table shows all N instances;
3. the master's CPU while a service floods its log, with 0 and then 10
   dashboards' streams open (/api/events and the merged /api/logs/stream,
   read by plain sockets as fast as they come).

    python benchmarks/http_dashboard.py [--services 500] [--scrapes 50] [--metrics-only] [--src DIR]

--src runs the corral of another checkout (git archive REV corral | tar -x
-C DIR), for a before and after; --metrics-only stops after the scrapes.

Run by hand; the figures go into docs/benchmarks.md with the command.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TICKS = os.sysconf("SC_CLK_TCK")
FLOOD = "import sys\nline = b'x' * 100 + b'\\n'\nwhile True: sys.stdout.buffer.write(line * 100)"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def scrape(port, token):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    body = conn.getresponse().read()
    conn.close()
    return body


def scrapes(pid, port, token, count, pause):
    walls, before = [], cpu_seconds(pid)
    for _ in range(count):
        if pause:
            time.sleep(pause)
        start = time.perf_counter()
        scrape(port, token)
        walls.append((time.perf_counter() - start) * 1000)
    cpu = (cpu_seconds(pid) - before) / count * 1000
    return statistics.median(walls), cpu


def first_paint(url, token, services):
    if not (os.access("/usr/bin/chromium", os.X_OK) and os.access("/usr/bin/chromedriver", os.X_OK)):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="corral-bench-profile-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"{url}?token={token}")  # the cookie
        results = []
        for _ in range(3):
            driver.get(url)
            deadline = time.monotonic() + 30
            while driver.execute_script("return document.querySelectorAll('tr.instance').length") < services:
                if time.monotonic() > deadline:
                    raise SystemExit("the table did not fill in 30 s")
                time.sleep(0.01)
            filled = driver.execute_script("return performance.now()")
            paint = driver.execute_script(
                "const p = performance.getEntriesByName('first-contentful-paint')[0];"
                "return p ? p.startTime : null")
            results.append((paint, filled))
        return results[-1]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def stream_readers(port, token, count):
    """count dashboards' two streams, read as fast as they come; returns a stop()."""
    socks = []
    for _ in range(count):
        for path in ("/api/events", "/api/logs/stream"):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(f"GET {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
            socks.append(s)
    stop = threading.Event()

    def read(s):
        s.settimeout(0.5)
        while not stop.is_set():
            try:
                if not s.recv(1 << 16):
                    return
            except socket.timeout:
                pass
            except OSError:
                return

    threads = [threading.Thread(target=read, args=(s,), daemon=True) for s in socks]
    for t in threads:
        t.start()

    def done():
        stop.set()
        for t in threads:
            t.join()
        for s in socks:
            s.close()
    return done


def flood_cpu(pid, port, token, dashboards, seconds=10):
    done = stream_readers(port, token, dashboards) if dashboards else (lambda: None)
    time.sleep(1)
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    percent = (cpu_seconds(pid) - before) / (time.monotonic() - start) * 100
    done()
    return percent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--metrics-only", action="store_true")
    parser.add_argument("--src", default=None, help="the checkout whose corral runs")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = os.path.abspath(args.src) + os.pathsep + env.get("PYTHONPATH", "")

    folder = tempfile.mkdtemp(prefix="corral-bench-", dir="/tmp")
    config = os.path.join(folder, "bench.toml")
    sock = os.path.join(folder, "c.sock")
    with open(config, "w") as f:
        f.write('[corral]\nhttp = "127.0.0.1:0"\n\n')
        f.write(f"[services.flood]\ncommand = {json.dumps([sys.executable, '-c', FLOOD])}\n"
                "autostart = false\n\n")
        for i in range(args.services):
            f.write(f'[services.s{i}]\ncommand = ["sleep", "1000"]\n\n')
    master = subprocess.Popen([sys.executable, "-m", "corral", "run", config, "--socket", sock],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, env=env, cwd=folder)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([sys.executable, "-m", "corral", "status", "--socket", sock]
                             + [f"s{i}" for i in range(args.services)] + ["--check"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=env, cwd=folder).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("the master did not get every service RUNNING in 60 s")
            time.sleep(0.2)
        with open(sock + ".http") as f:
            info = json.load(f)
        url, token = info["url"], info["token"]
        port = int(url.rsplit(":", 1)[1].rstrip("/"))
        size = len(scrape(port, token))
        print(f"{args.services} services; one scrape is {size} bytes")
        wall, cpu = scrapes(master.pid, port, token, args.scrapes, 0)
        print(f"/metrics back to back: wall {wall:.1f} ms median, master CPU {cpu:.1f} ms per scrape")
        wall, cpu = scrapes(master.pid, port, token, 10, 1.1)
        print(f"/metrics 1.1 s apart: wall {wall:.1f} ms median, master CPU {cpu:.1f} ms per scrape")
        if args.metrics_only:
            return
        paint = first_paint(url, token, args.services)
        if paint is None:
            print("first paint: skipped (no /usr/bin/chromium and /usr/bin/chromedriver)")
        else:
            print(f"first contentful paint {paint[0]:.0f} ms, all {args.services} rows shown "
                  f"{paint[1]:.0f} ms after navigation")
        subprocess.run([sys.executable, "-m", "corral", "start", "flood", "--socket", sock],
                       stdout=subprocess.DEVNULL, check=True, env=env, cwd=folder)
        for dashboards in (0, 10):
            print(f"log flood, {dashboards} dashboards open: master CPU "
                  f"{flood_cpu(master.pid, port, token, dashboards):.0f}%")
    finally:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(master.pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
