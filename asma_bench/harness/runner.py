"""The grid runner: grid → units (cell × seed) → protocols → MLflow.

A unit is identified by a hash of its protocol and fully resolved config. Rerunning the
same command skips units that already have a FINISHED run in the store and resumes the
rest (pretraining resumes from its last epoch checkpoint). A unit whose loss diverges is
recorded as FAILED with the reason, and the grid goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asma_bench.config import RunConfig, build_config
from asma_bench.errors import ConfigError
from asma_bench.harness.grids import CellSpec, GridSpec
from asma_bench.harness.locks import unit_lock
from asma_bench.harness.tracking import (
    TAG_CELL,
    TAG_CHECKPOINT,
    TAG_FAILURE,
    TAG_PROFILE,
    TAG_SEED,
    TAG_SEEDS,
    TAG_UNIT,
    Tracker,
    default_tracking_uri,
    environment_tags,
)
from asma_bench.protocols import ProtocolResult, UnitContext, run_protocol
from asma_bench.protocols.checkpoints import unit_checkpoints
from asma_bench.protocols.data import resolve_splits
from asma_bench.protocols.metrics import knn_metric, per_class_accuracy
from asma_bench.protocols.training import DivergenceError

log = logging.getLogger(__name__)


@dataclass
class Unit:
    grid: str
    cell: CellSpec
    seed: int
    protocol: str
    config: RunConfig

    @property
    def id(self) -> str:
        blob = json.dumps(
            {"protocol": self.protocol, "config": self.config.model_dump(mode="json")},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        return f"{self.cell.name}/seed{self.seed}"


@dataclass
class RunOptions:
    profile: str = "quick"
    seeds: Sequence[int] = (0, 1, 2)
    out: Path = Path("runs")
    data: str | None = None
    device: str | None = None
    tracking_uri: str | None = None
    overrides: Sequence[str | dict] = ()
    progress: bool = True
    # shared Optuna storage URL: units become a queue that several workers share
    storage: str | None = None
    worker: bool = False  # with storage: stop when no unit is waiting (don't wait for others)
    heartbeat: int = 60  # seconds; a unit whose worker is silent for twice this is retried
    max_retry: int = 3
    experiment: str = "asma-bench"  # the MLflow experiment the grid's runs go to


@dataclass
class GridOutcome:
    grid: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    tracking_uri: str = ""


def plan_units(grid: GridSpec, opts: RunOptions) -> list[Unit]:
    """Resolve every (cell, seed) config up front, so a bad override fails before training."""
    cli: list[str | dict] = []
    if opts.data:
        cli.append({"data": {"source": opts.data}})
    if opts.device:
        cli.append({"device": opts.device})
    cli.extend(opts.overrides)
    units = []
    for seed in opts.seeds:
        for cell in grid.all_cells():
            cfg = build_config(
                opts.profile, [cell.overrides, *cli, cell.fixed, {"seed": int(seed)}]
            )
            try:  # the split each unit really uses is the one recorded and hashed
                cfg = resolve_splits(cfg)
                _refuse_unused_pairing(cfg)
            except ConfigError as exc:
                raise ConfigError(f"grid {grid.name!r}, cell {cell.name!r}: {exc}") from None
            units.append(Unit(grid.name, cell, int(seed), cell.protocol or grid.protocol, cfg))
    seen: dict[str, str] = {}
    for u in units:
        if u.id in seen:
            raise ConfigError(
                f"grid {grid.name!r}: cells {seen[u.id]!r} and {u.cell.name!r} "
                "resolve to the same configuration (an override erased their "
                "difference)"
            )
        seen[u.id] = u.cell.name
    _check_names(grid, units)
    _refuse_equal_masks(grid, units)
    return units


def _refuse_unused_pairing(cfg: RunConfig) -> None:
    """A two-encoder objective takes each encoder's pairing from ``pretrain.params``
    (``theta_masks``/``phi_masks``); a ``pretrain.pairing`` it would ignore is refused
    rather than silently entering the unit's id."""
    from asma_bench.config import PretrainConfig
    from asma_bench.protocols.pretrain import TWO_ENCODER_OBJECTIVES

    default = PretrainConfig.model_fields["pairing"].default
    p = cfg.pretrain
    if p.objective in TWO_ENCODER_OBJECTIVES and p.pairing != default:
        raise ConfigError(
            f"pretrain.pairing={p.pairing!r} does not apply to objective {p.objective!r}, "
            "which pretrains two encoders; choose their pairings with "
            "pretrain.params={theta_masks: NAME, phi_masks: NAME}"
        )


