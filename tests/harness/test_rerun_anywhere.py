"""A unit planned on a relative ``--data`` folder records that folder's absolute path (the
typed one as a tag), keeps the id an absolute path gives it, and reruns from any folder;
a rerun whose data is gone fails before it writes a run."""

from __future__ import annotations

import sqlite3

import pytest

from asma_bench.api import load_results, run_grid
from asma_bench.cli import main
from asma_bench.harness.grids import load_grid
from asma_bench.harness.plan import RunOptions, plan_units
from asma_bench.harness.tracking import PROGRESS_BAR_ENV

GRID = (
    "name: one\nprotocol: linear\nreferences: []\n"
    "cells: [{name: a, overrides: {masking: {pairing: ldsm_hmtm}}}]\n"
)


def _runs_in(store) -> int:
    with sqlite3.connect(store) as con:
        return con.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.fixture(scope="module")
def relative_run(tmp_path_factory):
    import os

    work = tmp_path_factory.mktemp("work")
    here = os.getcwd()
    os.chdir(work)
    try:
        assert main(["data", "synth", "--preset", "tiny", "--seed", "3", "--out", "ds"]) == 0
        (work / "one.yaml").write_text(GRID)
        outcome = run_grid("one.yaml", profile="smoke", seeds=[0], data="ds", out="runs")
        assert len(outcome.ran) == 1 and not outcome.failed
    finally:
        os.chdir(here)
    return work


def test_the_source_is_recorded_absolute_and_the_id_does_not_depend_on_it(relative_run):
    work = relative_run
    row = load_results(str(work / "one.yaml"), work / "runs").iloc[0]
    assert row["data.source"] == str((work / "ds").resolve())
    from mlflow.tracking import MlflowClient

    tags = MlflowClient(f"sqlite:///{work / 'runs' / 'mlflow.db'}").get_run(row["run_id"]).data.tags
    assert tags["asma.data.source_given"] == "ds"
    grid = load_grid(str(work / "one.yaml"))
    absolute = plan_units(grid, RunOptions(profile="smoke", seeds=[0], data=str(work / "ds")))
    assert absolute[0].id == tags["asma.unit"] and absolute[0].sources_given == {}


def test_rerun_works_from_another_folder_by_a_prefix_and_prints_no_bars(
    relative_run, tmp_path, monkeypatch, capsys
):
    work = relative_run
    runs = work / "runs"
    row = load_results(str(work / "one.yaml"), runs).iloc[0]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(PROGRESS_BAR_ENV, raising=False)
    assert main(["show", row["run_id"][:8], "--runs", str(runs)]) == 0
    shown = capsys.readouterr()
    assert shown.out.startswith(f"run {row['run_id']}: grid one, cell a, seed 0")
    assert "Downloading artifacts" not in shown.out + shown.err
    assert main(["rerun", row["run_id"][:10], "--runs", str(runs)]) == 0
    out = capsys.readouterr()
    assert f"test_top1 = {row['test_top1']:.4f} (was {row['test_top1']:.4f})" in out.out
    assert "Downloading artifacts" not in out.out + out.err


def test_a_rerun_whose_data_is_gone_writes_no_run(relative_run, tmp_path, monkeypatch, capsys):
    work = relative_run
    runs = work / "runs"
    row = load_results(str(work / "one.yaml"), runs).iloc[0]
    before = _runs_in(runs / "mlflow.db")
    (work / "ds").rename(work / "ds-moved")
    try:
        monkeypatch.chdir(tmp_path)
        assert main(["rerun", row["run_id"], "--runs", str(runs)]) == 2
        err = capsys.readouterr().err.strip()
        assert "no such dataset folder" in err and len(err.splitlines()) == 1
        assert _runs_in(runs / "mlflow.db") == before
    finally:
        (work / "ds-moved").rename(work / "ds")
