"""Faults during a grid: a full disk or an unreachable tracking server gives a clear error,
leaves the store consistent, and a rerun after the cause is fixed completes."""

import errno

import pytest

from asma_bench.harness.grids import load_grid
from asma_bench.harness.runner import RunOptions, run_grid
from asma_bench.harness.tracking import TAG_UNIT, Tracker, TrackingError
from asma_bench.training import pretrain as pretrain_module


def _grid():
    grid = load_grid("masking_pairs").model_copy(deep=True)
    grid.cells, grid.baseline, grid.references = grid.cells[:1], None, ["random_init"]
    return grid


def test_disk_full_during_checkpoint_then_rerun_completes(tmp_path, monkeypatch):
    real_save = pretrain_module.save_checkpoint
    calls = {"n": 0}

    def full_disk(state, path):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint write finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(state, path)

    monkeypatch.setattr(pretrain_module, "save_checkpoint", full_disk)
    opts = RunOptions(
        profile="smoke", seeds=[0], out=tmp_path, progress=False, overrides=["pretrain.epochs=2"]
    )
    with pytest.raises(OSError, match="No space left"):
        run_grid(_grid(), opts)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="asma-bench")
    statuses = [r.info.status for r in tracker.unit_runs("masking_pairs")]
    assert statuses == ["FAILED"]
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))  # no half-written file

    monkeypatch.setattr(pretrain_module, "save_checkpoint", real_save)
    outcome = run_grid(_grid(), opts)
    assert sorted(outcome.ran) == ["ldsm_hmtm/seed0", "random_init/seed0"]
    finished = [r for r in tracker.unit_runs("masking_pairs") if r.info.status == "FINISHED"]
    assert len({r.data.tags[TAG_UNIT] for r in finished}) == len(finished) == 2


def test_unreachable_tracking_server_fails_fast_in_one_line(tmp_path):
    opts = RunOptions(
        profile="smoke", seeds=[0], out=tmp_path, progress=False, tracking_uri="http://127.0.0.1:9"
    )
    with pytest.raises(TrackingError, match=r"^tracking server http://127.0.0.1:9 is unreachable"):
        run_grid(_grid(), opts)
    assert not (tmp_path / "checkpoints").exists()


def test_a_full_tracking_database_is_one_line_and_a_rerun_completes(tmp_path, monkeypatch, capsys):
    """SQLite out of space: MLflow logs every failed statement with its SQL (hundreds of
    lines) before raising; the user sees one line naming the store."""
    import sqlalchemy.exc

    from asma_bench.cli import main

    real = Tracker.log_metrics.__wrapped__

    def full(self, run_id, metrics, step=0):
        raise sqlalchemy.exc.OperationalError(
            "INSERT INTO metrics ...", {}, Exception("database or disk is full")
        )

    monkeypatch.setattr(Tracker, "log_metrics", _wrapped(full))
    with pytest.raises(TrackingError, match=r"mlflow.db: database or disk is full$"):
        run_grid(_grid(), RunOptions(profile="smoke", seeds=[0], out=tmp_path, progress=False))
    monkeypatch.setattr(Tracker, "log_metrics", _wrapped(real))
    outcome = run_grid(_grid(), RunOptions(profile="smoke", seeds=[0], out=tmp_path,
                                           progress=False))  # fmt: skip
    assert sorted(outcome.ran) == ["ldsm_hmtm/seed0", "random_init/seed0"]
    monkeypatch.setattr(Tracker, "log_metrics", _wrapped(full))
    args = ["run", "--grid", "masking_pairs", "--profile", "smoke", "--seeds", "1",
            "--out", str(tmp_path / "other")]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("masking_pairs: ")]
    assert len(errors) == 1 and "database or disk is full" in err and "INSERT" not in err
    assert "generating the synthetic 'tiny' data" in err  # its own step, said once


def _wrapped(fn):
    from asma_bench.harness.tracking import _store_errors

    return _store_errors(fn)
