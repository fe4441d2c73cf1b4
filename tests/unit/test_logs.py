"""LogHub: real pipes, a real asyncio loop, deadline-based waits."""

import asyncio
import fcntl
import itertools
import json
import os
import struct
import termios
import subprocess
import sys
import time

import pytest

from corral.supervisor.logs import color_of
from tests.helpers import WALL

pytestmark = pytest.mark.timeout(30)


def run_until(loop, cond, timeout=5.0):
    """Run the loop until cond() holds; fail after the deadline."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        loop.run_until_complete(asyncio.sleep(0.005))


def lines_of(hub, name=None, n=10**9):
    return [d["line"] for d in hub.tail(name, n)]


def unread(fd):
    """Bytes waiting in a pipe (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def closed(fd):
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def prefix():
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(WALL))) + ".250"


def test_framing_across_chunk_boundaries(loop, hubs, tmp_path):
    hub = hubs(logfile=tmp_path / "all.log", ring_lines=100)
    r, w = os.pipe()
    hub.attach(r, "web:0", "web", 42, "out")
    for piece in (b"hel", b"lo\nwor", b"ld\r", b"\nx\n\n", b"y"):
        os.write(w, piece)                            # one chunk each
        run_until(loop, lambda: unread(r) == 0)
        loop.run_until_complete(asyncio.sleep(0))
    assert lines_of(hub) == ["hello", "world", "x", ""]
    os.close(w)
    run_until(loop, lambda: closed(r) or r not in hub._sources)
    assert lines_of(hub) == ["hello", "world", "x", "", "y"]   # partial last line at EOF
    text = (tmp_path / "all.log").read_bytes().decode()
    assert text.splitlines()[0] == f"{prefix()} web:0[42] hello"  # no stream tag
    assert text.endswith(" web:0[42] y\n")
    assert r not in hub._sources


def test_partial_last_line_at_eof_and_no_pid(loop, hubs, tmp_path):
    hub = hubs(logfile=tmp_path / "all.log")
    r, w = os.pipe()
    hub.attach(r, "db", "db", None, "err")
    os.write(w, b"first\nno newline at all")
    os.close(w)
    run_until(loop, lambda: r not in hub._sources)
    assert lines_of(hub, "db") == ["first", "no newline at all"]
    assert (tmp_path / "all.log").read_text().splitlines()[1] == \
        f"{prefix()} db     no newline at all"  # padded to "corral": names line up


CHILD = r"""
import os, sys
n = int(sys.argv[1])
out = b"".join(b"line %08d %s\n" % (i, b"x" * 80) for i in range(n))
view = memoryview(out)
while view:
    view = view[os.write(1, view[:100000]):]
"""


def test_many_lines_from_a_child_none_lost_order_kept(loop, hubs, tmp_path):
    n = 200_000
    hub = hubs(logfile=tmp_path / "all.log", log_dir=tmp_path / "logs")
    seen = []
    hub.follow(lambda batch: seen.extend(d["line"] for d in batch), "bulk")
    r, w = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(n)], stdout=w)
    os.close(w)
    hub.attach(r, "bulk:0", "bulk", child.pid, "out")
    cpu = time.process_time()
    run_until(loop, lambda: r not in hub._sources, timeout=20)
    cpu = time.process_time() - cpu
    assert child.wait(5) == 0
    assert len(seen) == n
    assert seen[0].startswith("line 00000000 ") and seen[-1].startswith(f"line {n - 1:08d} ")
    assert all(line[5:13] == f"{i:08d}" for i, line in enumerate(seen))
    for path in (tmp_path / "all.log", tmp_path / "logs" / "bulk.log"):
        with open(path, "rb") as f:
            numbers = [int(line.split(b"] line ")[1][:8]) for line in f]
        assert numbers == list(range(n))
    assert len(hub.tail(None, 10**9)) == 1000       # ring bounded
    assert cpu < 10, cpu


def test_long_line_split_into_pieces(loop, hubs, tmp_path):
    hub = hubs(logfile=tmp_path / "all.log", max_line=65536, ring_lines=100)
    r, w = os.pipe()
    hub.attach(r, "big:0", "big", 1, "out")
    size = 1_048_580                                  # a 1 MB line, then a short one
    child = subprocess.Popen([sys.executable, "-c",
                              f"import sys; sys.stdout.buffer.write(b'a' * {size} + b'\\nend\\n')"],
                             stdout=w)
    os.close(w)
    run_until(loop, lambda: r not in hub._sources, timeout=10)
    child.wait(5)
    got = lines_of(hub)
    assert got[-1] == "end"
    pieces = got[:-1]
    assert [len(p) for p in pieces] == [65536] * 16 + [4]
    assert "".join(pieces) == "a" * size
    # the same line through emit and as a whole complete chunk gives the same pieces
    hub.emit(b"b" * 200000)
    assert [len(p) for p in lines_of(hub)[-4:]] == [65536, 65536, 65536, 3392]


