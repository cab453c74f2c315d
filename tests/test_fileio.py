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
