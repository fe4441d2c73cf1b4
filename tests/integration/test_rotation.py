"""Log files on a real host: size rotation, reopen after logrotate, full disk."""

import glob
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.integration.harness import argv, wait_until

# Writes numbered lines: argv[1] of them (0: forever, one every 5 ms), in
# small flushed batches, so the master reads many chunks; then sleeps.
COUNTER = r"""
import itertools, sys, time
count, width = int(sys.argv[1]), int(sys.argv[2])
pad = "x" * width
for i in (range(count) if count else itertools.count()):
    sys.stdout.write(f"n={i} {pad}\n")
    if i % 37 == 0 or not count:
        sys.stdout.flush()
        time.sleep(0 if count else 0.005)
sys.stdout.flush()
print("counter done", flush=True)
time.sleep(1000)
"""


def counter(m, count, width=40):
    return argv(sys.executable, os.path.join(m.dir, "counter.py"), str(count), str(width))


def numbers(paths, instance):
    """The n= of every `instance[pid] n=...` line of the files, in order."""
    regex = re.compile(r"^\S+ \S+ " + re.escape(instance) + r"\[\d+\] +n=(\d+) x*$")
    found = []
    for path in paths:
        with open(path) as f:
            text = f.read()
        assert text == "" or text.endswith("\n"), f"{path} ends mid-line"
        for line in text.splitlines():
            match = regex.match(line)
            if match:
                found.append(int(match[1]))
            else:  # anything else is a whole line of another writer
                assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+\[\d+\] ", line), (path, line)
    return found


def chain(path):
    """path.N, ..., path.1, path: oldest first."""
    old = sorted(glob.glob(path + ".*"), key=lambda p: -int(p.rsplit(".", 1)[1]))
    return old + [path]


@pytest.mark.timeout(60)
def test_rotation_by_size_loses_no_line(master):
    count = 20_000
    m = master("", start=False)
    with open(os.path.join(m.dir, "counter.py"), "w") as f:
        f.write(COUNTER)
    with open(m.config, "w") as f:
        f.write(f"""
[corral]
log_dir = "logs"
log_max_bytes = "64K"
log_backups = 100

[services.count]
command = {counter(m, count)}
log_max_bytes = 20000
log_backups = 200

[services.few]
command = {counter(m, count)}
log_backups = 2
""")
    m.start()

    def both_done():
        try:
            text = "".join(open(p).read() for p in chain(m.logfile))
        except FileNotFoundError:  # rotated between the glob and the open
            return False
        return "count" in re.findall(r"(\w+)\[\d+\] +counter done", text) \
            and "few" in re.findall(r"(\w+)\[\d+\] +counter done", text)
    wait_until(both_done, timeout=30, message="both counters done", dump=m.output)
    m.call("shutdown")  # no more rotations while the files are read
    m.wait_exit()

    merged = chain(m.logfile)
    assert len(merged) > 5                          # it rotated several times
    assert numbers(merged, "count") == list(range(count))
    assert numbers(merged, "few") == list(range(count))
    own = chain(os.path.join(m.dir, "logs", "count.log"))
    assert len(own) > 5                             # its own limit
    assert numbers(own, "count") == list(range(count))
    sizes = [os.path.getsize(p) for p in own]
    assert max(sizes) < 20000 + 600 * 1024          # one chunk at most beyond the limit

    # log_backups = 2: the oldest were dropped, what is left is the newest lines.
    few = chain(os.path.join(m.dir, "logs", "few.log"))
    assert [os.path.basename(p) for p in few] == ["few.log.2", "few.log.1", "few.log"]
    kept = numbers(few, "few")
    assert kept == list(range(kept[0], count)) and kept[0] > 0


@pytest.mark.timeout(60)
def test_reopen_after_logrotate_moved_the_files(master):
    m = master("", start=False)
    with open(os.path.join(m.dir, "counter.py"), "w") as f:
        f.write(COUNTER)
    with open(m.config, "w") as f:
        f.write(f'[corral]\nlog_dir = "logs"\n\n[services.tick]\ncommand = {counter(m, 0)}\n')
    m.start()
    own = os.path.join(m.dir, "logs", "tick.log")
    moves = []
    for how in ("SIGUSR1", "reopen"):
        m.wait_log(r"tick\[\d+\] +n=\d+", count=20)
        for path in (m.logfile, own):                # what logrotate does
            os.rename(path, f"{path}.moved{len(moves)}")
        moves.append(how)
        wait_until(lambda: len(numbers([f"{own}.moved{len(moves) - 1}"], "tick")) > 40,
                   message="lines still going to the moved file", dump=m.output)
        if how == "SIGUSR1":
            m.signal(signal.SIGUSR1)
        else:
            assert m.call("reopen") is None
        wait_until(lambda: os.path.exists(own) and os.path.exists(m.logfile)
                   and numbers([own], "tick"), message="new files after reopen", dump=m.output)
    m.call("stop", names=["tick"])
    for path in (m.logfile, own):
        got = numbers([f"{path}.moved0", f"{path}.moved1", path], "tick")
        assert got == list(range(len(got))), f"{path}: lines lost or repeated"
        assert all(numbers([p], "tick") for p in (f"{path}.moved0", f"{path}.moved1", path))
    assert m.call("version").get("errors") is None