def test_long_partial_line_is_bounded_and_pieces_match(loop, hubs):
    hub = hubs(max_line=10)
    r, w = os.pipe()
    hub.attach(r, "p", "p", 1, "out")
    for piece in (b"0123456789", b"abcdefghij", b"XY\n"):
        os.write(w, piece)
        run_until(loop, lambda: unread(r) == 0)
        assert len(hub._sources[r].buf) <= 10
    run_until(loop, lambda: len(lines_of(hub)) == 3)
    assert lines_of(hub) == ["0123456789", "abcdefghij", "XY"]
    os.close(w)


def test_invalid_utf8_never_crashes(loop, hubs, tmp_path):
    hub = hubs(logfile=tmp_path / "all.log", console=None)
    followed = []
    hub.follow(followed.extend)
    r, w = os.pipe()
    hub.attach(r, "bin:0", "bin", 7, "out")
    os.write(w, b"ok \xff\xfe\xc3(\n\x00\x80tail")
    os.close(w)
    run_until(loop, lambda: r not in hub._sources)
    assert lines_of(hub) == ["ok \ufffd\ufffd\ufffd(", "\x00\ufffdtail"]
    assert [d["line"] for d in followed] == lines_of(hub)
    raw = (tmp_path / "all.log").read_bytes()
    assert b"] ok \xff\xfe\xc3(\n" in raw and raw.endswith(b"] \x00\x80tail\n")
    hub.emit("surrogate \udcff here")                # str that is not encodable
    assert lines_of(hub)[-1].startswith("surrogate ")


def test_drain_before_eof(loop, hubs):
    hub = hubs()
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    hub.attach(r1, "w:0", "w", 9, "out")
    hub.attach(r2, "w:0", "w", 9, "err")
    os.write(w1, b"one\ntwo\npart")
    os.write(w2, b"oops\n")
    hub.drain(9)                                      # no loop iteration needed
    hub.emit("w:0 exited with status 1")
    assert lines_of(hub) == ["one", "two", "oops", "w:0 exited with status 1"]
    assert not closed(r1) and r1 in hub._sources      # no EOF seen: still attached
    hub.drain(12345)                                  # unknown pid: nothing
    os.write(w1, b"ial\n")
    os.close(w1)
    os.close(w2)
    hub.drain(9)                                      # sees the data and EOF
    assert lines_of(hub)[-1] == "partial"
    assert r1 not in hub._sources and r2 not in hub._sources
    assert closed(r1) and closed(r2)


def test_ring_tail_merged_service_instance(loop, hubs):
    hub = hubs(ring_lines=5)
    hub.emit("a0", "web:0", "web", 1, "out")
    hub.emit("b0", "db", "db", 2, "out")
    hub.emit("a1", "web:1", "web", 3, "err")
    hub.emit("a2", "web:0", "web", 1, "out")
    hub.emit("master says")
    assert lines_of(hub) == ["a0", "b0", "a1", "a2", "master says"]
    assert lines_of(hub, "web") == ["a0", "a1", "a2"]
    assert lines_of(hub, "web:0") == ["a0", "a2"]
    assert lines_of(hub, "web:1") == ["a1"]
    assert lines_of(hub, "db") == ["b0"]
    assert lines_of(hub, "corral") == ["master says"]
    assert lines_of(hub, "nobody") == []
    assert lines_of(hub, None, 2) == ["a2", "master says"]
    assert hub.tail("web:0", 0) == []
    d = hub.tail("web:1")[0]
    assert d == {"time": WALL, "name": "web:1", "service": "web", "pid": 3,
                 "stream": "err", "line": "a1", "seq": 3}
    assert hub.tail()[-1]["pid"] is None and hub.tail()[-1]["stream"] == "log"
    for i in range(10):
        hub.emit(f"x{i}", "db", "db", 2, "out")
    assert lines_of(hub) == ["x5", "x6", "x7", "x8", "x9"]
    assert lines_of(hub, "web") == ["a0", "a1", "a2"]   # per-service rings are separate


