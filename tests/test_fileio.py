"""Atomic writes: the old file or the new, never half of one, and nothing left behind by a
writer that was killed."""

import os
import subprocess
import sys

import pytest

from asma_bench.fileio import atomic_write, atomic_write_text


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "table.md"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_write_text(path, "old")

    def boom(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, boom)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_the_temporary_of_a_killed_writer_is_swept_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    path = tmp_path / "ckpt.pt"
    stale = tmp_path / f".ckpt.pt.{int(dead.stdout)}.abc123.tmp"  # SIGKILL ran no cleanup
    live = tmp_path / f".ckpt.pt.{os.getpid()}.def456.tmp"  # a writer still at work
    other = tmp_path / f".other.pt.{int(dead.stdout)}.ghi789.tmp"  # another file's
    for p in (stale, live, other):
        p.write_text("partial")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert not stale.exists() and live.exists() and other.exists()


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_a_killed_conversion_leaves_nothing_and_its_backup_comes_back(tmp_path):
    from asma_bench.fileio import sweep_stale_beside, temp_dir_beside

    dead, live = _dead_pid(), os.getpid()
    dest = tmp_path / "canon"
    half = tmp_path / f".canon.tmp-{dead}-x1"  # killed while writing
    half.mkdir()
    (half / "data.npy").write_bytes(b"half")
    backup = tmp_path / f".canon.old-{dead}"  # killed between the two renames: the user's data
    backup.mkdir()
    (backup / "data.npy").write_bytes(b"precious")
    store_tmp = tmp_path / f".canon.{dead}.tmp"
    store_tmp.write_text("x")
    busy = tmp_path / f".canon.tmp-{live}-y2"  # a live writer's: left alone
    busy.mkdir()
    sweep_stale_beside(dest)
    assert (dest / "data.npy").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [busy.name, "canon"]
    # with the destination in place, a dead writer's backup is only a leftover
    other = tmp_path / f".canon.old-{dead}"
    other.write_text("old file")
    fresh = temp_dir_beside(dest)
    assert not other.exists() and fresh.name.startswith(f".canon.tmp-{live}-")


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_and_converted_folders_get_the_umasks_permissions(
    tmp_path, capsys, umask_022
):
    """Not the 0600 / 0700 of the temporary file and folder they are built in."""
    import numpy as np

    from asma_bench.cli import main
    from asma_bench.fileio import umask

    assert umask() == 0o022
    csv = atomic_write_text(tmp_path / "maskings.csv", "a,b\n1,2\n")
    assert oct(csv.stat().st_mode & 0o777) == oct(0o644)
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "data.npy", np.random.default_rng(0).normal(size=(4, 6, 17, 2)))
    (src / "labels.csv").write_text("label,split_xsub\n0,train\n1,train\n0,test\n1,test\n")
    args = ["data", "convert", str(src), str(tmp_path / "canon"), "--format", "generic"]
    assert main([*args, "--layout", "coco17"]) == 0, capsys.readouterr().err
    assert oct((tmp_path / "canon").stat().st_mode & 0o777) == oct(0o755)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "canon").iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes
    os.umask(0o027)  # another umask: its permissions
    assert atomic_write_text(tmp_path / "b.csv", "x\n").stat().st_mode & 0o777 == 0o640
