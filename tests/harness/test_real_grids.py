"""Every built-in grid completes on real NW-UCLA (smoke profile, one seed, a class-balanced
subset of the clips): short or degenerate clips (a one-frame clip's zero motion), a
20-joint skeleton (n values of the paper's 25 that round alike) and the transfer grid's
synthetic source written on the target's skeleton. Skipped where the shared archive is
absent."""

from __future__ import annotations

import pytest

from asma_bench.harness.grids import list_grids, load_grid
from asma_bench.harness.runner import RunOptions, run_grid
from asma_bench.harness.tracking import Tracker

#: sizes that keep every grid's units to seconds; the clips are still real
SUBSET = ["data.train_limit=60", "data.test_limit=30"]


@pytest.mark.slow
def test_every_builtin_grid_completes_on_nw_ucla(ucla_dir, tmp_path):
    out = tmp_path / "runs"  # one folder: grids share the pretrainings they agree on
    failed, ran = {}, {}
    for name in list_grids():
        opts = RunOptions(profile="smoke", seeds=[0], data=str(ucla_dir), out=out,
                          progress=False, overrides=SUBSET)  # fmt: skip
        outcome = run_grid(load_grid(name), opts)
        failed.update({f"{name}:{u}": why for u, why in outcome.failed.items()})
        ran[name] = len(outcome.ran) + len(outcome.skipped)
        assert not outcome.held
    assert not failed, failed
    assert all(ran.values()), ran
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