def test_after_a_seq_gives_exactly_the_lines_not_seen(loop, hubs):
    hub = hubs(ring_lines=100)
    seen = []
    hub.follow(lambda batch: seen.extend(batch))
    hub.emit("one\ntwo", "web", "web", 1, "out")
    hub.emit("three", "db", "db", 2, "out")
    hub.emit("four\nfive", "web", "web", 1, "out")
    assert [d["seq"] for d in seen] == [1, 2, 3, 4, 5]           # followers see the seqs too
    assert [d["seq"] for d in hub.tail()] == [1, 2, 3, 4, 5]
    assert [d["line"] for d in hub.tail(None, 100, after=2)] == ["three", "four", "five"]
    assert [d["line"] for d in hub.tail("web", 100, after=2)] == ["four", "five"]
    assert hub.tail(None, 100, after=5) == [] and hub.tail("db", 100, after=3) == []
    assert [d["line"] for d in hub.tail(None, 1, after=1)] == ["five"]  # still the newest n


def test_tail_keeps_to_a_byte_budget_newest_first(loop, hubs):
    hub = hubs(ring_lines=10)
    for i in range(5):
        hub.emit(f"{i}" * 10, "web", "web", 1, "out")        # 10 bytes a line
    text = [d["line"] for d in hub.tail("web", 10, max_bytes=35)]
    assert text == ["2" * 10, "3" * 10, "4" * 10]              # 30 fit, 40 would not
    assert len(hub.tail("web", 10, max_bytes=50)) == 5
    assert [d["line"] for d in hub.tail("web", 10, max_bytes=1)] == ["4" * 10]  # one at least
    assert hub.tail("nobody", 10, max_bytes=1) == []


def test_follow_and_unfollow(loop, hubs):
    hub = hubs()
    everything, web, web1 = [], [], []
    t_all = hub.follow(everything.append)
    t_web = hub.follow(web.append, "web")
    hub.follow(web1.append, "web:1")
    r, w = os.pipe()
    hub.attach(r, "web:1", "web", 5, "out")
    os.write(w, b"l1\nl2\n")
    run_until(loop, lambda: everything)
    hub.emit("db up", "db", "db", 6)
    assert [[d["line"] for d in b] for b in everything] == [["l1", "l2"], ["db up"]]
    assert [[d["line"] for d in b] for b in web] == [["l1", "l2"]]
    assert web1 == web
    assert web[0][0]["name"] == "web:1" and web[0][0]["pid"] == 5
    hub.unfollow(t_web)
    hub.unfollow(t_web)                                # twice is harmless
    hub.unfollow(t_all)
    os.write(w, b"l3\n")
    os.close(w)
    run_until(loop, lambda: r not in hub._sources)
    assert len(everything) == 2 and len(web) == 1 and len(web1) == 2

    def broken(batch):
        raise RuntimeError("client gone")
    hub.follow(broken)
    hub.emit("still fine")                             # does not raise
    assert "removed after an error" in lines_of(hub)[-1]


def test_followers_that_take_a_few_lines_build_a_few_dicts(loop, hubs, monkeypatch):
    import corral.supervisor.loglines as logs
    real, made = logs._as_dict, []
    monkeypatch.setattr(logs, "_as_dict", lambda *a: made.append(a) or real(*a))
    hub = hubs()
    taken = []
    for _ in range(10):                                 # ten followers, room for 3 each
        hub.follow(lambda batch: taken.append((len(batch), list(itertools.islice(batch, 3)))))
    r, w = os.pipe()
    hub.attach(r, "w", "w", 7, "out")
    os.write(w, b"\n" * 60000)                          # a flood of empty lines, one read
    os.close(w)
    run_until(loop, lambda: r not in hub._sources)
    assert taken[0][0] == 60000 and len(taken) == 10
    assert all(t == taken[0] for t in taken) and [d["line"] for d in taken[0][1]] == [""] * 3
    assert len(made) == 3                               # shared, and only what was taken


def test_no_followers_builds_no_dicts(loop, hubs, monkeypatch):
    import corral.supervisor.loglines as logs
    hub = hubs()
    calls = []
    monkeypatch.setattr(logs, "_as_dict", lambda *a: calls.append(a) or {})
    hub.emit("one\ntwo")
    assert calls == []


