"""The grid runner: grid → units (cell × seed) → protocols → MLflow.

A unit is identified by a hash of its protocol and fully resolved config. Rerunning the
same command skips units that already have a FINISHED run in the store and resumes the
rest (pretraining resumes from its last epoch checkpoint). A unit whose loss diverges is
recorded as FAILED with the reason, and the grid goes on.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asma_bench.harness.execute import UnitHeld, metric_text, run_unit, signals_deferred
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
    "auto_jobs",
    "unit_groups",
]


def run_grid(grid: GridSpec, opts: RunOptions, units: list[Unit] | None = None) -> GridOutcome:
    """Run every unfinished unit of ``grid``; returns what ran, what was skipped or failed.

    ``units``: the grid's plan (:func:`plan_units`) when the command has made it already;
    planned here otherwise. With ``opts.storage`` the units go through a shared queue that
    any number of workers serve (see :mod:`asma_bench.harness.queue`). With ``opts.jobs``
    above 1 the units run in that many local processes (:func:`unit_groups`).
    """
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
    try:
        if opts.jobs > 1 and todo:
            _run_parallel(grid, opts, todo, tracker, locks, parent, out, outcome, remote)
        else:
            _run_sequential(grid, opts, todo, tracker, locks, parent, out, outcome, remote)
    except BaseException as exc:  # the grid stops (bad data, a bug, a signal): say so
        try:
            tracker.finish(parent, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        except Exception:  # noqa: BLE001 - the original error matters more
            log.debug("could not close the grid run", exc_info=True)
        raise
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


@dataclass
class Attempt:
    """What one try at a unit came to: ``ran``, ``failed``, ``held`` (another process has
    it) or ``skipped`` (finished meanwhile); its status text, who holds it, its seconds."""

    name: str
    kind: str
    status: str
    who: str = ""
    seconds: float = 0.0


def attempt_unit(
    unit: Unit, tracker: Tracker, locks: str, parent: str, out: Path, metric: str,
    progress: Any = None,
) -> Attempt:  # fmt: skip
    """Run ``unit`` under its lock unless another process holds it or it finished
    meanwhile; a diverged unit is ``failed``, any other error propagates (the grid stops)."""
    start = time.monotonic()

    def done(kind: str, status: str, who: str = "") -> Attempt:
        return Attempt(unit.name, kind, status, who, time.monotonic() - start)

    try:
        with unit_lock(locks, unit.id) as mine:
            if not mine:
                return done("held", f"held by {holder(locks, unit.id)}")
            if unit.id in tracker.finished_units(unit.grid):
                return done("skipped", "finished meanwhile")
            result = run_unit(unit, tracker, parent, out, progress=progress)
        return done("ran", metric_text(result.metrics, metric))
    except UnitHeld as exc:  # a live process on another machine started it first
        return done("held", str(exc), exc.who)
    except DivergenceError as exc:
        log.warning("%s failed: %s", unit.name, exc)
        return done("failed", str(exc))


def _record(outcome: GridOutcome, remote: dict[str, str], done: Attempt) -> str:
    """Count ``done`` in ``outcome``; the status its progress line shows."""
    if done.kind == "ran":
        outcome.ran.append(done.name)
    elif done.kind == "failed":
        outcome.failed[done.name] = done.status
        return "FAILED"
    elif done.kind == "skipped":
        outcome.skipped.append(done.name)
    else:
        outcome.held.append(done.name)
        if done.who:
            remote[done.name] = done.who
    if done.kind in ("held", "skipped"):
        log.info("%s left alone: %s", done.name, done.status)
    return done.status


def _line(grid: str, number: int, total: int, done: Attempt, status: str) -> str:
    """A unit's progress line: ``[3/7] grid cell/seed0: test_top1=79.74 (118 s)``, or
    ``[-] …`` for a unit left alone here (held by a process of this machine, or finished
    meanwhile)."""
    if done.kind in ("held", "skipped") and not done.who:
        return f"[-] {grid} {done.name}: {status}"
    return f"[{number}/{total}] {grid} {done.name}: {status} ({done.seconds:.0f} s)"


def _run_sequential(grid, opts, todo, tracker, locks, parent, out, outcome, remote) -> None:  # noqa: ANN001, PLR0913 - run_grid's state
    from tqdm.auto import tqdm

    bar = tqdm(todo, desc=grid.name, unit="unit", disable=not opts.progress, dynamic_ncols=True)
    try:
        for unit in bar:
            bar.set_description(f"{grid.name} {unit.name}")

            def stage_progress(stage: str, i: int, n: int, _bar: Any = bar) -> None:
                _bar.set_postfix_str(f"{stage} {i}/{n}")

            done = attempt_unit(unit, tracker, locks, parent, out, grid.metric,
                                stage_progress if opts.progress else None)  # fmt: skip
            status = _record(outcome, remote, done)
            if not opts.progress:  # logs and batch jobs: one line per unit instead of a bar
                number = len(outcome.ran) + len(outcome.failed)
                print(_line(grid.name, number, len(todo), done, status), file=sys.stderr,
                      flush=True)  # fmt: skip
    finally:
        bar.close()


#: The most local processes ``--jobs`` starts.
MAX_JOBS = 64
#: Memory a ``--jobs auto`` process is given room for: a ``quick`` unit peaks near
#: 0.7 GiB, a ``paper`` two-encoder pretraining near 6 (docs/performance.md).
AUTO_JOB_MEMORY = 4 * 2**30


def auto_jobs(device: str | None = None, storage: str | None = None) -> int:
    """What ``--jobs auto`` (the command line's default) means here: one process per
    thread torch would use (its cores, or ``OMP_NUM_THREADS``), so that every unit runs
    on one thread, at most one per AUTO_JOB_MEMORY of available memory; one process on a
    GPU (``device`` cuda…) or with a shared queue (``storage``: start more workers
    instead). On two cores that is two processes, which measured fastest there
    (docs/performance.md, "Units in parallel")."""
    import torch

    if storage or (device or "cpu").startswith("cuda"):
        return 1
    jobs = torch.get_num_threads()
    available = _available_memory()
    if available is not None:
        jobs = min(jobs, available // AUTO_JOB_MEMORY)
    return max(1, min(jobs, MAX_JOBS))


def _available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux ``MemAvailable``), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def unit_groups(units: list[Unit]) -> list[list[Unit]]:
    """``units`` in groups that run one after the other in one process: units that share a
    pretraining (one checkpoint: the cells of a protocol grid, a distillation's teacher, a
    three-stream ensemble and its single-stream cells) stay together, in plan order, so it
    is trained once, before the units that need it; a unit without pretraining is a group
    of its own. Groups are listed in the order of their first unit."""
    from asma_bench.protocols.unit_files import unit_pretrainings

    owner: dict[str, int] = {}  # pretraining → the group that trains it
    groups: dict[int, list[Unit]] = {}
    for i, unit in enumerate(units):
        needs = unit_pretrainings(unit.config, unit.protocol)
        joined = sorted({owner[d] for d in needs if d in owner})
        into = joined[0] if joined else i
        merged = groups.setdefault(into, [])
        for other in joined[1:]:  # the unit ties two groups together: one group now
            merged.extend(groups.pop(other))
        merged.append(unit)
        for d, g in list(owner.items()):
            if g in joined:
                owner[d] = into
        for d in needs:
            owner[d] = into
    order = {id(u): i for i, u in enumerate(units)}
    return [sorted(g, key=lambda u: order[id(u)]) for _, g in sorted(groups.items())]


def _start_worker(threads: int, parent: int) -> None:
    """A ``--jobs`` worker: its share of the cores; SIGTERM stops it as Ctrl-C does (the
    unit's run closed KILLED), and so does the end of the process that started it (killed
    outright, it cannot stop its workers itself)."""
    import signal
    import threading

    import torch

    torch.set_num_threads(threads)

    def leave_soon() -> None:  # a stop that a library call swallowed still ends the worker
        time.sleep(STOP_GRACE_SECONDS)
        os._exit(143)

    def stop(signum: int, frame: object) -> None:
        if _STOPPED:  # a second stop must not break the closing of the unit's run
            return
        _STOPPED.append(True)
        threading.Thread(target=leave_soon, name="leave", daemon=True).start()
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, stop)
    # Ctrl-C in a terminal reaches the whole process group: the parent alone answers it,
    # and stops its workers with SIGTERM (one stop each, never two)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)  # its unit's run is closed KILLED, and the
        # worker leaves STOP_GRACE_SECONDS later (no pool will call it again)

    threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()


_TRACKERS: dict[tuple[str, str, str], Tracker] = {}  # in a --jobs worker: its stores, opened once
_STOPPED: list[bool] = []  # in a --jobs worker: a stop came; the groups still queued are skipped
#: Seconds a --jobs worker has, after a stop, to close its unit's run before it exits anyway.
STOP_GRACE_SECONDS = 20.0


def _run_group(
    units: list[Unit], uri: str, experiment: str, out: str, locks: str, parent: str,
    metric: str,
) -> list[Attempt]:  # fmt: skip
    """A ``--jobs`` worker's task: one group of units (:func:`unit_groups`), in order. After
    a stop (Ctrl-C, SIGTERM) the worker starts nothing more: the groups the pool had
    already queued for it return at once."""
    if _STOPPED:
        return []
    key = (uri, experiment, out)  # one store connection per worker, not one per group
    tracker = _TRACKERS.get(key)
    if tracker is None:
        tracker = Tracker(uri, experiment=experiment, artifact_root=Path(out) / "artifacts")
        _TRACKERS[key] = tracker
    try:
        return [attempt_unit(u, tracker, locks, parent, Path(out), metric) for u in units]
    except KeyboardInterrupt:
        _STOPPED.append(True)
        raise


def _run_parallel(grid, opts, todo, tracker, locks, parent, out, outcome, remote) -> None:  # noqa: ANN001, PLR0913 - run_grid's state
    """``--jobs N``: the units' groups in N worker processes that share the cores (each
    takes threads ÷ N, however few groups are left); a line per unit, in plan order; any
    error or signal stops them all, each unit's run closed KILLED or FAILED (by its worker,
    or here once the worker is gone)."""
    import concurrent.futures as cf
    import multiprocessing

    import torch
    from tqdm.auto import tqdm

    groups = unit_groups(todo)
    jobs = min(opts.jobs, len(groups))
    # a unit's share of the cores is set by --jobs, not by how many units are left: a
    # resumed grid trains its last units on the threads its first ones had
    threads = max(1, torch.get_num_threads() // opts.jobs)
    order = {u.name: i for i, u in enumerate(todo)}
    finished: dict[int, tuple[Attempt, str]] = {}
    shown = 0
    bar = tqdm(total=len(todo), desc=f"{grid.name} ({jobs} jobs)", unit="unit",
               disable=not opts.progress, dynamic_ncols=True)  # fmt: skip
    pool = None
    try:
        with signals_deferred():  # a stop while the workers start lands once they are known
            pool = cf.ProcessPoolExecutor(
                jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker, initargs=(threads, os.getpid()),
            )  # fmt: skip
            futures = [
                pool.submit(
                    _run_group,
                    g,
                    tracker.uri,
                    opts.experiment,
                    str(out),
                    locks,
                    parent,
                    grid.metric,
                )  # fmt: skip
                for g in groups
            ]
        for future in cf.as_completed(futures):
            for done in future.result():
                finished[order[done.name]] = (done, _record(outcome, remote, done))
                bar.update(1)
            while shown in finished:  # lines in plan order, as soon as they can be
                done, status = finished[shown]
                if not opts.progress:
                    print(_line(grid.name, shown + 1, len(todo), done, status),
                          file=sys.stderr, flush=True)  # fmt: skip
                shown += 1
    except BaseException:
        _stop_workers(pool)
        for unit in todo:  # what a worker that had to leave at once (its interrupt lost in
            try:  # a library call, or a store busy with the others) left behind: its run,
                # RUNNING, and its lock file; no process of this machine holds the unit now
                with unit_lock(locks, unit.id) as mine:
                    if mine:
                        tracker.close_stale(grid.name, unit.id)
            except Exception:  # noqa: BLE001 - the stop matters more
                log.debug("could not close %s's run", unit.name, exc_info=True)
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)


def _stop_workers(pool: Any, grace: float = 60.0) -> None:  # noqa: ANN401 - a process pool
    """Stop a ``--jobs`` pool after an error or a signal: SIGTERM to every worker (each
    closes its unit's run KILLED), up to ``grace`` seconds for them to do so, SIGKILL to
    any still there, and the queued work cancelled without waiting for it."""
    import multiprocessing

    workers = [p for p in multiprocessing.active_children() if p.name != "resource_tracker"]
    for process in workers:
        process.terminate()
    if pool is not None:  # a worker back from its stopped task reads "exit" at once,
        # instead of waiting for more work until its own STOP_GRACE_SECONDS run out
        pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(5)


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
