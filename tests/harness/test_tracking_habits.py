"""What the harness records beside the units: per-cell summaries on a grid's parent run,
and MLflow's own ``mlflow.source.*`` tags on the runs it creates."""

from __future__ import annotations

import subprocess
import textwrap

import pytest

from asma_bench.harness import tracking
from asma_bench.harness.grids import load_grid
from asma_bench.harness.runner import RunOptions, run_grid
from asma_bench.harness.tracking import Tracker, environment_tags, source_name
from asma_bench.protocols import PROTOCOLS, ProtocolResult

GRID = textwrap.dedent("""
    name: fakegrid
    protocol: fake
    references: []
    cells:
      - {name: a, overrides: {linear: {lr: 0.1}}}
      - {name: b, overrides: {linear: {lr: 0.3}}}
""")


def test_the_parent_run_holds_each_cells_mean_std_and_seeds(tmp_path, monkeypatch):
    """A protocol whose test_top1 is 100·lr + seed: cell a gives 10 and 11 over seeds 0, 1
    (mean 10.5, std (N−1) √0.5), cell b 30 and 31; one seed more for a adds 12."""

    def fake(cfg, ctx):
        return ProtocolResult({"test_top1": 100 * cfg.linear.lr + cfg.seed, "val_top1": 1.0})

    monkeypatch.setitem(PROTOCOLS._entries, "fake", fake)
    monkeypatch.setattr("sys.argv", ["/somewhere/bin/asma-bench", "run", "--grid", "g"])
    (tmp_path / "g.yaml").write_text(GRID)
    grid = load_grid(tmp_path / "g.yaml")
    opts = RunOptions(profile="smoke", seeds=[0, 1], out=tmp_path / "runs", progress=False)
    outcome = run_grid(grid, opts)
    assert sorted(outcome.ran) == ["a/seed0", "a/seed1", "b/seed0", "b/seed1"]
    tracker = Tracker(outcome.tracking_uri, experiment="asma-bench")
    (parent,) = tracker.client.search_runs([tracker.experiment_id], "tags.`asma.kind` = 'grid'")
    metrics = parent.data.metrics
    assert metrics["a.test_top1_mean"] == pytest.approx(10.5)
    assert metrics["a.test_top1_std"] == pytest.approx(0.5**0.5)
    assert metrics["b.test_top1_mean"] == pytest.approx(30.5)
    assert metrics["a.test_top1_seeds"] == metrics["b.test_top1_seeds"] == 2
    # every run the harness made says which command made it and that it ran locally
    units = tracker.unit_runs("fakegrid")
    for run in [parent, *units]:
        assert run.data.tags["mlflow.source.name"] == "asma-bench run"
        assert run.data.tags["mlflow.source.type"] == "LOCAL"
        commit = run.data.tags["asma.git_commit"]
        assert run.data.tags.get("mlflow.source.git.commit") == (
            None if commit == "unknown" else commit
        )
    # a rerun with a third seed: the summary follows the units of the run's plan
    more = RunOptions(profile="smoke", seeds=[0, 1, 2], out=tmp_path / "runs", progress=False)
    assert sorted(run_grid(grid, more).ran) == ["a/seed2", "b/seed2"]
    metrics = tracker.client.get_run(parent.info.run_id).data.metrics
    assert metrics["a.test_top1_mean"] == pytest.approx(11.0)
    assert metrics["a.test_top1_seeds"] == 3


@pytest.mark.parametrize(
    "argv, name",
    [
        (["/venv/bin/asma-bench", "run", "--grid", "encoders"], "asma-bench run"),
        (["/venv/bin/asma-bench", "--debug", "tune", "--space", "lambda"], "asma-bench tune"),
        (["/site/asma_bench/__main__.py", "report"], "asma-bench report"),
        (["/venv/bin/asma-bench"], "asma-bench"),
        (["/home/me/sweep.py", "--fast"], "sweep.py"),
    ],
)
def test_the_source_name_is_the_command_or_the_script(argv, name):
    assert source_name(argv) == name


def test_no_git_means_no_commit_tag_and_no_failure(monkeypatch):
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    tags = environment_tags()
    assert tags["asma.git_commit"] == "unknown" and "mlflow.source.git.commit" not in tags
    assert tags["mlflow.source.type"] == "LOCAL"
    monkeypatch.setattr(tracking, "git_commit", lambda: "0123abcd")
    assert environment_tags()["mlflow.source.git.commit"] == "0123abcd"
