"""supervisor/cgroups.py without a cgroup hierarchy: the choices it makes."""

import os
import signal
import subprocess

from corral.supervisor import cgroups


def test_off_is_the_marker_and_says_so():
    assert cgroups.detect("m", "off") == (None, 'off ([corral] cgroups = "off")')


def test_no_cgroup2_mount_is_the_marker(tmp_path, monkeypatch):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 0:21 / /proc rw,nosuid - proc proc rw\n")
    monkeypatch.setattr(cgroups, "CGROUP_MOUNTS", str(mountinfo))
    assert cgroups.detect("m") == (None, "no cgroup v2 hierarchy is mounted")


def test_a_folder_that_cannot_be_made_is_not_delegated(tmp_path, monkeypatch):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"30 25 0:26 / {tmp_path}/nowhere/x rw - cgroup2 cgroup2 rw\n")
    (tmp_path / "nowhere").write_text("a file, not a folder")
    monkeypatch.setattr(cgroups, "CGROUP_MOUNTS", str(mountinfo))
    subtree, why = cgroups.detect("m")
    assert subtree is None and why.startswith(f"cannot make a cgroup in {tmp_path}/nowhere/x")


def test_without_cgroup_kill_each_pid_is_signalled_and_the_tree_removed(tmp_path):
    subtree = cgroups.Subtree(str(tmp_path / "corral-m"))
    path = subtree.prepare("web:0")
    assert path == str(tmp_path / "corral-m" / "web:0") and os.path.isdir(path)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(f"{sleeper.pid}\n")
        assert subtree.procs("web:0") == [sleeper.pid]
        assert subtree.signal("web:0", signal.SIGKILL)  # no cgroup.kill here: one by one
        assert sleeper.wait(5) == -signal.SIGKILL
    finally:
        sleeper.kill()
    os.unlink(os.path.join(path, "cgroup.procs"))  # (a real cgroup has no files to unlink)
    subtree.remove()
    assert not os.path.exists(tmp_path / "corral-m")