def test_per_service_files(loop, hubs, tmp_path):
    hub = hubs(log_dir=tmp_path / "logs", logfile=tmp_path / "merged.log")
    hub.emit("w", "web:0", "web", 1, "out")
    hub.emit("d", "db", "db", 2, "err")
    hub.emit("w2", "web:1", "web", 3, "out")
    assert (tmp_path / "logs" / "web.log").read_text().splitlines() == [
        f"{prefix()} web:0[1] w", f"{prefix()} web:1[3] w2"]
    assert (tmp_path / "logs" / "db.log").read_text() == f"{prefix()} db[2]    d\n"
    assert len((tmp_path / "merged.log").read_text().splitlines()) == 3
    assert hub.errors == []


def test_reopen_after_rename(loop, hubs, tmp_path):
    hub = hubs(logfile=tmp_path / "all.log", log_dir=tmp_path / "logs")
    hub.emit("before", "web:0", "web", 1)
    os.rename(tmp_path / "all.log", tmp_path / "all.log.1")
    os.rename(tmp_path / "logs" / "web.log", tmp_path / "logs" / "web.log.1")
    hub.emit("still old", "web:0", "web", 1)          # written to the moved files
    hub.reopen()
    hub.emit("after", "web:0", "web", 1)
    for old, new in ((tmp_path / "all.log.1", tmp_path / "all.log"),
                     (tmp_path / "logs" / "web.log.1", tmp_path / "logs" / "web.log")):
        assert [ln.split("] ", 1)[1] for ln in old.read_text().splitlines()] == \
            ["before", "still old"]
        assert new.read_text().endswith("] after\n")
        assert "before" not in new.read_text()


def test_unwritable_paths_reported_not_raised(loop, hubs, tmp_path):
    (tmp_path / "plain").write_text("a file, not a folder")
    followed = []
    hub = hubs(logfile=tmp_path / "plain" / "all.log", log_dir=tmp_path / "plain" / "logs")
    hub.follow(followed.extend)
    hub.emit("hello", "web:0", "web", 1)
    hub.emit("again", "web:0", "web", 1)
    assert hub.errors == ["log_dir/corral.log: Not a directory",
                          "log_dir/web.log: Not a directory",
                          "logfile: Not a directory"]
    msgs = lines_of(hub, "corral")
    assert sum("logfile" in m for m in msgs) == 1      # reported once
    assert sum("log_dir/web.log" in m for m in msgs) == 1
    assert lines_of(hub, "web") == ["hello", "again"]   # the ring still has everything


