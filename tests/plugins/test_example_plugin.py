"""The example plug-in package, installed as an entry point, runs through `asma-bench run`
without any file of asma_bench changing (docs/extending.md)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin"


def install(site: Path) -> None:
    """What `pip install examples/plugin` leaves behind, minus pip: the package and a
    dist-info folder whose entry_points.txt importlib.metadata finds on sys.path."""
    shutil.copytree(EXAMPLE / "asma_bench_example", site / "asma_bench_example")
    info = site / "asma_bench_example-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: asma-bench-example\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text("[asma_bench.plugins]\nexample = asma_bench_example\n")


def cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import sys; from asma_bench.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_the_example_plugin_runs_through_asma_bench_run(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install(site)
    listed = cli(site, "maskings")
    assert listed.returncode == 0 and "depth_weighted" in listed.stdout, listed.stderr
    grid = EXAMPLE / "asma_bench_example" / "grids" / "depth.yaml"
    runs = tmp_path / "runs"
    done = cli(site, "run", "--grid", str(grid), "--profile", "smoke", "--seeds", "1",
               "--out", str(runs), "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = cli(site, "results", "--grid", str(grid), "--runs", str(runs), "--format", "csv")
    rows = {r["cell"]: r for r in csv.DictReader(io.StringIO(table.stdout))}
    assert set(rows) == {"depth_bt", "depth_weighted", "depth_tcn", "depth_knn"}
    for row in rows.values():
        assert row["status"] == "FINISHED" and 0 <= float(row["test_top1"]) <= 100
    assert rows["depth_weighted"]["pretrain.objective"] == "weighted_triplet"
    assert float(rows["depth_weighted"]["pretrain.params.alpha"]) == 0.8
    assert rows["depth_tcn"]["backbone.name"] == "joint_tcn"
    # the cells really trained different things; the k-NN cell reused depth_bt's encoder
    losses = {c: rows[c]["pretrain_loss"] for c in ("depth_bt", "depth_weighted", "depth_tcn")}
    assert len(set(losses.values())) == 3
    assert (
        rows["depth_knn"]["protocol"] == "knn"
        and "linear_loss" not in rows["depth_knn"]
        or (rows["depth_knn"]["linear_loss"] == "")
    )


def test_the_example_strategy_masks_distal_joints_most(tmp_path):
    # in a child process: importing the plug-in here would register its names in this
    # test session's registries
    site = tmp_path / "site"
    site.mkdir()
    install(site)
    code = (
        "import torch; from asma_bench_example import DepthWeighted; "
        "m = DepthWeighted('ntu25', n=5)(torch.randn(4000, 3, 2, 25, 1), "
        "generator=torch.Generator().manual_seed(0)); "
        "s = m[:, 0].float().mean(0); print(float(s[15]), float(s[20]))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    foot, centre = map(float, done.stdout.split())  # left foot (depth 6), spine shoulder (0)
    assert foot > 2 * centre
