"""The Python API: run a grid, and read its results as a DataFrame, from a notebook.

>>> from asma_bench.api import run_grid, load_results          # doctest: +SKIP
>>> outcome = run_grid("masking_pairs", profile="smoke", seeds=[0, 1], out="runs")
>>> df = load_results("masking_pairs", runs="runs")
>>> df.groupby("cell")["test_top1"].agg(["mean", "std"])

``load_results`` gives one row per unit (cell, seed), its latest FINISHED run: ``cell``,
``seed``, ``status``, ``run_id``, ``protocol``, the cell's ``label.*``, every resolved
configuration value under its dotted name (``masking.pairing``, ``masking.k`` …, with the
types of the run's ``config.json``: bool, int, float, text, lists, None) and every final
metric (``test_top1``, ``test_knn_top1``, ``linear_loss`` …), in that order, each group
sorted. Units that failed are left out unless ``finished_only=False``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from torch import nn

from asma_bench.config import RunConfig, validate_config
from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.harness.runner import GridOutcome, RunOptions
from asma_bench.harness.runner import run_grid as _run_grid
from asma_bench.harness.tracking import TAG_KIND, Tracker, resolve_run_id
from asma_bench.predict import PREDICTABLE, EvalPipeline, Predictor, pipeline_path
from asma_bench.protocols import UnitContext
from asma_bench.protocols.finetune import finetuned_classifier
from asma_bench.protocols.linear import cached_linear_teacher
from asma_bench.protocols.unit_files import unit_checkpoints
from asma_bench.reports.results import (
    check_sqlite_store,
    load_grid_runs,
    resolve_tracking_uri,
    unit_table,
)
from asma_bench.training.data import PreparedData, prepare_data, resolve_dataset

__all__ = ["load_model", "load_results", "run_grid", "unit_run"]


def run_grid(
    grid: str | Path,
    *,
    profile: str = "quick",
    seeds: int | Sequence[int] = (0, 1, 2),
    data: str | None = None,
    out: str | Path = "runs",
    overrides: Sequence[str] = (),
    device: str | None = None,
    progress: bool = False,
    experiment: str = "asma-bench",
) -> GridOutcome:
    """Run every unfinished (cell, seed) of ``grid`` (a name or a YAML/JSON file) into the
    MLflow store under ``out``: what ``asma-bench run`` does, without the printing.

    ``seeds`` is a count N (seeds 0..N-1, like ``--seeds 3``) or the seeds themselves
    (``[0, 2, 5]``, like ``--seeds 0,2,5``)."""
    from numbers import Integral

    from asma_bench.harness.limits import MAX_SEEDS

    if isinstance(seeds, (bool, str, bytes)):
        raise ConfigError(f"seeds={seeds!r}: give a count N or a list of seeds")
    if isinstance(seeds, Integral):
        if not 1 <= seeds <= MAX_SEEDS:
            raise ConfigError(f"seeds={seeds}: a count of seeds is 1..{MAX_SEEDS}")
        seeds = range(int(seeds))
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
    ``store``): cell, seed, status, run_id, protocol, the cell's labels, configuration
    values with their real types (from each run's ``config.json``: bool, int, float, text,
    lists, None) and final metrics, in that column order (see
    :func:`~asma_bench.reports.results.unit_table`)."""
    try:
        spec = load_grid(grid)
    except ConfigError:  # a grid run from a file no longer at hand: its runs still read
        spec = None
    uri = resolve_tracking_uri(store, Path(runs))
    gr = load_grid_runs(uri, spec.name if spec else grid, spec, experiment=experiment)
    out = unit_table(gr, finished_only)
    order = {c: i for i, c in enumerate(gr.cells)}
    out = out.assign(_order=out["cell"].map(order)).sort_values(["_order", "seed"])
    return out.drop(columns="_order").reset_index(drop=True)


def unit_run(
    run_id: str, runs: str | Path = "runs", store: str | None = None, experiment: str = "asma-bench"
) -> tuple:
    """(tracker, MLflow run, resolved config dict) of a unit run, or one line saying why not.
    ``run_id`` may be a unique prefix of the id (see :func:`resolve_run_id`)."""
    import json

    uri = resolve_tracking_uri(store, Path(runs))
    check_sqlite_store(uri)
    tracker = Tracker(uri, experiment=experiment)  # the run's own experiment is used below
    run_id = resolve_run_id(tracker.client, run_id, uri)
    run = tracker.client.get_run(run_id)
    tracker.experiment_id = run.info.experiment_id  # a rerun goes where the run is
    if run.data.tags.get(TAG_KIND) != "unit":
        raise ConfigError(f"run {run_id!r} is not a unit run of a grid (kind: "
                          f"{run.data.tags.get(TAG_KIND, 'none')})")  # fmt: skip
    path = tracker.client.download_artifacts(run_id, "config.json")
    return tracker, run, json.loads(Path(path).read_text())


