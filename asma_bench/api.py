"""The Python API: run a grid, and read its results as a DataFrame, from a notebook.

>>> from asma_bench.api import run_grid, load_results          # doctest: +SKIP
>>> outcome = run_grid("masking_pairs", profile="smoke", seeds=[0, 1], out="runs")
>>> df = load_results("masking_pairs", runs="runs")
>>> df.groupby("cell")["test_top1"].agg(["mean", "std"])

``load_results`` gives one row per unit (cell, seed), its latest FINISHED run: ``cell``,
``seed``, ``status``, ``run_id``, every resolved configuration value under its dotted name
(``pretrain.pairing``, ``masking.k`` …) and every final metric (``test_top1``,
``test_knn_top1``, ``linear_loss`` …). Units that failed are left out unless
``finished_only=False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from asma_bench.config import validate_config
from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.harness.runner import GridOutcome, RunOptions
from asma_bench.harness.runner import run_grid as _run_grid
from asma_bench.harness.tracking import TAG_KIND, Tracker
from asma_bench.protocols import UnitContext
from asma_bench.protocols.data import prepare_data
from asma_bench.protocols.finetune import finetuned_classifier
from asma_bench.protocols.linear import cached_linear_teacher
from asma_bench.protocols.unit_files import unit_checkpoints
from asma_bench.reports.results import check_sqlite_store, load_grid_runs, resolve_tracking_uri

__all__ = ["load_model", "load_results", "run_grid", "unit_run"]


def run_grid(
    grid: str | Path,
    *,
    profile: str = "quick",
    seeds: Sequence[int] = (0, 1, 2),
    data: str | None = None,
    out: str | Path = "runs",
    overrides: Sequence[str] = (),
    device: str | None = None,
    progress: bool = False,
    experiment: str = "asma-bench",
) -> GridOutcome:
    """Run every unfinished (cell, seed) of ``grid`` (a name or a YAML/JSON file) into the
    MLflow store under ``out``: what ``asma-bench run`` does, without the printing."""
    spec = load_grid(str(grid))
    opts = RunOptions(
        profile=profile, seeds=list(seeds), out=Path(out), data=data, device=device,
        overrides=list(overrides), progress=progress, experiment=experiment,
    )  # fmt: skip
    return _run_grid(spec, opts)


def load_results(
    grid: str,
    runs: str | Path = "runs",
    *,
    store: str | None = None,
    finished_only: bool = True,
    experiment: str = "asma-bench",
) -> pd.DataFrame:
    """One row per unit of ``grid`` in the store of ``runs`` (or the tracking URI
    ``store``): cell, seed, status, run_id, configuration values and final metrics."""
    try:
        spec = load_grid(grid)
    except ConfigError:  # a grid run from a file no longer at hand: its runs still read
        spec = None
    uri = resolve_tracking_uri(store, Path(runs))
    gr = load_grid_runs(uri, spec.name if spec else grid, spec, experiment=experiment)
    df = gr.finished if finished_only else gr.runs
    params = {c: c.removeprefix("params.") for c in df.columns if c.startswith("params.")}
    metrics = {c: c.removeprefix("metrics.") for c in df.columns if c.startswith("metrics.")}
    out = df[["cell", "seed", "status", "run_id", *params, *metrics]].rename(
        columns={**params, **metrics}
    )
    out = out.loc[:, ~out.columns.duplicated()]  # 'cell' is also a logged parameter
    for col in params.values():  # MLflow keeps parameters as text: numbers back to numbers
        if col in out and col not in ("cell", "seed"):
            numbers = pd.to_numeric(out[col], errors="coerce")
            if numbers.notna().sum() == out[col].notna().sum():
                out[col] = numbers
    order = {c: i for i, c in enumerate(gr.cells)}
    out = out.assign(_order=out["cell"].map(order)).sort_values(["_order", "seed"])
    return out.drop(columns="_order").reset_index(drop=True)


def unit_run(
    run_id: str, runs: str | Path = "runs", store: str | None = None, experiment: str = "asma-bench"
) -> tuple:
    """(tracker, MLflow run, resolved config dict) of a unit run, or one line saying why not."""
    import json

    uri = resolve_tracking_uri(store, Path(runs))
    check_sqlite_store(uri)
    tracker = Tracker(uri, experiment=experiment)  # the run's own experiment is used below
    try:
        run = tracker.client.get_run(run_id)
    except Exception:  # noqa: BLE001 - MLflow raises several types for an unknown id
        raise ConfigError(f"run {run_id!r} is not in the store {uri}") from None
    tracker.experiment_id = run.info.experiment_id  # a rerun goes where the run is
    if run.data.tags.get(TAG_KIND) != "unit":
        raise ConfigError(f"run {run_id!r} is not a unit run of a grid (kind: "
                          f"{run.data.tags.get(TAG_KIND, 'none')})")  # fmt: skip
    path = tracker.client.download_artifacts(run_id, "config.json")
    return tracker, run, json.loads(Path(path).read_text())


def load_model(run_id: str, runs: str | Path = "runs", store: str | None = None):  # noqa: ANN201
    """The trained classifier of a unit run (frozen, eval mode): the pretrained encoders
    and the probe head of a ``linear`` unit, or the fine-tuned model of a ``finetune`` /
    ``semi`` / ``supervised`` unit, loaded from the checkpoints under ``runs``. Calling it
    on a batch (N, C, T, V, M) of pre-processed clips gives class logits. Nothing is
    trained: a missing checkpoint is an error that names ``asma-bench rerun``."""

    _, run, config = unit_run(run_id, runs, store)
    cfg = validate_config(config)
    protocol = run.data.tags.get("asma.protocol", "")
    needed = {"linear": "linear", "finetune": "finetune", "semi": "finetune",
              "supervised": "finetune"}.get(protocol)  # fmt: skip
    if needed is None:
        raise ConfigError(f"run {run_id}: load_model reads linear, finetune, semi and "
                          f"supervised units, not {protocol or 'this'} ones")  # fmt: skip
    runs = Path(runs)
    have = unit_checkpoints(cfg, runs / "checkpoints")
    if needed not in have or (cfg.pretrain.epochs > 0 and "pretrain" not in have):
        raise ConfigError(f"run {run_id}: its {needed} checkpoint is not under {runs} "
                          f"(`asma-bench rerun {run_id}` recreates it)")  # fmt: skip
    ctx = UnitContext(data_root=runs / "data", ckpt_dir=runs / "checkpoints", device="cpu")
    data = prepare_data(cfg.data, cfg.seed, ctx.data_root)
    if needed == "linear":
        return cached_linear_teacher(cfg, data, ctx)
    return finetuned_classifier(cfg, data, ctx)[0]
