"""``asma-bench run``: plan every grid (or suite) on every dataset, check it, then train its
unfinished units; ``--dry-run`` prints the plan and ``--estimate`` its cost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from asma_bench.commands.app import (
    app,
    check_device_flag,
    interactive,
    print_table,
    renamed,
    set_layers,
)
from asma_bench.errors import ConfigError


def parse_jobs(jobs: str, device: str | None = None, storage: str | None = None) -> int:
    """``--jobs``: ``auto`` (:func:`~asma_bench.harness.runner.auto_jobs`) or a number of
    processes, 1 to MAX_JOBS; more than one beside a shared queue is refused (start that
    many workers on it instead)."""
    from asma_bench.harness.runner import MAX_JOBS, auto_jobs

    if jobs.strip().lower() == "auto":
        return auto_jobs(device, storage)
    try:
        n = int(jobs)
    except ValueError:
        raise ConfigError(
            f"--jobs {jobs!r} (or ASMA_BENCH_JOBS): give a number of processes or auto"
        ) from None
    if not 1 <= n <= MAX_JOBS:
        raise ConfigError(f"--jobs {n}: give 1 to {MAX_JOBS} processes")
    if n > 1 and storage:
        raise ConfigError(f"--jobs {n} with --storage: start {n} workers on the queue "
                          "instead (each `asma-bench run ... --storage URL`)")  # fmt: skip
    return n


def parse_seeds(seeds: str, seed_list: str | None = None) -> list[int]:
    """The run's seeds: ``--seeds`` a count N (seeds 0..N-1, at most MAX_SEEDS) or
    comma-separated seeds (``0,2,5``); ``--seed-list`` the seeds as a list however many
    (``7`` is seed 7), which overrides ``--seeds``. Each in 0..MAX_SEED, none twice."""
    from asma_bench.harness.limits import MAX_SEEDS, check_seeds

    option, text = "--seeds", seeds.strip()
    if seed_list is not None:  # it overrides --seeds, as it always has
        option, text = "--seed-list", seed_list.strip() + ","
    if "," not in text:
        try:
            count = int(text)
        except ValueError:
            raise ConfigError(f"--seeds {text[:60]!r} must be a count N or comma-separated "
                              "seeds, e.g. 0,2,5") from None  # fmt: skip
        if count < 1:
            raise ConfigError(f"--seeds must be >= 1, got {count}")
        if count > MAX_SEEDS:
            raise ConfigError(f"--seeds {count}: at most {MAX_SEEDS} seeds per run")
        return list(range(count))
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(
            f"{option} {text.rstrip(',')[:60]!r} must be comma-separated integers"
        ) from None
    if not values:
        raise ConfigError(f"{option} must name at least one seed")
    return check_seeds(values, option)


@app.command("run")
def run(
    grid: Annotated[str, typer.Option(help="Grid name (see `asma-bench grids`) or YAML file.")],
    profile: Annotated[str, typer.Option(help="smoke | quick | paper | a YAML file.")] = "quick",
    data: Annotated[
        Optional[list[str]],  # noqa: UP045 - typer cannot parse "list[str] | None"
        typer.Option(
            help="'synthetic' (default) or a canonical dataset folder; repeat it to run the "
            "grid on several datasets (the report then analyses them together)."
        ),
    ] = None,
    seeds: Annotated[
        str, typer.Option(help="A count N (seeds 0..N-1) or the seeds, e.g. 0,2,5.")
    ] = "3",
    seed_list: Annotated[
        str | None,
        typer.Option(
            help="The seeds as a list, even one: 7 is seed 7 (--seeds 7: 0..6); overrides --seeds."
        ),
    ] = None,
    runs: Annotated[Path, typer.Option(help="The runs folder (store, checkpoints, data).")] = Path(
        "runs"
    ),
    old_out: Annotated[Path | None, typer.Option("--out", hidden=True)] = None,  # old --runs
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N")] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: SQLite in --runs).")
    ] = None,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045 - typer cannot parse "list[str] | None"
        typer.Option("--set", help="Config override key.sub=value (repeatable)."),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bars (default: on a terminal)."),
    ] = None,
    jobs: Annotated[
        str,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N|auto",
            envvar="ASMA_BENCH_JOBS",
            help="Units in this many local processes that share the cores (each takes "
            "threads ÷ N); units that share a pretraining run in one of them, in order. "
            "auto: one per core, so each unit runs on one thread (at most one per 4 GiB "
            "of free memory; 1 on a GPU or with --storage).",
        ),
    ] = "auto",
    storage: Annotated[
        str | None,
        typer.Option(
            help="Shared Optuna storage URL (e.g. postgresql://…): units become a "
            "queue that any number of workers running this command share."
        ),
    ] = None,
    worker: Annotated[
        bool,
        typer.Option(
            help="With --storage: exit when no unit is waiting, without "
            "waiting for other workers' units or printing the table."
        ),
    ] = False,
    heartbeat: Annotated[
        int,
        typer.Option(
            help="With --storage: heartbeat seconds; a unit whose worker is "
            "silent for twice this goes back in the queue."
        ),
    ] = 60,
    experiment: Annotated[
        str, typer.Option(help="MLflow experiment the runs are logged to.")
    ] = "asma-bench",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the units and what sets them apart, and what the run will cost; "
            "train nothing.",
        ),
    ] = False,
    estimate: Annotated[
        bool,
        typer.Option(
            help="With --dry-run: measure the cost (one unit of each kind trained for 2 "
            "epochs per stage on this machine, then extrapolated)."
        ),
    ] = True,
) -> None:
    """Run every (cell, seed) of a grid, or of every grid of a suite (`--grid paper`: the
    whole evaluation, pretrainings shared between grids), that is not finished yet,
    logging to MLflow."""
    from asma_bench.harness.grids import load_grid
    from asma_bench.harness.runner import RunOptions, plan_units, profile_conflicts
    from asma_bench.harness.suites import find_suite

    out = renamed("run", "--runs", runs, "--out", old_out, Path("runs"))
    run_seeds = parse_seeds(seeds, seed_list)
    check_device_flag(device)
    layers = set_layers(set_, "--seeds N or --seeds 0,1,2")  # each --set parsed once
    if worker and not storage:
        raise ConfigError("--worker needs --storage (the shared queue to take units from)")
    processes = parse_jobs(jobs, device, storage)
    suite = find_suite(grid)
    specs = suite.load_grids() if suite else [load_grid(grid)]
    for spec in specs:
        overruled = profile_conflicts(spec, profile)
        if overruled:  # the documented order: a cell's own settings win over the profile's
            typer.echo(
                f"note: grid {spec.name}'s cells set {', '.join(overruled)} themselves; the "
                f"cells' values are used, not profile {profile}'s",
                err=True,
            )
    if device and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    sources = list(dict.fromkeys(data or [None]))  # one grid run per dataset, in order
    runs_of = [
        RunOptions(
            profile=profile,
            seeds=run_seeds,
            out=out,
            data=source,
            device=device,
            tracking_uri=tracking_uri,
            overrides=layers,
            progress=interactive() if progress is None else progress,
            storage=storage,
            worker=worker,
            heartbeat=heartbeat,
            jobs=processes,
            experiment=experiment,
        )
        for source in sources
    ]
    # every grid on every dataset is planned (and checked) before anything trains
    jobs = [(spec, opts, plan_units(spec, opts)) for spec in specs for opts in runs_of]
    if dry_run:
        if suite is None:
            for spec, opts, plan in jobs:
                if len(runs_of) > 1:
                    typer.echo(f"data {opts.data or 'synthetic'}:")
                _print_plan(spec.name, plan)
        if estimate:
            _print_cost(suite.name if suite else specs[0].name, jobs, len(runs_of) > 1, out,
                        tracking_uri, experiment, itemize=suite is not None)  # fmt: skip
        elif suite is not None:
            _print_suite_plan(suite.name, jobs, len(runs_of) > 1)
        return
    failed = False
    outcomes = []
    for spec, opts, plan in jobs:
        if len(jobs) > 1:
            where = f" on {opts.data or 'synthetic'}" if len(runs_of) > 1 else ""
            typer.echo(f"grid {spec.name}{where}:")
        outcome, ok = _run_planned(spec, opts, plan, worker, experiment)
        outcomes.append(outcome)
        failed = failed or not ok
    if suite is not None:
        ran = sum(len(o.ran) for o in outcomes)
        done = sum(len(o.skipped) for o in outcomes)
        bad = sum(len(o.failed) + len(o.held) for o in outcomes)
        typer.echo(
            f"suite {suite.name}: {len(jobs)} grid runs, {ran} units run, {done} already "
            f"finished, {bad} failed or unfinished ({sum(o.seconds for o in outcomes):.0f} s); "
            f"`asma-bench report --grid {grid} --runs {out}` writes every grid's tables"
        )
    if failed:
        raise typer.Exit(1)


def _run_planned(spec, opts, plan, worker: bool, experiment: str):  # noqa: ANN001, ANN202
    """Run one planned grid and print its outcome and table; (outcome, nothing failed)."""
    from asma_bench.harness.runner import grid_results, run_grid, summary_table
    from asma_bench.harness.tracking import Tracker
    from asma_bench.training.metrics import knn_metric

    outcome = run_grid(spec, opts, plan)
    held = f", {len(outcome.held)} held by other processes" if outcome.held else ""
    typer.echo(
        f"grid {spec.name}: {len(outcome.ran)} units run, {len(outcome.skipped)} already "
        f"finished{held}, {len(outcome.failed)} failed ({outcome.seconds:.0f} s)"
    )
    for name, reason in outcome.failed.items():
        typer.echo(f"  FAILED {name}: {reason}")
    for name in outcome.held:
        typer.echo(f"  NOT FINISHED {name}: rerun this command once it is done")
    ok = not outcome.failed and not outcome.held
    if worker:
        return outcome, ok
    tracker = Tracker(outcome.tracking_uri, experiment=experiment)
    results = grid_results(tracker, spec.name, unit_ids=[u.id for u in plan])
    cells = [c.name for c in spec.all_cells()]
    table = summary_table(results, cells, spec.metric)
    if not table.empty:
        knn = f"; knn_*: {knn_metric(spec.metric)}" if "knn_mean" in table else ""
        print_table(f"{spec.name}: {spec.metric} (%), mean and std over seeds{knn}", table)
        if "vs_random_init" in table:
            typer.echo(
                "vs_random_init: 'better' when a cell's mean exceeds random_init's by more "
                "than the larger of the two seed stds (a screen, not a test); "
                f"`asma-bench report --grid {spec.name}` tests each cell against the "
                f"grid's baseline ({spec.baseline or 'none set'})."
            )
    typer.echo(
        f"\nMLflow store: {outcome.tracking_uri}  (browse: mlflow ui --backend-store-uri "
        f"{outcome.tracking_uri})"
    )
    return outcome, ok


def _job_label(spec, opts, multi: bool) -> str:  # noqa: ANN001
    return f"{spec.name} on {opts.data or 'synthetic'}" if multi else spec.name


def _print_suite_plan(name: str, jobs: list, multi: bool) -> None:
    import pandas as pd

    from asma_bench.harness.cost import pretrain_digests

    seen: set[str] = set()
    rows = []
    for spec, opts, plan in jobs:
        digests = {d for u in plan for d in pretrain_digests(u)}
        rows.append({"grid": _job_label(spec, opts, multi), "units": len(plan),
                     "pretrainings": len(digests), "shared": len(digests & seen)})  # fmt: skip
        seen |= digests
    print_table(f"{name}: {sum(r['units'] for r in rows)} units, {len(seen)} distinct "
                 "pretrainings (dry run: nothing trained)",
                 pd.DataFrame(rows).set_index("grid"))  # fmt: skip


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("s" if n != 1 else "")


def _threads(n: int) -> str:
    return _count(n, "thread")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _print_cost(name, jobs, multi, out, tracking_uri, experiment, itemize) -> None:  # noqa: ANN001
    """What the planned jobs will cost on this machine (see :mod:`asma_bench.harness.cost`)."""
    import pandas as pd
    import torch

    from asma_bench.harness.cost import PROBE_EPOCHS, estimate
    from asma_bench.harness.tracking import Tracker, default_tracking_uri, sqlite_path

    uri = tracking_uri or default_tracking_uri(Path(out))
    finished = lambda _g: ()  # noqa: E731 - no store yet: nothing finished
    db = sqlite_path(uri)
    if (db is not None and db.is_file()) or (db is None and tracking_uri):
        tracker = Tracker(uri, experiment=experiment)
        finished = lambda g: tracker.finished_units(g)  # noqa: E731

    def told(i: int, n: int, unit) -> None:  # noqa: ANN001
        if i == 0:
            typer.echo(f"measuring what the units cost: one unit of each of {n} kinds, "
                       f"{PROBE_EPOCHS} epochs per training stage…", err=True)  # fmt: skip
        typer.echo(f"  [{i + 1}/{n}] {unit.grid} {unit.name} ({unit.protocol})", err=True)

    labelled = [(_job_label(spec, opts, multi), plan) for spec, opts, plan in jobs]
    grids_of = {_job_label(s, o, multi): s.name for s, o, _ in jobs}
    cost = estimate(
        [(label, plan) for label, plan in labelled],
        finished=lambda label: finished(grids_of[label]),
        runs=Path(out) if Path(out).is_dir() else None,
        on_probe=told,
    )
    rows = [
        {"grid": g.grid, "units": g.units, "to run": g.to_run, "pretrainings": g.pretrainings,
         "shared": g.shared, "estimate": _duration(g.seconds)}
        for g in cost.grids
    ]  # fmt: skip
    units = sum(g.units for g in cost.grids)
    todo = sum(g.to_run for g in cost.grids)
    if itemize:
        rows.append({"grid": "total", "units": units, "to run": todo,
                     "pretrainings": cost.pretrainings,
                     "shared": sum(g.shared for g in cost.grids),
                     "estimate": _duration(cost.seconds)})  # fmt: skip
        print_table(f"{name}: {len(jobs)} grid runs (dry run: nothing trained)",
                     pd.DataFrame(rows).set_index("grid"))  # fmt: skip
    typer.echo(
        f"{name}: {todo} of {units} units to run, "
        f"{_count(cost.pretrainings_needed, 'pretraining')} to train ({cost.pretrainings} "
        "needed; one checkpoint serves every unit and grid that needs it); estimated "
        f"{_duration(cost.seconds)} of wall time at "
        f"{_threads(torch.get_num_threads())} on this machine"
    )
    typer.echo(
        f"estimate: one unit of each of {cost.kinds} kinds run here with every training loop "
        f"cut to {PROBE_EPOCHS} epochs ({_duration(cost.probe_seconds)}), the other epochs "
        "added at each stage's measured pace; 'shared': pretrainings an earlier grid or the "
        "runs folder provides"
    )
    for unit, why in cost.failures.items():
        typer.echo(f"  not measured: {unit}: {why}")


def _print_plan(grid: str, units: list) -> None:
    """The units a run would train: name, id, protocol and the settings that differ."""
    import pandas as pd

    flat = [u.config.flat() for u in units]
    keys = sorted({k for f in flat for k in f})
    varying = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1 and k != "seed"]
    rows = [
        {"unit": u.name, "id": u.id, "protocol": u.protocol,
         **{k: f.get(k) for k in varying}}
        for u, f in zip(units, flat, strict=True)
    ]  # fmt: skip
    print_table(f"{grid}: {len(units)} units (dry run: nothing trained)",
                 pd.DataFrame(rows).set_index("unit"))  # fmt: skip
    typer.echo("every other setting is shared; `--set key=value` changes it for all units")
