"""The grid runner: grid → units (cell × seed) → protocols → MLflow.

A unit is identified by a hash of its protocol and fully resolved config. Rerunning the
same command skips units that already have a FINISHED run in the store and resumes the
rest (pretraining resumes from its last epoch checkpoint). A unit whose loss diverges is
recorded as FAILED with the reason, and the grid goes on.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from asma_bench.harness.execute import UnitHeld, metric_text, run_unit
from asma_bench.harness.grids import GridSpec
from asma_bench.harness.locks import holder, lock_root, unit_lock
from asma_bench.harness.plan import (
    GridOutcome,
    RunOptions,
    Unit,
    ensure_writable,
    open_grid_run,
    plan_units,
    prepare_synthetic,
    profile_conflicts,
    settle,
)
from asma_bench.harness.queue import run_grid_queued
from asma_bench.harness.tracking import (
    TAG_CELL,
    TAG_SEED,
    TAG_UNIT,
    Tracker,
    default_tracking_uri,
)
from asma_bench.training.loop import DivergenceError
from asma_bench.training.metrics import knn_metric

log = logging.getLogger(__name__)

__all__ = [
    "GridOutcome",
    "RunOptions",
    "Unit",
    "ensure_writable",
    "grid_results",
    "open_grid_run",
    "plan_units",
    "prepare_synthetic",
    "profile_conflicts",
    "settle",
    "run_grid",
    "run_unit",
    "summary_table",
]


def run_grid(grid: GridSpec, opts: RunOptions, units: list[Unit] | None = None) -> GridOutcome:
    """Run every unfinished unit of ``grid``; returns what ran, what was skipped or failed.

    ``units``: the grid's plan (:func:`plan_units`) when the command has made it already;
    planned here otherwise. With ``opts.storage`` the units go through a shared queue that
    any number of workers serve (see :mod:`asma_bench.harness.queue`).
    """
    from tqdm.auto import tqdm

    if opts.storage:
        return run_grid_queued(grid, opts, units)
    if units is None:  # a bad grid or config fails before anything is created
        units = plan_units(grid, opts)
    out = ensure_writable(opts.out)
    uri = opts.tracking_uri or default_tracking_uri(out)
    tracker = Tracker(uri, experiment=opts.experiment, artifact_root=out / "artifacts")
    locks = lock_root(uri, out)  # the store's locks: every process logging to it shares them
    parent = open_grid_run(tracker, grid, opts)
    done = tracker.finished_units(grid.name)
    outcome = GridOutcome(grid.name, tracking_uri=uri)
    todo = [u for u in units if u.id not in done]
    outcome.skipped = [u.name for u in units if u.id in done]
    prepare_synthetic(todo, out / "data", grid.name)
    start = time.monotonic()
    remote: dict[str, str] = {}  # units a process on another machine holds: who
    bar = tqdm(todo, desc=grid.name, unit="unit", disable=not opts.progress, dynamic_ncols=True)
    for unit in bar:
        bar.set_description(f"{grid.name} {unit.name}")

        def stage_progress(stage: str, i: int, n: int, _bar: Any = bar) -> None:
            _bar.set_postfix_str(f"{stage} {i}/{n}")

        unit_start = time.monotonic()
        try:
            with unit_lock(locks, unit.id) as mine:
                if not mine or unit.id in tracker.finished_units(grid.name):
                    why = f"held by {holder(locks, unit.id)}" if not mine else "finished meanwhile"
                    (outcome.held if not mine else outcome.skipped).append(unit.name)
                    log.info("%s left alone: %s", unit.name, why)
                    if not opts.progress:
                        print(f"[-] {grid.name} {unit.name}: {why}", file=sys.stderr, flush=True)
                    continue
                result = run_unit(
                    unit, tracker, parent, out, progress=stage_progress if opts.progress else None
                )
            outcome.ran.append(unit.name)
            status = metric_text(result.metrics, grid.metric)
        except UnitHeld as exc:  # a live process on another machine started it first
            outcome.held.append(unit.name)
            remote[unit.name] = exc.who
            log.info("%s left alone: %s", unit.name, exc)
            status = str(exc)
        except DivergenceError as exc:
            outcome.failed[unit.name] = str(exc)
            log.warning("%s failed: %s", unit.name, exc)
            status = "FAILED"
        except BaseException as exc:  # the grid stops (bad data, a bug, a signal): say so
            bar.close()
            try:
                tracker.finish(parent, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
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
    finished = tracker.finished_units(grid.name)
    by_name = {u.name: u for u in units}
    done_meanwhile = [n for n in outcome.held if by_name[n].id in finished]
    outcome.skipped += done_meanwhile  # the other process finished them while we worked
    outcome.held = [
        f"{n} ({remote.get(n) or holder(locks, by_name[n].id)})"
        for n in outcome.held
        if n not in done_meanwhile
    ]
    try:
        log_grid_summary(tracker, parent, grid, units)
    except Exception as exc:  # noqa: BLE001 - the units' own runs hold the results
        log.warning("grid %s: the summary on its parent run was not logged: %s", grid.name, exc)
    if not finished.keys() >= {u.id for u in units}:
        log.info("grid %s has unfinished units", grid.name)
    else:
        tracker.finish(parent)
    outcome.seconds = time.monotonic() - start
    return outcome


def log_grid_summary(
    tracker: Tracker, parent: str, grid: GridSpec, units: list[Unit]
) -> dict[str, float]:
    """Log on the grid's parent run, per cell, the mean and std (N−1) over seeds of the
    grid's main metric and its number of seeds, from the finished units of ``units``:
    ``<cell>.<metric>_mean``, ``<cell>.<metric>_std`` (none for one seed) and
    ``<cell>.<metric>_seeds``. Returns what was logged."""
    results = grid_results(tracker, grid.name, grid.metric, unit_ids=[u.id for u in units])
    cells = list(dict.fromkeys(u.cell.name for u in units))
    table = summary_table(results, cells, grid.metric)
    metrics: dict[str, float] = {}
    for cell, row in table.iterrows():
        for stat in ("mean", "std", "seeds"):
            metrics[f"{cell}.{grid.metric}_{stat}"] = float(row[stat])
    metrics = {k: v for k, v in metrics.items() if np.isfinite(v)}
    if metrics:
        tracker.log_metrics(parent, metrics)
    return metrics


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