def load_model(
    run_id: str | os.PathLike[str], runs: str | Path = "runs", store: str | None = None
) -> Predictor:
    """The trained classifier of a unit run (frozen, eval mode) with the run's test-time
    pipeline: the pretrained encoders and the probe head of a ``linear`` unit, or the
    fine-tuned model of a ``finetune`` / ``semi`` / ``supervised`` unit, loaded from the
    checkpoints under ``runs``. ``.predict(clips, lengths)`` takes clips as stored in a
    dataset's data.npy (N, C, T, V, M) and ``.predict_folder(DIR, part="test")`` a dataset
    folder, pre-processed as the run's ``SkeletonFeeder(train=False)`` did; calling it on a
    batch of pre-processed clips gives class logits (see :mod:`asma_bench.predict`).
    Nothing is trained: a missing checkpoint is an error that names ``asma-bench rerun``.

    ``run_id`` may instead be the path of a classifier checkpoint (``checkpoints/linear-…pt``
    or ``finetune-…pt``) or of the ``.pipeline.json`` beside it: the model is then rebuilt
    from that checkpoint folder alone, without the MLflow store or the dataset."""

    if _is_file_reference(run_id):
        return _load_from_checkpoint(Path(run_id))
    run_id = str(run_id)
    _, run, config = unit_run(run_id, runs, store)
    cfg = validate_config(config)
    protocol = run.data.tags.get("asma.protocol", "")
    needed = PREDICTABLE.get(protocol)
    if needed is None:
        raise ConfigError(f"run {run_id}: load_model reads linear, finetune, semi and "
                          f"supervised units, not {protocol or 'this'} ones")  # fmt: skip
    runs = Path(runs)
    have = unit_checkpoints(cfg, runs / "checkpoints")
    if needed not in have or (cfg.pretrain.epochs > 0 and "pretrain" not in have):
        raise ConfigError(f"run {run_id}: its {needed} checkpoint is not under {runs} "
                          f"(`asma-bench rerun {run_id}` recreates it)")  # fmt: skip
    ctx = UnitContext(data_root=runs / "data", ckpt_dir=runs / "checkpoints", device="cpu")
    model = _classifier(cfg, needed, prepare_data(cfg.data, cfg.seed, ctx.data_root), ctx)
    saved = pipeline_path(have[needed])
    if saved.is_file():
        return Predictor(model, EvalPipeline.load(saved))
    # a run made before units saved their pipeline: the same one, from its config.json
    folder = resolve_dataset(cfg.data, ctx.data_root)
    return Predictor(model, EvalPipeline.from_data(cfg.data, folder, cfg, protocol))


def _classifier(cfg: RunConfig, kind: str, data: PreparedData, ctx: UnitContext) -> nn.Module:
    """The frozen classifier of checkpoint ``kind`` (``linear`` or ``finetune``), loaded."""
    if kind == "linear":
        return cached_linear_teacher(cfg, data, ctx)
    return finetuned_classifier(cfg, data, ctx)[0]


def _is_file_reference(ref: str | os.PathLike[str]) -> bool:
    """A checkpoint or pipeline file rather than a run id (ids are 32 hex characters)."""
    text = os.fspath(ref)
    return text.endswith((".pt", ".pipeline.json")) or os.sep in text or Path(text).is_file()


def _load_from_checkpoint(path: Path) -> Predictor:
    """:func:`load_model` of a classifier checkpoint, from its folder alone: the pipeline
    file beside it holds the unit's config and the data's shape, so neither the store nor
    the dataset is read, and the folder must also hold the unit's pretraining checkpoint."""
    if path.name.endswith(".pipeline.json"):
        sidecar = path
        path = path.with_name(path.name.removesuffix(".pipeline.json") + ".pt")
    else:
        sidecar = pipeline_path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint")
    if not sidecar.is_file():
        raise ConfigError(f"{path}: no {sidecar.name} beside it (a run made before units "
                          "saved their pipeline: use load_model(run_id, runs=...))")  # fmt: skip
    pipeline = EvalPipeline.load(sidecar)
    kind = PREDICTABLE.get(pipeline.protocol)
    if pipeline.config is None or kind is None:
        raise ConfigError(f"{sidecar}: it names no unit config (written by an older version: "
                          "use load_model(run_id, runs=...))")  # fmt: skip
    cfg = validate_config(pipeline.config)
    ctx = UnitContext(data_root=path.parent / "data", ckpt_dir=path.parent, device="cpu")
    have = unit_checkpoints(cfg, path.parent)
    found = have.get(kind)
    if (
        found is None
        or found.resolve() != path.resolve()
        or (cfg.pretrain.epochs > 0 and "pretrain" not in have)
    ):
        raise ConfigError(f"{path}: its unit's {kind} and pretraining checkpoints are not "
                          f"both in {path.parent}")  # fmt: skip
    return Predictor(_classifier(cfg, kind, pipeline.empty_data(), ctx), pipeline)
