"""Log file rotation through a real LogHub on real files."""

import os
import types

import pytest

pytestmark = pytest.mark.timeout(30)


def words(path):
    with open(path) as f:
        return [line.split(None, 3)[3] for line in f.read().splitlines()]  # date time who text


def test_rotates_between_chunks_and_drops_the_oldest(hubs, tmp_path):
    log = tmp_path / "all.log"
    hub = hubs(logfile=log, max_bytes=200, backups=2)
    for i in range(12):
        hub.emit(f"line {i:02d}", "web", "web", 1)      # ~47 bytes a line
    files = [f"{log}.2", f"{log}.1", str(log)]
    assert sorted(os.listdir(tmp_path)) == ["all.log", "all.log.1", "all.log.2"]
    got = [w for path in files for w in words(path)]
    assert got == [f"line {i:02d}" for i in range(12 - len(got), 12)]   # newest, in order
    assert all(os.path.getsize(p) <= 200 for p in files)
    assert hub.errors == []


def test_a_chunk_bigger_than_the_limit_goes_whole_into_a_fresh_file(hubs, tmp_path):
    log = tmp_path / "all.log"
    hub = hubs(logfile=log, max_bytes=100, backups=3)
    hub.emit("small", "web", "web", 1)
    hub.emit("\n".join(f"big {i}" for i in range(10)), "web", "web", 1)
    hub.emit("after", "web", "web", 1)
    assert words(f"{log}.2") == ["small"]
    assert words(f"{log}.1") == [f"big {i}" for i in range(10)]       # one chunk, one file
    assert words(log) == ["after"]


def test_zero_never_rotates_and_zero_backups_keeps_none(hubs, tmp_path):
    hub = hubs(logfile=tmp_path / "a.log", max_bytes=0, backups=5)
    for i in range(50):
        hub.emit(f"x{i}")
    assert os.listdir(tmp_path) == ["a.log"] and len(words(tmp_path / "a.log")) == 50
    hub2 = hubs(logfile=tmp_path / "b.log", max_bytes=100, backups=0)
    for i in range(10):
        hub2.emit(f"y{i}")
    assert not [n for n in os.listdir(tmp_path) if n.startswith("b.log.")]
    assert words(tmp_path / "b.log")[-1] == "y9"


def test_moved_away_file_is_not_renamed_again(hubs, tmp_path):
    log = tmp_path / "all.log"
    hub = hubs(logfile=log, max_bytes=80, backups=3)   # two lines fit
    hub.emit("one")
    os.rename(log, tmp_path / "elsewhere.log")           # logrotate, no reopen yet
    hub.emit("two")
    hub.emit("three")                                    # over the limit: new file
    assert words(tmp_path / "elsewhere.log") == ["one", "two"]
    assert words(log) == ["three"]
    assert not os.path.exists(f"{log}.1")


def test_truncated_behind_our_back_does_not_rotate(hubs, tmp_path):
    log = tmp_path / "all.log"
    hub = hubs(logfile=log, max_bytes=80, backups=3)   # two lines fit
    hub.emit("one")
    hub.emit("two")
    os.truncate(log, 0)                                  # copytruncate
    hub.emit("three")
    assert words(log) == ["three"] and not os.path.exists(f"{log}.1")


def test_special_files_never_rotate(hubs, tmp_path):
    if not os.path.exists("/dev/null"):
        pytest.skip("needs /dev/null")
    hub = hubs(logfile="/dev/null", max_bytes=1, backups=1)
    hub.emit("a")
    hub.emit("b")
    assert hub.errors == [] and not os.path.exists("/dev/null.1")


def test_rename_failure_reported_once_file_keeps_growing(hubs, tmp_path, monkeypatch):
    log = tmp_path / "all.log"
    hub = hubs(logfile=log, max_bytes=100, backups=2)
    real = os.rename

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(os, "rename", refuse)
    for i in range(5):
        hub.emit(f"kept {i}")
    assert hub.errors == ["logfile: cannot rotate: Permission denied"]
    assert log.read_text().count("cannot rotate logfile") == 1
    assert [w for w in words(log) if w.startswith("kept")] == [f"kept {i}" for i in range(5)]
    monkeypatch.setattr(os, "rename", real)
    hub._logfile.next_rotate = 0                         # the retry delay is over
    hub.emit("rotated")
    assert hub.errors == []
    newest = [w for p in (f"{log}.2", f"{log}.1", log) if os.path.exists(p) for w in words(p)]
    assert newest[-2:] == ["rotated", "logfile: rotating again"]


