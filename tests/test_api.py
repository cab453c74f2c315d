"""The notebook path: run a grid and read its units as a DataFrame; the CLI around it."""

from __future__ import annotations

import json

import pytest

from asma_bench.api import load_results, run_grid
from asma_bench.cli import main
from asma_bench.config import build_config
from asma_bench.errors import AsmaBenchError


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api")
    grid = folder / "two.yaml"
    grid.write_text(
        "name: two\nprotocol: linear\nreferences: []\n"
        "cells:\n"
        "  - {name: ld_hm, labels: {spatial: LDSM}, overrides: {masking: {pairing: ldsm_hmtm}}}\n"
        "  - {name: hd_lm, labels: {spatial: HDSM}, overrides: {masking: {pairing: hdsm_lmtm}}}\n"
    )
    outcome = run_grid(grid, profile="smoke", seeds=[0, 1], out=folder / "runs")
    return folder, grid, outcome


def test_load_results_is_one_row_per_unit_with_config_and_metrics(tiny_grid):
    folder, grid, outcome = tiny_grid
    assert len(outcome.ran) == 4
    df = load_results(str(grid), folder / "runs")
    assert list(zip(df["cell"], df["seed"], strict=True)) == [
        ("ld_hm", 0), ("ld_hm", 1), ("hd_lm", 0), ("hd_lm", 1)
    ]  # fmt: skip
    assert set(df["masking.pairing"]) == {"ldsm_hmtm", "hdsm_lmtm"}
    assert df["masking.k"].dtype.kind == "f" and df["pretrain.epochs"].dtype.kind == "i"
    assert df["test_top1"].between(0, 100).all() and (df["status"] == "FINISHED").all()
    by_cell = df.groupby("cell")["test_top1"].mean()  # what a notebook does next
    assert set(by_cell.index) == {"ld_hm", "hd_lm"}


def test_results_command_prints_table_csv_and_json(tiny_grid, capsys):
    folder, grid, _ = tiny_grid
    runs = str(folder / "runs")
    assert main(["results", "--grid", str(grid), "--runs", runs]) == 0
    assert "two: 4 units" in capsys.readouterr().out
    assert main(["results", "--grid", str(grid), "--runs", runs, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4 and {"cell", "seed", "test_top1", "masking.pairing"} <= set(rows[0])
    assert main(["results", "--grid", str(grid), "--runs", runs, "--format", "xml"]) == 2


def test_dry_run_lists_units_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["run", "--grid", "masking_pairs", "--profile", "smoke", "--seeds", "2",
                 "--out", str(out), "--dry-run"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0 and "14 units (dry run: nothing trained)" in text
    assert "masking.pairing" in text and "random_init/seed1" in text
    assert not out.exists()


def test_debug_after_the_command_shows_the_traceback(tmp_path):
    with pytest.raises(AsmaBenchError):
        main(["data", "info", str(tmp_path / "nowhere"), "--debug"])
    assert main(["data", "info", str(tmp_path / "nowhere")]) == 2


def test_a_json_profile_is_a_profile(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"pretrain": {"epochs": 3}, "data": {"frames": 20}}))
    cfg = build_config(str(path))
    assert cfg.pretrain.epochs == 3 and cfg.data.frames == 20


def test_the_readme_notebook_example_runs(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"this block runs in the test suite:\n\n```python\n(.*?)```", readme, re.S)
    assert block, "the README's Python example is gone"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # noqa: S102
    summary = namespace["summary"]
    assert len(summary) == 7 and "test_top1" in summary.columns.get_level_values(0)
    assert "ldsm_hmtm" in capsys.readouterr().out
    assert namespace["model"].mode == "single"  # the linear unit's classifier


def test_load_model_gives_the_classifier_that_scored_the_run(tiny_grid):
    import torch

    from asma_bench.api import load_model
    from asma_bench.training.data import prepare_data

    folder, grid, _ = tiny_grid
    runs = folder / "runs"
    row = load_results(str(grid), runs).iloc[0]
    model = load_model(row["run_id"], runs)
    cfg = build_config("smoke", [f"seed={int(row['seed'])}"])  # the unit's data and split
    data = prepare_data(cfg.data, cfg.seed, runs / "data")
    with torch.no_grad():
        predicted = model(data.test.x).argmax(dim=1)
    accuracy = 100.0 * float((predicted == data.test.y).float().mean())
    assert accuracy == pytest.approx(row["test_top1"], abs=1e-4)
    with pytest.raises(AsmaBenchError, match="not in the store"):
        load_model("no-such-run", runs)


def test_show_and_rerun_reproduce_a_unit_exactly(tiny_grid, capsys):
    import shutil

    folder, grid, _ = tiny_grid
    runs = folder / "runs"
    df = load_results(str(grid), runs)
    row = df[(df["cell"] == "hd_lm") & (df["seed"] == 1)].iloc[0]
    assert main(["show", row["run_id"], "--runs", str(runs)]) == 0
    shown = capsys.readouterr().out
    assert "cell hd_lm, seed 1" in shown and "pretrain: " in shown
    assert 'masking.pairing = "hdsm_lmtm"' in shown
    shutil.rmtree(runs / "checkpoints")  # retrained from scratch, not reloaded
    assert main(["rerun", row["run_id"], "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert f"test_top1 = {row['test_top1']:.4f} (was {row['test_top1']:.4f})" in out
    again = load_results(str(grid), runs)
    assert len(again) == 4  # the unit still counts once
    assert main(["show", "no-such-run", "--runs", str(runs)]) == 2


def test_runs_go_to_the_experiment_named(tmp_path, capsys):
    grid = tmp_path / "one.yaml"
    cells = "cells: [{name: a, overrides: {masking: {pairing: ldsm_hmtm}}}]\n"
    grid.write_text("name: one\nprotocol: linear\nreferences: []\n" + cells)
    runs = tmp_path / "runs"
    run_grid(grid, profile="smoke", seeds=[0], out=runs, experiment="ablation-7")
    assert len(load_results(str(grid), runs, experiment="ablation-7")) == 1
    with pytest.raises(AsmaBenchError, match="no 'asma-bench' experiment"):
        load_results(str(grid), runs)
    code = main(["results", "--grid", str(grid), "--runs", str(runs), "--experiment", "ablation-7"])
    assert code == 0 and "one: 1 units" in capsys.readouterr().out


def test_one_grid_on_two_datasets_is_run_and_reported_across_them(tiny_grid, capsys):
    folder, grid, _ = tiny_grid
    other = folder / "other-data"
    assert main(["data", "synth", "--preset", "tiny", "--seed", "5", "--out", str(other)]) == 0
    runs, reports = folder / "runs", folder / "reports"
    code = main(["run", "--grid", str(grid), "--profile", "smoke", "--seeds", "2",
                 "--data", "synthetic", "--data", str(other), "--out", str(runs)])  # fmt: skip
    text = capsys.readouterr().out
    # the synthetic units are the fixture's (skipped), the other dataset's are new
    assert code == 0 and "grid two on synthetic:" in text and f"grid two on {other}:" in text
    assert "0 units run, 4 already finished" in text and "4 units run, 0 already" in text
    code = main(["report", "--grid", str(grid), "--runs", str(runs), "--out", str(reports),
                 "--baseline", "hd_lm", "--no-embeddings", "--masking-draws", "0"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0 and "two across datasets" in text and "Δ (all datasets)" in text
    assert (reports / "two" / "two_datasets.csv").is_file()
    assert (reports / "two@other-data" / "two.md").is_file()