def mount_tmpfs(path, size):
    """Mount a small tmpfs at path, or skip the test saying why not."""
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs root to mount a small tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                    "the /dev/full test covers ENOSPC instead")


@pytest.mark.timeout(60)
def test_full_disk_reported_supervision_goes_on_writing_resumes(master):
    m = master("", start=False)
    disk = os.path.join(m.dir, "disk")
    os.mkdir(disk)
    mount_tmpfs(disk, "256k")
    try:
        with open(os.path.join(m.dir, "counter.py"), "w") as f:
            f.write(COUNTER)
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:                # most of the disk, freed later
            f.write(b"\0" * 200 * 1024)
        with open(m.config, "w") as f:
            f.write(f"""
[corral]
log_dir = "disk"

[services.tick]
command = {counter(m, 0, width=400)}
start_seconds = 0

[services.other]
command = ["sleep", "1000"]
start_seconds = 0
""")
        m.start()
        m.wait_log(r"cannot write log_dir/tick\.log .*: No space left on device")
        row = m.status("tick")
        assert row["state"] == "RUNNING"
        assert "log: No space left on device" in row["description"]
        assert "log_dir/tick.log: No space left on device" in m.call("version")["errors"]
        # Supervision does not care: restart a service, its lines still reach
        # the merged log, the master answers.
        m.call("restart", names=["other"])
        m.wait_state("other", "RUNNING")
        assert m.status("tick")["state"] == "RUNNING"

        os.unlink(filler)                            # space comes back
        m.wait_log(r"log_dir/tick\.log: writing resumed \(\d+ bytes lost\)")
        wait_until(lambda: "log:" not in (m.status("tick")["description"] or ""),
                   message="the status to clear", dump=m.output)
        size = os.path.getsize(os.path.join(disk, "tick.log"))
        wait_until(lambda: os.path.getsize(os.path.join(disk, "tick.log")) > size + 10000,
                   message="tick.log to grow again", dump=m.output)
        m.signal(signal.SIGTERM)
        assert m.wait_exit() == 0
        with open(os.path.join(disk, "tick.log")) as f:
            lines = f.read().splitlines()
        # At most one line was cut where the disk filled; everything after is whole.
        torn = [ln for ln in lines if not re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+\[\d+\] ", ln)
                or ("] n=" in ln and not ln.endswith("x" * 400))]
        assert len(torn) <= 1, torn
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.proc.send_signal(signal.SIGKILL)
            m.proc.wait(10)
        subprocess.run(["umount", "-l", disk], capture_output=True)


@pytest.mark.timeout(30)
def test_dev_full_and_unwritable_paths_never_stop_supervision(master):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    # --logfile /dev/full (the harness's own --logfile comes first: the last wins)
    m = master("", start=False, args=("--logfile", "/dev/full"))
    with open(os.path.join(m.dir, "plain"), "w") as f:
        f.write("a file where log_dir wants a folder\n")
    with open(m.config, "w") as f:
        f.write('[corral]\nlog_dir = "plain/logs"\n\n'
                '[services.a]\ncommand = ["sh", "-c", "echo hello; exec sleep 1000"]\n')
    m.start()
    m.wait_state("a", "RUNNING")
    wait_until(lambda: "log: Not a directory" in (m.status("a")["description"] or ""),
               message="the status to show the log error", dump=m.output)
    errors = m.call("version")["errors"]
    assert "logfile: No space left on device" in errors
    assert "log_dir/a.log: Not a directory" in errors
    # The merged stream (console, rings) still has the lines and the notices.
    lines = [d["line"] for d in m.call("logs", lines=100)]
    assert "hello" in lines
    assert sum("cannot write logfile /dev/full" in ln for ln in lines) == 1
    assert not glob.glob("/dev/full.*")              # never rotated
    m.call("restart", names=["a"])
    m.wait_state("a", "RUNNING")
    m.signal(signal.SIGTERM)
    assert m.wait_exit() == 0