def test_full_disk_reported_once_then_resumes(loop, hubs, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    r, w = os.pipe()
    hub = hubs(logfile="/dev/full", console=w)
    hub.emit("lost 1")
    hub.emit("lost 2")
    assert hub.errors == ["logfile: No space left on device"]
    console = os.read(r, 1 << 16).decode()
    assert console.count("No space left on device") == 1
    assert "lost 1" in console and "lost 2" in console  # the console still gets lines
    # space comes back: put a real file behind the same fd
    real = os.open(tmp_path / "real.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(real, hub._logfile.fd)
    os.close(real)
    hub.emit("kept")
    assert hub.errors == []
    text = (tmp_path / "real.log").read_text()
    assert text.startswith(f"{prefix()} corral kept\n")
    assert "logfile: writing resumed" in text and "bytes lost" in text
    assert "resumed" in lines_of(hub)[-1]
    os.close(r)


def test_console_nobody_reads_never_blocks(loop, hubs, tmp_path):
    r, w = os.pipe()
    hub = hubs(console=w, logfile=tmp_path / "all.log", console_limit=256 * 1024)
    assert not os.get_blocking(w)
    line = "z" * 100
    start = time.monotonic()
    for i in range(20000):                              # ~2.6 MB, the pipe holds 64 KiB
        hub.emit(f"{i} {line}", "spam:0", "spam", 1, "out")
        if i % 1000 == 0:
            loop.run_until_complete(asyncio.sleep(0))  # let the console writer try
    assert time.monotonic() - start < 10
    assert len((tmp_path / "all.log").read_text().splitlines()) == 20000  # file has all
    assert hub._con_dropped > 0
    # a reader appears: pending output flows, then one notice
    got = bytearray()

    def reader():
        got.extend(os.read(r, 1 << 16))
    loop.add_reader(r, reader)
    try:
        run_until(loop, lambda: b"console output dropped]" in got and not hub._con_writing)
    finally:
        loop.remove_reader(r)
    text = got.decode()
    assert text.count("bytes of console output dropped]") == 1
    kept = [ln for ln in text.splitlines() if " spam:0[1] " in ln]
    numbers = [int(ln.split("] ")[1].split()[0]) for ln in kept]
    assert numbers == list(range(len(numbers)))        # whole lines, in order, a gap only at the end
    assert all(ln.endswith(line) for ln in kept)
    hub.emit("after the notice")
    assert os.read(r, 1 << 16).decode().endswith("corral    after the notice\n")
    hub.close()
    assert os.get_blocking(w)                           # restored
    os.close(r)
    os.close(w)


def test_console_closed_reader_reports_error(loop, hubs):
    r, w = os.pipe()
    os.close(r)
    hub = hubs(console=w)
    hub.emit("nobody hears")                            # EPIPE, not an exception
    assert hub.errors == ["console: Broken pipe"]
    assert "cannot write to the console" in lines_of(hub)[-1]
    hub.close()
    os.close(w)


@pytest.mark.parametrize("color", [False, True])
def test_color_on_off(loop, hubs, tmp_path, color):
    r, w = os.pipe()
    hub = hubs(console=w, color=color, logfile=tmp_path / "all.log")
    hub.emit("hi", "web:0", "web", 1)
    hub.emit("INFO started\nERROR: it broke\nWARNING: slow", "web:0", "web", 1, "err")
    out = os.read(r, 1 << 16)
    code = color_of("web:0")
    if color:  # a terminal: the time, the name in its colour, padded; lines by what they say
        name = f"\x1b[{code}mweb:0\x1b[0m "
        time_only = prefix()[11:]
        assert out.decode().splitlines() == [
            f"{time_only} {name} hi", f"{time_only} {name} INFO started",
            f"{time_only} {name} \x1b[31mERROR: it broke\x1b[0m",
            f"{time_only} {name} \x1b[33mWARNING: slow\x1b[0m"]
    else:  # piped: the file's lines
        assert b"\x1b" not in out and out.decode().splitlines() == [
            f"{prefix()} web:0[1] hi", f"{prefix()} web:0[1] INFO started",
            f"{prefix()} web:0[1] ERROR: it broke", f"{prefix()} web:0[1] WARNING: slow"]
    assert b"\x1b" not in (tmp_path / "all.log").read_bytes()   # files never coloured
    hub.close()
    os.close(r)
    os.close(w)


def test_color_is_stable_per_name():
    assert color_of("web:0") == color_of("web:0")
    assert len({color_of(f"svc{i}") for i in range(50)}) > 3


def test_close_flushes_partial_lines(loop, hubs, tmp_path):
    hub = hubs(logfile=tmp_path / "all.log")
    r, w = os.pipe()
    hub.attach(r, "w:0", "w", 4, "out")
    os.write(w, b"done\nhalf a li")
    hub.close()
    assert lines_of(hub) == ["done", "half a li"]
    assert (tmp_path / "all.log").read_text().endswith("w:0[4] half a li\n")
    assert closed(r)
    os.close(w)


def test_wall_clock_milliseconds(loop, hubs, tmp_path):
    hub = hubs(logfile=tmp_path / "all.log", wallclock=lambda: 1_800_000_000.999)
    hub.emit("x")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_800_000_000))
    assert (tmp_path / "all.log").read_text() == f"{stamp}.999 corral x\n"


def test_a_batch_encodes_each_line_as_the_protocol_would_encode_its_dict():
    from corral import protocol
    from corral.supervisor.loglines import Batch, _Meta

    lines = [b"", b"plain", b'quote " and \\ backslash', b"tab\there \x01\x1f",
             b"\xff\xfe bad utf8", "caf\u00e9 \u2603 \U0001f600".encode(), b"</script>"]
    for meta in (_Meta("web:0", "web", 4242, "out"), _Meta("corral", "corral", None, "log"),
                 _Meta("caf\u00e9", "caf\u00e9", 7, "err")):
        batch = Batch(1795000000.125, meta, lines, 41)
        for i in reversed(range(len(lines))):                     # any order, once each
            assert batch.encoded(i) == protocol.encode_value(batch[i])
        assert [json.loads(batch.encoded(i))["seq"] for i in range(len(lines))] == \
            list(range(41, 41 + len(lines)))


