"""Every built-in grid completes on real NW-UCLA (smoke profile, one seed, a class-balanced
subset of the clips): short or degenerate clips (a one-frame clip's zero motion), a
20-joint skeleton (n values of the paper's 25 that round alike) and the transfer grid's
synthetic source written on the target's skeleton. Skipped where the shared archive is
absent."""

from __future__ import annotations

import pytest

from asma_bench.cli import main
from asma_bench.harness.cost import pretrain_digests
from asma_bench.harness.grids import list_grids, load_grid
from asma_bench.harness.plan import RunOptions, plan_units
from asma_bench.harness.tracking import Tracker
from asma_bench.training.pretrain import pretrain_digest

#: sizes that keep every grid's units to seconds; the clips are still real
SUBSET = ["data.train_limit=60", "data.test_limit=30"]


@pytest.mark.slow
def test_every_builtin_grid_completes_on_nw_ucla(ucla_dir, tmp_path, capsys):
    """The whole evaluation in one command (`run --grid paper`), on the real clips."""
    out = tmp_path / "runs"  # one folder: grids share the pretrainings they agree on
    sets = [a for s in SUBSET for a in ("--set", s)]
    args = ["run", "--grid", "paper", "--profile", "smoke", "--seeds", "1", "--data",
            str(ucla_dir), "--out", str(out), "--no-progress", *sets]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "failed or unfinished" in text and ", 0 failed or unfinished" in text, text
    opts = RunOptions(profile="smoke", seeds=[0], data=str(ucla_dir), overrides=SUBSET)
    plans = {g: plan_units(load_grid(g), opts) for g in list_grids()}
    assert all(plans.values())
    # every pretraining the suite needed was trained once, whichever grids shared it
    digests = {d for units in plans.values() for u in units for d in pretrain_digests(u)}
    per_grid = sum(len({d for u in units for d in pretrain_digests(u)}) for units in plans.values())
    assert len(digests) < per_grid  # grids do share
    # (a random_init unit also writes its untrained encoders under its own digest)
    untrained = {
        pretrain_digest(u.config)
        for units in plans.values()
        for u in units
        if u.config.pretrain.epochs == 0 and u.protocol != "supervised"
    }
    assert {p.name for p in (out / "checkpoints").glob("pretrain-*.pt")} == {
        f"pretrain-{d}.pt" for d in digests | untrained
    }
    tracker = Tracker(f"sqlite:///{out / 'mlflow.db'}", experiment="asma-bench")
    # the transfer grid pretrained on synthetic motions on NW-UCLA's skeleton and was
    # evaluated on NW-UCLA
    (unit, *_) = [r for r in tracker.unit_runs("transfer") if r.info.status == "FINISHED"]
    params = unit.data.params
    assert params["data.source"] == "synthetic" and params["data.layout"] == "kinect20"
    assert params["transfer.target.source"] == str(ucla_dir.resolve())
    # masking_ratio: the n8 cells are n7's experiment on 20 joints, and were not run
    cells = {r.data.tags["asma.cell"] for r in tracker.unit_runs("masking_ratio")}
    assert "n7_k10" in cells and not any(c.startswith("n8_") for c in cells)
