"""Unit locks on every platform: exclusive where ``fcntl`` is missing too, the holder named,
nothing left behind."""

import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from asma_bench.harness import locks


@pytest.fixture
def without_fcntl(monkeypatch):
    """:mod:`asma_bench.harness.locks` as loaded where ``import fcntl`` fails (Windows)."""
    monkeypatch.setitem(sys.modules, "fcntl", None)
    yield importlib.reload(locks)
    monkeypatch.undo()
    importlib.reload(locks)


def test_a_lock_is_exclusive_without_fcntl(tmp_path, without_fcntl):
    with without_fcntl.unit_lock(tmp_path, "u1") as first:
        with without_fcntl.unit_lock(tmp_path, "u1") as second:
            assert first and not second  # was granted to everyone
        assert without_fcntl.holder(tmp_path, "u1") == f"process {os.getpid()}"
    assert list((tmp_path / ".locks").iterdir()) == []


def test_another_process_holding_a_unit_is_named_and_its_death_frees_it(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from asma_bench.harness.locks import unit_lock
        with unit_lock({str(tmp_path)!r}, "u1") as mine:
            print("held" if mine else "busy", flush=True)
            sys.stdin.readline()
    """)
    other = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert other.stdout.readline().strip() == "held"
        with locks.unit_lock(tmp_path, "u1") as mine:
            assert not mine
        assert locks.holder(tmp_path, "u1") == f"process {other.pid}"
    finally:
        other.kill()
        other.wait()
    with locks.unit_lock(tmp_path, "u1") as mine:  # released by the system with the process
        assert mine and locks.holder(tmp_path, "u1") == f"process {os.getpid()}"
    assert locks.holder(tmp_path, "u1") == "another process"  # (no holder file left)
