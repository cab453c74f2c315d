"""The ``asma-bench`` command line.

User errors (bad files, bad parameters) print one line and exit non-zero; ``--debug`` shows
the traceback. Library code logs; only this module prints.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from asma_bench.commands.app import (
    _ABORT,
    _CLICK_ERROR,
    _EXIT,
    _NO_ARGS_HELP,
    _USAGE_ERROR,
    LateHelp,
    _check_device,
    _interactive,
    _print_table,
    _state,
    app,
    data_app,
    print_listing,
    renamed,
    say_notes,
    set_layers,
)
from asma_bench.errors import AsmaBenchError, ConfigError


def _presets_help() -> str:
    """The synthetic presets, as ``--preset`` accepts them (the registry's names)."""
    from asma_bench.data.synthetic import SYNTH_PRESETS

    return " | ".join(SYNTH_PRESETS)


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Output dataset folder.")] = Path("data/synthetic"),
    preset: Annotated[str, typer.Option(help=LateHelp(lambda: _presets_help()))] = "default",
    seed: Annotated[
        int | None, typer.Option(min=0, help="Generator seed (preset's if unset).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
    layout: Annotated[
        str | None,
        typer.Option(
            help="Write the clips on another skeleton: kinect20, coco17 or a layout .yaml "
            "(default: ntu25)."
        ),
    ] = None,
) -> None:
    """Generate the embedded synthetic NTU-25 action dataset (or the same motions on
    another skeleton layout)."""
    from asma_bench.data.store import SkeletonDataset
    from asma_bench.data.synthetic import generate

    out = out.expanduser()  # '~' quoted past the shell is still the home folder
    path = generate(
        out, preset, seed=seed, overwrite=overwrite, progress=_interactive(), layout=layout
    )
    ds = SkeletonDataset(path)
    typer.echo(
        f"wrote {len(ds)} samples, {ds.num_classes} classes, splits "
        f"{', '.join(ds.split_names)} to {path}"
    )


@data_app.command("convert")
def data_convert(
    source: Annotated[Path, typer.Argument(help="File or folder in a known dataset format.")],
    out: Annotated[Path, typer.Argument(help="Output dataset folder (canonical format).")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="auto | ntu-raw | ssl-npy | ctrgcn-npz | pyskl | pku | ucla | generic"
        ),
    ] = "auto",
    layout: Annotated[
        str | None,
        typer.Option(
            help="Skeleton layout of generic data: ntu25, kinect_v2, kinect20, coco17 or a "
            "layout .yaml file."
        ),
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="Label file/folder (PKU-MMD).")] = None,
    missing: Annotated[
        Path | None,
        typer.Option(help="List of sample names to skip (NTU's missing-skeleton list)."),
    ] = None,
    split_file: Annotated[
        Path | None, typer.Option(help="Official split file (PKU-MMD cross-subject).")
    ] = None,
    whole_file: Annotated[
        bool, typer.Option(help="PKU-MMD without label files: one sample per video.")
    ] = False,
    skip_bad: Annotated[
        bool, typer.Option(help="Skip bad samples and list them in skipped.csv.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
) -> None:
    """Convert NTU / PKU-MMD / NW-UCLA data, or any skeleton in the generic format, into
    the canonical format."""
    from asma_bench.data.readers import convert
    from asma_bench.data.store import INFO_FILE, SkeletonDataset

    source, out = source.expanduser(), out.expanduser()
    options: dict = {"whole_file": True} if whole_file else {}
    if skip_bad:
        options["skip_bad"] = True
    if layout is not None:
        options["layout"] = layout
    path = convert(
        source,
        out,
        fmt,
        labels=labels,
        missing=missing,
        split_file=split_file,
        overwrite=overwrite,
        progress=_interactive(),
        **options,
    )
    # a folder of several benchmarks (ssl-npy xsub/ + xview/) becomes one dataset each
    folders = (
        [path]
        if (path / INFO_FILE).is_file()
        else sorted(p.parent for p in path.glob(f"*/{INFO_FILE}"))
    )
    for folder in folders:
        ds = SkeletonDataset(folder)
        typer.echo(
            f"wrote {len(ds)} samples ({ds.info['source']}), array "
            f"{tuple(ds.data.shape)}, splits {', '.join(ds.split_names) or '(none)'} "
            f"to {folder}"
        )
        if ds.info.get("skipped"):
            import pandas as pd

            from asma_bench.data.store import SKIPPED_FILE

            skipped = pd.read_csv(folder / SKIPPED_FILE)
            typer.echo(f"skipped {len(skipped)} bad samples (listed in {folder / SKIPPED_FILE}):")
            for reason in skipped["reason"]:
                typer.echo(f"  {reason}")


@data_app.command("info")
def data_info(
    path: Annotated[Path, typer.Argument(help="Canonical dataset folder.")],
    max_samples: Annotated[
        int, typer.Option(min=1, help="Samples used for motion statistics.")
    ] = 2000,
    check: Annotated[
        bool, typer.Option("--check", help="Check every sample; exit 1 listing bad ones.")
    ] = False,
) -> None:
    """Counts per split and class, frame lengths, per-joint motion by degree."""
    from asma_bench.data.info import check_samples, summarize
    from asma_bench.data.store import SkeletonDataset

    ds = SkeletonDataset(path, check_meta=not check)
    if check:
        problems = check_samples(ds)
        if len(problems):
            _print_table(
                f"{len(problems)} problems in {problems['index'].nunique()} of {len(ds)} samples",
                problems.set_index("index"),
            )
            raise typer.Exit(1)
        typer.echo(f"{path}: all {len(ds)} samples pass the checks")
        return
    s = summarize(ds, max_motion_samples=max_samples)
    typer.echo(
        f"{path}: {len(ds)} samples, {ds.num_classes} classes, layout {ds.layout.name}, "
        f"array {tuple(ds.data.shape)} float32, source {ds.info.get('source')}"
    )
    if len(s["splits"]):
        _print_table("splits", s["splits"].set_index(["split", "part"]))
    _print_table("samples per class", s["classes"])
    _print_table("valid frames", s["lengths"])
    _print_table(
        f"mean joint displacement per frame by degree ({s['motion_samples']} samples)",
        s["motion_degree"],
    )


# --------------------------------------------------------------------------- runs
def _seeds(seeds: str, seed_list: str | None = None) -> list[int]:
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
    run_seeds = _seeds(seeds, seed_list)
    _check_device(device)
    layers = set_layers(set_, "--seeds N or --seeds 0,1,2")  # each --set parsed once
    if worker and not storage:
        raise ConfigError("--worker needs --storage (the shared queue to take units from)")
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
            progress=_interactive() if progress is None else progress,
            storage=storage,
            worker=worker,
            heartbeat=heartbeat,
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
        _print_table(f"{spec.name}: {spec.metric} (%), mean and std over seeds{knn}", table)
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
    _print_table(f"{name}: {sum(r['units'] for r in rows)} units, {len(seen)} distinct "
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
        _print_table(f"{name}: {len(jobs)} grid runs (dry run: nothing trained)",
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


@app.command("grids")
def grids() -> None:
    """List the named grids: cells (reference rows included), protocol, the paper's table,
    and the whole description."""
    from asma_bench.harness.grids import list_grids, load_grid
    from asma_bench.harness.suites import find_suite, list_suites

    specs = [load_grid(name) for name in list_grids()]
    rows = [(s.name, str(len(s.all_cells())), s.protocol, s.table) for s in specs]
    print_listing(("grid", "cells", "protocol", "paper"), rows, [s.description for s in specs])
    suites = [s for s in map(find_suite, list_suites()) if s is not None]
    if suites:
        typer.echo("")
        print_listing(
            ("suite", "grids"),
            [(s.name, str(len(s.grids))) for s in suites],
            [f"{s.description} Grids: {', '.join(s.grids)}." for s in suites],
        )


def _profile_summary(name: str) -> str:
    """The first comment line of a built-in profile's YAML (its one-line description)."""
    from importlib import resources

    path = resources.files("asma_bench") / "profiles" / f"{name}.yaml"
    for raw in path.read_text(encoding="utf-8").splitlines():
        text = raw.strip()
        if text.startswith("#"):
            return text.lstrip("# ").rstrip()
        if text:
            break
    return ""


@app.command("profiles")
def profiles() -> None:
    """List the configuration profiles, each with its one-line description."""
    from asma_bench.config import list_profiles

    names = list_profiles()
    width = max(len(n) for n in names)
    typer.echo(f"{'profile'.ljust(width)}  description")
    for name in names:
        typer.echo(f"{name.ljust(width)}  {_profile_summary(name)}")


@app.command("maskings")
def maskings(
    diagnose: Annotated[
        bool, typer.Option(help="Measure what every strategy masks on real, augmented clips.")
    ] = False,
    data: Annotated[str, typer.Option(help="'synthetic' or a dataset folder.")] = "synthetic",
    profile: Annotated[str, typer.Option(help="Profile for frames, n and k.")] = "quick",
    draws: Annotated[int, typer.Option(min=1, help="Masks drawn per strategy.")] = 10_000,
    out: Annotated[
        Path | None, typer.Option(help="Write the tables (Markdown, CSV) into this folder.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Config override, e.g. data.frames=50.")
    ] = None,
) -> None:
    """List the registered masking strategies and named pairings; with --diagnose, measure
    each strategy's masks (per-joint share, mean degree, motion percentile, wasted cells,
    overlap)."""
    if diagnose:
        _diagnose_maskings(data, profile, draws, out, set_ or [])
        return
    from asma_bench.strategies import create_masking, create_pairing, list_maskings, list_pairings

    typer.echo("masking strategies:")
    for name in list_maskings():
        s = create_masking(name)
        typer.echo(f"  {name:15s} {s.kind:15s} {s.params}")
    typer.echo("pairings:")
    for name in list_pairings():
        p = create_pairing(name)
        typer.echo(f"  {name:15s} {p.spatial} + {p.temporal}")


def _diagnose_maskings(
    data: str, profile: str, draws: int, out: Path | None, sets: list[str]
) -> None:
    import contextlib
    import tempfile

    from asma_bench.config import build_config
    from asma_bench.data.transforms import Augment
    from asma_bench.harness.limits import check_sources
    from asma_bench.strategies.diagnose import diagnose, strategies_for, to_markdown
    from asma_bench.training.data import prepare_data, resolve_splits

    cfg = build_config(profile, [{"data": {"source": data}}, *sets])
    check_sources(cfg)  # a '~user' this machine lacks: one line, not a RuntimeError
    cfg = resolve_splits(cfg)
    with contextlib.ExitStack() as stack:
        # synthetic data is generated under --out's data/ (kept for the next call), or in a
        # temporary folder without --out: never in the folder the command was started in
        if out is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="asma-bench-")))
        else:
            root = out
        prepared = prepare_data(cfg.data, cfg.seed, root / "data")
        layout = prepared.layout
        strategies = strategies_for(layout, cfg.masking.n, cfg.masking.k)
        train_x = prepared.train.x
        result = diagnose(train_x, layout, strategies, draws, augment=Augment(layout))
    text = to_markdown(result)
    typer.echo(text)
    typer.echo("mean Jaccard overlap of masks on the same clips")
    typer.echo(result.overlap.to_string(float_format=lambda v: f"{v:.2f}"))
    if out is not None:
        from asma_bench.fileio import atomic_write_text
        from asma_bench.reports.build import write_masking_diagnostics

        write_masking_diagnostics(result, strategies, train_x, layout, out, out)
        atomic_write_text(out / "maskings_overlap.csv", result.overlap.to_csv())
        typer.echo(f"wrote tables (maskings.md, .csv) and figures (maskings_joints, "
                   f"maskings_motion: .png, .svg) to {out}")  # fmt: skip


@app.command("models")
def models(
    layout: Annotated[
        str, typer.Option(help="ntu25 | kinect_v2 | kinect20 | coco17 | a layout .yaml file")
    ] = "ntu25",
    frames: Annotated[int, typer.Option(min=4, help="Clip length for FLOPs.")] = 50,
    bodies: Annotated[int, typer.Option(min=1, help="Bodies per clip for FLOPs.")] = 2,
) -> None:
    """Every registered backbone with its parameter count and forward FLOPs (one clip)."""
    import pandas as pd
    import torch

    from asma_bench.backbones import count_flops, count_parameters, create_backbone, list_backbones
    from asma_bench.data.layouts import get_layout

    lay = get_layout(layout)
    rows = []
    for name in list_backbones():
        model = create_backbone(name, layout=lay, in_channels=3).eval()
        x = torch.zeros(1, 3, frames, lay.num_joints, bodies)
        rows.append(
            {
                "backbone": name,
                "params (M)": count_parameters(model) / 1e6,
                "GFLOPs / clip": count_flops(model, x) / 1e9,
                "out_dim": model.out_dim,
            }
        )
    _print_table(
        f"backbones on {layout}, {frames} frames, {bodies} bodies (FLOPs: 2 per MAC, "
        "torch.utils.flop_counter)",
        pd.DataFrame(rows).set_index("backbone"),
    )


# --------------------------------------------------------------------------- entry
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
    _print_table(f"{grid}: {len(units)} units (dry run: nothing trained)",
                 pd.DataFrame(rows).set_index("unit"))  # fmt: skip
    typer.echo("every other setting is shared; `--set key=value` changes it for all units")


GLOBAL_FLAGS = ("--debug", "--verbose", "-v")


def _global_flags_first(args: list[str]) -> list[str]:
    """``--debug`` and ``-v`` where users put them (``asma-bench run … --debug``): moved
    before the command, where click expects them. Values of options are never taken for
    flags: only whole arguments before a ``--`` separator count."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in GLOBAL_FLAGS]
    rest = [a for i, a in enumerate(args) if i >= end or a not in GLOBAL_FLAGS]
    return flags + rest


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, ``kill``): raised in the main thread so that
    the unit and grid runs are closed as KILLED and temporary files removed, exactly as
    for Ctrl-C."""


_STOPPED_BY: list[int] = []  # the signals that stopped this command (typer hides them)


def _on_signal(signum: int, frame: object) -> None:
    import signal

    _STOPPED_BY.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _interrupted() -> int:
    """One line for a stopped command; the shell's code for the signal (130, 143)."""
    import signal

    if _STOPPED_BY and _STOPPED_BY[-1] == signal.SIGTERM:
        typer.echo("terminated (SIGTERM); a rerun of the command resumes", err=True)
        return 143
    typer.echo("interrupted; a rerun of the command resumes", err=True)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code.

    SIGINT and SIGTERM stop a command in one line (``interrupted`` / ``terminated``) with
    exit code 130 / 143, after the runs it had open are closed as KILLED."""
    import signal
    import threading

    args = _global_flags_first(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    previous = {}
    _STOPPED_BY.clear()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) is not signal.SIG_IGN:  # (nohup, a shell's `&`)
                previous[signum] = signal.signal(signum, _on_signal)
    try:
        with _deprecations_as_notes():
            code = _main(args, debug)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return _interrupted() if _STOPPED_BY else code


@contextlib.contextmanager
def _deprecations_as_notes():
    """A moved configuration key (``pretrain.pairing`` …) is said once, as one line at the
    command's end with its new form, like a renamed flag; other warnings are left alone."""
    import warnings

    from asma_bench.config import ConfigDeprecation

    with warnings.catch_warnings():
        warnings.simplefilter("always", ConfigDeprecation)
        shown = warnings.showwarning

        def show(message, category, *rest, **kwargs):  # noqa: ANN001, ANN202 - warnings' hook
            if issubclass(category, ConfigDeprecation):
                _state["notes"].append(f"note: {message}")
            else:
                shown(message, category, *rest, **kwargs)

        warnings.showwarning = show
        yield


def _main(args: list[str], debug: bool) -> int:
    _state["notes"].clear()
    try:
        from asma_bench import commands

        commands.load_all()
        # without standalone mode click returns a command's `typer.Exit(code)` instead of raising
        code = app(args=args, prog_name="asma-bench", standalone_mode=False)
    except _EXIT as exc:
        say_notes()
        return exc.exit_code
    except _ABORT:
        if _STOPPED_BY:  # said once, by main
            return 130
        typer.echo("aborted", err=True)
        return 130
    except _NO_ARGS_HELP as exc:  # a group without a command: its help (typer's, or click's)
        if exc.format_message().strip():
            exc.show()
        return exc.exit_code
    except _CLICK_ERROR as exc:  # usage errors: one line, with where to find the help
        if debug:
            raise
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if isinstance(exc, _USAGE_ERROR) and ctx is not None and ctx.help_option_names:
            names = ctx.help_option_names
            hint = f" (see '{ctx.command_path} {'--help' if '--help' in names else names[0]}')"
        message = " ".join(exc.format_message().split())
        typer.echo(f"error: {message}{hint}", err=True)
        return exc.exit_code
    except AsmaBenchError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        if not _STOPPED_BY:  # a KeyboardInterrupt no handler of ours raised
            _STOPPED_BY.append(2)
        return 130
    except OSError as exc:  # a full disk, a folder that cannot be written: the user's to fix
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        return 2
    except Exception as exc:  # a bug: one line, the traceback behind --debug
        if debug:
            raise
        typer.echo(
            f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            err=True,
        )
        return 1
    say_notes()
    return code if isinstance(code, int) else 0


def _console() -> None:  # pragma: no cover - thin wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    # run the imported module, not this __main__ copy: command modules register on its app
    from asma_bench.cli import _console as _run

    _run()