def test_per_service_limits_and_service_errors(hubs, tmp_path):
    hub = hubs(log_dir=tmp_path / "logs", max_bytes=0, backups=5)
    spec = types.SimpleNamespace
    hub.set_rotation([spec(name="web", log_max_bytes=120, log_backups=1),
                      spec(name="db", log_max_bytes=None, log_backups=None)])
    for i in range(10):
        hub.emit(f"w{i}", "web", "web", 1)
        hub.emit(f"d{i}", "db", "db", 2)
    assert sorted(os.listdir(tmp_path / "logs")) == ["db.log", "web.log", "web.log.1"]
    assert hub.service_errors() == {}
    (tmp_path / "logs" / "web.log").unlink()
    (tmp_path / "logs" / "web.log").mkdir()               # in the way of a reopen
    hub.reopen()
    hub.emit("w10", "web", "web", 1)
    assert hub.service_errors() == {"web": "log: Is a directory"}


def test_a_fifo_never_blocks_the_hub(hubs, tmp_path):
    """Nobody reading: the open fails; a reader that does not read: writes fail.
    Both are a failing file (counted, reported, retried), not a blocked loop."""
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    hub = hubs(logfile=fifo)
    hub.emit("nobody reads")                            # would block in open()
    assert hub.errors == ["logfile: nobody is reading it"]
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        hub._logfile.next_open = 0                      # the retry delay is over
        hub.emit("read")
        assert hub.errors == []
        for i in range(2000):                           # ~100 KB: more than the pipe holds
            hub.emit(f"line {i:04d} " + "x" * 40)       # would block in write()
        assert hub.errors == ["logfile: its reader is not keeping up"]
        data = os.read(reader, 1 << 20)
        hub.emit("after")                               # room again: resumed, with the count
        assert hub.errors == []
        data += os.read(reader, 1 << 20)
    finally:
        os.close(reader)
    lines = [line.split(" corral ", 1)[1] for line in data.decode().splitlines()]
    assert lines[:2] == ["read", "logfile: writing resumed (44 bytes lost)"]
    kept = lines[2:-2]                                  # what fitted, whole lines in order
    assert kept and kept == [f"line {i:04d} " + "x" * 40 for i in range(len(kept))]
    assert lines[-2] == "after"
    lost = (2000 - len(kept)) * len(f"2027-01-15 08:00:00.250 corral {kept[0]}\n")
    assert lines[-1] == f"logfile: writing resumed ({lost} bytes lost)"


def _stream_spec(name, *files):
    from corral.logspec import StreamFile

    return types.SimpleNamespace(name=name, log_max_bytes=None, log_backups=None,
                                 stream_files=tuple(StreamFile(*f) for f in files))


def _pipe_lines(hub, loop, service, stream, data):
    r, w = os.pipe()
    hub.attach(r, service, service, 9, stream)
    os.write(w, data)
    os.close(w)
    hub.drain(9)


def test_stream_files_are_raw_per_stream_and_rotate_alone(hubs, loop, tmp_path):
    """supervisord's stdout_logfile/stderr_logfile: the bytes as written, no
    prefix, stdout and stderr apart, each with its own limits; master lines
    about the service stay out of them."""
    out, err = tmp_path / "web.out", tmp_path / "web.err"
    hub = hubs(log_dir=tmp_path / "logs")
    hub.set_rotation([_stream_spec("web", ("out", str(out), 30, 1), ("err", str(err), 0, 0))])
    _pipe_lines(hub, loop, "web", "out", b"one\ntwo\n")
    _pipe_lines(hub, loop, "web", "err", b"oops\n")
    hub.emit("web: started", service="web")
    _pipe_lines(hub, loop, "web", "out", b"three three three three\n")
    assert (tmp_path / "web.out.1").read_bytes() == b"one\ntwo\n"
    assert out.read_bytes() == b"three three three three\n"
    assert err.read_bytes() == b"oops\n"
    assert "started" in (tmp_path / "logs" / "web.log").read_text()  # corral's own file too
    assert hub.service_errors() == {}


def test_redirected_stderr_shares_the_file_and_a_reload_closes_what_went(hubs, loop, tmp_path):
    both = tmp_path / "both.log"
    hub = hubs()
    hub.set_rotation([_stream_spec("job", ("out", str(both)), ("err", str(both)))])
    _pipe_lines(hub, loop, "job", "out", b"to out\n")
    _pipe_lines(hub, loop, "job", "err", b"to err\n")
    assert both.read_bytes() == b"to out\nto err\n"
    assert len(hub._streams.sinks) == 1
    hub.set_rotation([_stream_spec("job")])           # a reload that drops the file
    _pipe_lines(hub, loop, "job", "out", b"nowhere\n")
    assert both.read_bytes() == b"to out\nto err\n" and hub._streams.sinks == {}


def test_a_failing_stream_file_names_the_service_and_the_key(hubs, loop, tmp_path):
    (tmp_path / "dir.log").mkdir()
    hub = hubs()
    hub.set_rotation([_stream_spec("web", ("err", str(tmp_path / "dir.log")))])
    _pipe_lines(hub, loop, "web", "err", b"lost\n")
    assert hub.service_errors() == {"web": "stderr_logfile: Is a directory"}
    assert hub.errors == ["web/stderr_logfile: Is a directory"]