def _check_names(grid: GridSpec, units: Sequence[Unit]) -> None:
    """Every protocol, objective, pairing, backbone and synthetic preset a unit names is
    registered: a typo fails before anything runs, naming the grid and the cell."""
    from asma_bench.backbones import BACKBONES
    from asma_bench.data.synthetic import resolve_config
    from asma_bench.objectives import OBJECTIVES
    from asma_bench.protocols.base import PROTOCOLS
    from asma_bench.strategies.pairs import PAIRINGS

    checked: set[tuple[str, str]] = set()
    for u in units:
        cfg = u.config
        names = [
            (PROTOCOLS.get, u.protocol),
            (OBJECTIVES.get, cfg.pretrain.objective),
            (PAIRINGS.get, cfg.pretrain.pairing),
            (BACKBONES.get, cfg.backbone.name),
        ]
        data = [cfg.data] + ([cfg.transfer.target] if cfg.transfer.target else [])
        names += [(resolve_config, d.preset) for d in data if d.source == "synthetic"]
        for lookup, name in names:
            if (lookup.__qualname__, name) in checked:
                continue
            try:
                lookup(name)
            except ConfigError as exc:
                raise ConfigError(f"grid {grid.name!r}, cell {u.cell.name!r}: {exc}") from None
            checked.add((lookup.__qualname__, name))


def _joint_count(data: Any) -> int | None:  # noqa: ANN401 - a DataConfig
    """V of the dataset a config names (without loading it), or None when unknown."""
    from asma_bench.data.layouts import get_layout

    if data.source == "synthetic":
        return get_layout("ntu25").num_joints
    try:
        info = json.loads((Path(data.source) / "info.json").read_text())
        return get_layout(info["layout"]).num_joints
    except (OSError, ValueError, KeyError, TypeError, ConfigError):
        return None


def _refuse_equal_masks(grid: GridSpec, units: Sequence[Unit]) -> None:
    """Cells that differ only in ``masking.n``/``masking.k`` must mask different counts.

    Counts given as fractions of V and T are rounded at the run's sizes; at a small T (the
    quick profile's 20 frames) several of the paper's k values round to the same count, and
    such cells would be the same experiment under different names.
    """
    seen: dict[tuple, str] = {}
    for u in units:
        m, v, t = u.config.masking, _joint_count(u.config.data), u.config.data.frames
        n = round(m.n * v) if (m.n < 1 and v) else m.n
        k = round(m.k * t) if m.k < 1 else m.k
        rest = u.config.model_dump(mode="json", exclude={"masking": {"n", "k"}})
        key = (u.protocol, json.dumps(rest, sort_keys=True), n, k)
        if seen.get(key, u.cell.name) != u.cell.name:
            other = seen[key]
            raise ConfigError(
                f"grid {grid.name!r}: cells {other!r} and {u.cell.name!r} mask the same "
                f"{n:g} joints and {k:g} of {t} frames (fractions of V and T round alike at "
                "this size); run with more frames, e.g. --set data.frames=50"
            )
        seen[key] = u.cell.name


