"""privileges.unreadable_folder: which folder on the way to a path a user
may not enter, by the mode bits, on real folders (chmod'd here)."""

import os
import shutil
import tempfile

import pytest

from corral import privileges

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="owners and modes of other users need root")

UID, GID = 65534, 65534  # nobody, nogroup


@pytest.fixture
def tmp_path():
    """A folder under /tmp that anyone may enter (pytest's own is root's, 0700)."""
    import pathlib

    folder = tempfile.mkdtemp(prefix="corral-modes-", dir="/tmp")
    os.chmod(folder, 0o755)
    yield pathlib.Path(folder)
    shutil.rmtree(folder)


def tree(tmp_path, *modes):
    """tmp_path/a/b/... with the given modes, owned by root; the deepest path."""
    path = tmp_path
    os.chmod(tmp_path, 0o755)
    for n, mode in enumerate(modes):
        path = path / "abcdef"[n]
        path.mkdir()
        os.chmod(path, mode)
    return str(path)


def test_an_open_chain_is_readable(tmp_path):
    deepest = tree(tmp_path, 0o755, 0o711, 0o755)  # x is enough on the way
    assert privileges.unreadable_folder(deepest, UID, {GID}) is None


def test_the_first_closed_folder_is_named(tmp_path):
    deepest = tree(tmp_path, 0o755, 0o700, 0o755)
    assert privileges.unreadable_folder(deepest, UID, {GID}) == os.path.dirname(deepest)


def test_the_path_itself_must_be_readable(tmp_path):
    deepest = tree(tmp_path, 0o755, 0o711)  # enterable, not listable
    assert privileges.unreadable_folder(deepest, UID, {GID}) == deepest


def test_owner_and_group_bits_count_for_their_own(tmp_path):
    deepest = tree(tmp_path, 0o750, 0o700)
    os.chown(os.path.dirname(deepest), 0, GID)  # group-readable for nogroup
    os.chown(deepest, UID, 0)  # nobody's own
    assert privileges.unreadable_folder(deepest, UID, {GID}) is None
    assert privileges.unreadable_folder(deepest, 1234, {1234}) == os.path.dirname(deepest)


def test_root_and_a_missing_folder(tmp_path):
    deepest = tree(tmp_path, 0o700)
    assert privileges.unreadable_folder(deepest, 0, {0}) is None
    missing = os.path.join(str(tmp_path), "gone", "x")
    assert privileges.unreadable_folder(missing, UID, {GID}) == os.path.dirname(missing)