def test_stream_items_fit_the_room_one_at_least_and_are_shared_by_request_id():
    from corral import protocol
    from corral.supervisor.loglines import Batch, _Meta

    batch = Batch(1.5, _Meta("web:0", "web", 9, "out"), [b"a" * n for n in range(20)], 1)
    one = protocol.encode_value(1)
    items = [protocol.stream_item(one, batch.encoded(i)) for i in range(20)]
    assert batch.stream_items(one, 0) == (b"", 0)
    data, count = batch.stream_items(one, 1)                    # less than one: one all the same
    assert (bytes(data), count) == (items[0], 1)
    room = len(b"".join(items[:7])) + 3
    data, count = batch.stream_items(one, room)
    assert (bytes(data), count) == (b"".join(items[:7]), 7)
    data, count = batch.stream_items(one, len(items[0]) + len(items[1]))   # a smaller room after
    assert (bytes(data), count) == (b"".join(items[:2]), 2)
    data, count = batch.stream_items(one, 10**9)
    assert (bytes(data), count) == (b"".join(items), 20)
    other = protocol.encode_value("x")
    data, count = batch.stream_items(other, 10**9)              # another id: its own bytes
    assert json.loads(bytes(data).split(b"\n")[3]) == {"id": "x", "stream": batch[3]}
    assert count == 20
def test_a_pipe_handed_over_keeps_its_partial_line_and_what_it_holds(loop, hubs, tmp_path):
    """`corral upgrade`: the old hub stops reading, what it read without a
    newline goes with the pipe, what it had not read stays in it; the next
    hub (the new image) frames it all as if nothing happened."""
    old = hubs(logfile=tmp_path / "old.log")
    r, w = os.pipe()
    old.attach(r, "web:0", "web", 42, "out")
    os.write(w, b"one\ntw")
    run_until(loop, lambda: unread(r) == 0 and lines_of(old) == ["one"])
    pipes = old.hand_over()
    assert pipes == [(r, "web:0", "web", 42, "out", b"tw")] and not closed(r)
    os.write(w, b"o\nthree\n")  # written during the exec: nobody reads it
    loop.run_until_complete(asyncio.sleep(0.02))
    assert unread(r) == len(b"o\nthree\n") and lines_of(old) == ["one"]
    new = hubs(logfile=tmp_path / "new.log")
    for pipe in pipes:
        new.attach(*pipe)
    run_until(loop, lambda: lines_of(new) == ["two", "three"])
    os.close(w)


def test_a_terminal_colours_lines_by_what_they_say_as_corral_logs_does():
    """painted() (the foreground) and render.log_line (`corral logs`) agree on
    which lines are red and which yellow; the stream has no say."""
    from corral.cli import render
    from corral.supervisor.loglines import painted

    samples = ["INFO web: started", "ERROR: it broke", "Traceback (most recent call last):",
               "ValueError: x", "WARNING: slow", "WARN disk", "an ERRORS count",
               "RuntimeException here", "all fine", "panic: nil map", "FATAL and WARNING"]
    block = b"\n" + "\n".join(samples).encode() + b"\n"
    head, end = painted(block, len(block) - 1)
    ours = head[1:end].decode().split("\n")
    for text, mine in zip(samples, ours, strict=True):
        theirs = render.log_line({"name": "w", "line": text, "time": None}, colour=True)
        for code in ("\x1b[31m", "\x1b[33m"):
            assert (code in mine) == (code in theirs), (text, mine, theirs)
    plain = b"\nnothing to see\nat all\npartial"
    assert painted(plain, len(plain) - 8) == (plain, len(plain) - 8)  # the same bytes


def test_names_line_up_and_a_wider_one_pads_the_rest_again(loop, hubs, tmp_path):
    hub = hubs(logfile=tmp_path / "all.log")
    hub.names(["web:0", "database"])                  # the config's instances (console)
    hub.emit("one", "web:0", "web", 7)
    hub.emit("two", "database", "database", 12345)
    hub.emit("three", "web:0", "web", 7)
    texts = (tmp_path / "all.log").read_text().splitlines()
    at = [line.index(word) for line, word in zip(texts, ("one", "two", "three"))]
    assert at[1] == at[2] and at[0] < at[1]           # padded again once database[12345] came
    assert texts[2].endswith(" web:0[7]        three")


def test_a_flood_is_not_searched_for_words_on_a_terminal():
    from corral.supervisor.loglines import PAINT_MAX, painted

    block = b"\nERROR " + b"x" * PAINT_MAX + b"\n"
    assert painted(block, len(block) - 1) == (block, len(block) - 1)