def run_grid(grid: GridSpec, opts: RunOptions) -> GridOutcome:
    """Run every unfinished unit of ``grid``; returns what ran, what was skipped or failed.

    With ``opts.storage`` the units go through a shared queue that any number of workers
    serve (see :mod:`asma_bench.harness.queue`).
    """
    from tqdm.auto import tqdm

    if opts.storage:
        from asma_bench.harness.queue import run_grid_queued

        return run_grid_queued(grid, opts)

    units = plan_units(grid, opts)  # a bad grid or config fails before anything is created
    out = ensure_writable(opts.out)
    uri = opts.tracking_uri or default_tracking_uri(out)
    tracker = Tracker(uri, experiment=opts.experiment, artifact_root=out / "artifacts")
    parent = open_grid_run(tracker, grid, opts)
    done = tracker.finished_units(grid.name)
    outcome = GridOutcome(grid.name, tracking_uri=uri)
    todo = [u for u in units if u.id not in done]
    outcome.skipped = [u.name for u in units if u.id in done]
    start = time.monotonic()
    bar = tqdm(todo, desc=grid.name, unit="unit", disable=not opts.progress, dynamic_ncols=True)
    for unit in bar:
        bar.set_description(f"{grid.name} {unit.name}")

        def stage_progress(stage: str, i: int, n: int, _bar: Any = bar) -> None:
            _bar.set_postfix_str(f"{stage} {i}/{n}")

        unit_start = time.monotonic()
        try:
            with unit_lock(out, unit.id) as mine:
                if not mine or unit.id in tracker.finished_units(grid.name):
                    why = "running in another process" if not mine else "finished meanwhile"
                    outcome.skipped.append(unit.name)
                    log.info("%s skipped: %s", unit.name, why)
                    if not opts.progress:
                        print(f"[-] {grid.name} {unit.name}: {why}", file=sys.stderr, flush=True)
                    continue
                result = run_unit(
                    unit, tracker, parent, out, progress=stage_progress if opts.progress else None
                )
            outcome.ran.append(unit.name)
            status = _metric_text(result.metrics, grid.metric)
        except DivergenceError as exc:
            outcome.failed[unit.name] = str(exc)
            log.warning("%s failed: %s", unit.name, exc)
            status = "FAILED"
        except BaseException:  # the grid stops (bad data, a bug, Ctrl-C): say so in the store
            bar.close()
            try:
                tracker.finish(parent, "FAILED")
            except Exception:  # noqa: BLE001 - the original error matters more
                log.debug("could not close the grid run", exc_info=True)
            raise
        if not opts.progress:  # logs and batch jobs: one line per unit instead of a bar
            n_done = len(outcome.ran) + len(outcome.failed)
            print(
                f"[{n_done}/{len(todo)}] {grid.name} {unit.name}: {status} "
                f"({time.monotonic() - unit_start:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    bar.close()
    if not tracker.finished_units(grid.name).keys() >= {u.id for u in units}:
        log.info("grid %s has unfinished units", grid.name)
    else:
        tracker.finish(parent)
    outcome.seconds = time.monotonic() - start
    return outcome


def ensure_writable(folder: str | Path) -> Path:
    """``folder``, created if needed, after proving a file can be written in it: a read-only
    or full output folder fails at once, not after MLflow's database retries."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {folder}: cannot write there ({exc.strerror or exc})") from None
    return folder


def open_grid_run(
    tracker: Tracker, grid: GridSpec, opts: RunOptions, tags: dict[str, str] | None = None
) -> str:
    """The grid's parent MLflow run (created once, reused on reruns).

    A rerun may add seeds or use another profile: what changes between runs is kept in tags
    (``asma.seeds``: every seed requested so far, which reports check for completeness;
    ``asma.profile``: the latest profile), since MLflow refuses to change a parameter. The
    grid's name and table are parameters, logged once.
    """
    parent = tracker.parent_run(
        grid.name, {TAG_PROFILE: opts.profile, **(tags or {}), **environment_tags()}
    )
    run = tracker.client.get_run(parent)
    try:
        earlier = json.loads(run.data.tags.get(TAG_SEEDS, "[]"))
    except ValueError:
        earlier = []
    seeds = sorted({int(s) for s in [*earlier, *opts.seeds]})
    tracker.set_tags(parent, {TAG_SEEDS: json.dumps(seeds), TAG_PROFILE: opts.profile})
    fresh = {k: v for k, v in {"grid": grid.name, "table": grid.table}.items()
             if k not in run.data.params}  # fmt: skip
    if fresh:
        tracker.log_params(parent, fresh)
    return parent


def _metric_text(metrics: dict[str, float], name: str) -> str:
    value = metrics.get(name)
    return f"{name}={value:.2f}" if value is not None else "done"


def run_unit(unit: Unit, tracker: Tracker, parent: str, out: Path, progress=None) -> ProtocolResult:
    """Run one (cell, seed) inside its own MLflow run; FINISHED only if it completed."""
    tracker.close_stale(unit.grid, unit.id)
    run_id = tracker.start_unit(parent, unit.grid, unit.name, {
        TAG_UNIT: unit.id, TAG_CELL: unit.cell.name, TAG_SEED: unit.seed,
        "asma.protocol": unit.protocol, **environment_tags(),
    })  # fmt: skip
    params = {
        **unit.config.flat(),
        "protocol": unit.protocol,
        "cell": unit.cell.name,
        **{f"label.{k}": v for k, v in unit.cell.labels.items()},
    }
    tracker.log_params(run_id, params)
    tracker.log_dict(run_id, unit.config.model_dump(mode="json"), "config.json")
    last_step: dict[str, int] = {}  # a metric with a curve gets its final value as its last point

    def on_epoch(epoch: int, m: dict[str, float]) -> None:
        tracker.log_metrics(run_id, m, step=epoch)
        for key in m:
            last_step[key] = max(last_step.get(key, epoch), epoch)

    ctx = UnitContext(
        data_root=out / "data", ckpt_dir=out / "checkpoints", device=unit.config.device,
        on_epoch=on_epoch, progress=progress,
    )  # fmt: skip
    t0 = time.monotonic()
    try:
        result = run_protocol(unit.protocol, unit.config, ctx)
    except DivergenceError as exc:
        tracker.set_tags(run_id, {TAG_FAILURE: str(exc)})
        tracker.finish(run_id, "FAILED")
        raise
    except BaseException as exc:
        tracker.set_tags(run_id, {TAG_FAILURE: f"{type(exc).__name__}: {exc}"})
        tracker.finish(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    metrics = {**result.metrics, "unit_seconds": time.monotonic() - t0}
    ckpts = unit_checkpoints(unit.config, ctx.ckpt_dir)
    tracker.set_tags(run_id, {f"{TAG_CHECKPOINT}.{k}": str(p.resolve()) for k, p in ckpts.items()})
    by_step: dict[int, dict[str, float]] = {}  # never a step back to 0 on a curve
    for key, value in metrics.items():
        by_step.setdefault(last_step.get(key, 0), {})[key] = value
    for step, values in sorted(by_step.items()):
        tracker.log_metrics(run_id, values, step=step)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.npz"
        arrays: dict[str, np.ndarray] = {}
        per_class: dict[str, list] = {}
        for name, pred in result.predictions.items():
            arrays[f"{name}.logits"] = pred.logits.astype(np.float32)
            arrays[f"{name}.labels"] = pred.labels
            arrays[f"{name}.indices"] = pred.indices
            num_classes = pred.logits.shape[1]
            per_class[name] = per_class_accuracy(pred, num_classes).tolist()
        np.savez_compressed(path, **arrays)
        tracker.log_artifact(run_id, path)
        tracker.log_dict(run_id, per_class, "per_class_accuracy.json")
    tracker.finish(run_id, "FINISHED")
    return result


def grid_results(
    tracker: Tracker,
    grid: str,
    metric: str = "test_top1",
    unit_ids: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One row per FINISHED unit (its latest FINISHED run): cell, seed, final metrics.

    ``unit_ids`` keeps only those units (a plan's): a store may also hold runs of the same
    cells under other settings, which must not be averaged together.
    """
    keep = None if unit_ids is None else set(unit_ids)
    latest: dict[str, Any] = {}  # a unit counts once, whatever the store holds
    for r in tracker.unit_runs(grid):
        if r.info.status != "FINISHED":
            continue
        unit = r.data.tags.get(TAG_UNIT)
        if keep is not None and unit not in keep:
            continue
        if unit not in latest or r.info.start_time > latest[unit].info.start_time:
            latest[unit] = r
    rows = [
        {
            "cell": r.data.tags.get(TAG_CELL),
            "seed": int(r.data.tags.get(TAG_SEED, -1)),
            **r.data.metrics,
        }
        for r in latest.values()
    ]
    return pd.DataFrame(rows)


def summary_table(
    results: pd.DataFrame,
    cells: Iterable[str],
    metric: str = "test_top1",
    reference: str = "random_init",
) -> pd.DataFrame:
    """mean ± std (N−1) per cell, and whether each cell beats the reference by > its std.

    Where units logged the k-NN accuracy beside ``metric`` (``test_knn_top1`` beside
    ``test_top1``), its mean and std follow as ``knn_mean`` / ``knn_std``; the comparison
    with the reference stays on ``metric``.
    """
    if results.empty or metric not in results:
        return pd.DataFrame()
    g = results.groupby("cell")[metric]
    table = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1)})
    knn = knn_metric(metric)
    if knn and knn in results and results[knn].notna().any():
        k = results.groupby("cell")[knn]
        table["knn_mean"], table["knn_std"] = k.mean(), k.std(ddof=1)
    table["seeds"] = g.count()
    table = table.reindex([c for c in cells if c in table.index])
    if reference in table.index:
        ref_mean, ref_std = table.loc[reference, "mean"], table.loc[reference, "std"]
        margin = np.maximum(table["std"].fillna(0), np.nan_to_num(ref_std))
        table[f"vs_{reference}"] = np.where(
            table.index == reference,
            "",
            np.where(table["mean"] - ref_mean > margin, "better", "NOT better"),
        )
    return table
