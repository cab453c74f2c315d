"""``asma-bench tune`` and ``asma-bench spaces``: hyper-parameter search with Optuna."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asma_bench.commands.app import (
    app,
    check_device_flag,
    check_writable,
    print_listing,
    print_table,
    progress_line,
    progress_mode,
    renamed,
    set_layers,
)
from asma_bench.errors import ConfigError

#: asma_bench.config.MAX_SEED (not imported here: the command line starts without pydantic)
MAX_SEED = 2**32 - 1


@app.command("tune")
def tune(
    space: Annotated[
        str, typer.Option(help="Search space (see `asma-bench spaces`) or YAML file.")
    ],
    trials: Annotated[int, typer.Option(help="Trials to run (added to the study's).")] = 20,
    profile: Annotated[str, typer.Option(help="smoke | quick | paper | a YAML file.")] = "quick",
    storage: Annotated[
        str | None,
        typer.Option(
            help="Optuna storage URL (default: SQLite in --runs); share it to tune "
            "from several machines."
        ),
    ] = None,
    runs: Annotated[
        Path,
        typer.Option(
            help="The runs folder: the study's store, and the MLflow store the grids log to "
            "(trials go to its experiment tune:SPACE). Earlier versions' default: tuning."
        ),
    ] = Path("runs"),
    old_out: Annotated[Path | None, typer.Option("--out", hidden=True)] = None,  # --runs
    study: Annotated[
        str | None,
        typer.Option(help="Study name: letters, digits, _ . + - : (default: space + config hash)."),
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Seed of every trial and of the sampler.")
    ] = 0,
    data: Annotated[
        str | None,
        typer.Option(help="'synthetic' (default) or a canonical dataset folder."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu | cuda | cuda:N")] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: SQLite in --runs).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Config override key.sub=value (repeatable)."),
    ] = None,
    save_profile: Annotated[
        Path | None,
        typer.Option(
            help="Write the base profile plus the tuned parameters at their best values as a "
            "profile YAML (use it with --profile FILE; what the space fixes is left to the grid)."
        ),
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Stop starting trials after this many seconds.")
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Progress bar; default: a bar on a terminal, else one line per trial.",
        ),
    ] = None,
    jobs: Annotated[
        str,
        typer.Option(
            "--jobs",
            "-j",
            metavar="N|auto",
            envvar="ASMA_BENCH_JOBS",
            help="Trials in this many local processes that share the cores (each takes "
            "threads ÷ N) and the study. auto: one per core, so each trial runs on one "
            "thread, as `run`'s units do (at most one per 4 GiB of free memory; 1 on a "
            "GPU). With more than one the study's points depend on which trial finished "
            "first; --jobs 1 keeps them reproducible from --seed.",
        ),
    ] = "auto",
) -> None:
    """Tune a search space with Optuna (TPE, median pruning on validation accuracy)."""
    from asma_bench.harness.tuning import TuneOptions, load_space, trials_table
    from asma_bench.harness.tuning import save_profile as write_profile
    from asma_bench.harness.tuning import tune as run_tuning

    out = renamed("tune", "--runs", runs, "--out", old_out, Path("runs"))
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout must be > 0 seconds, got {timeout:g}")
    check_device_flag(device)
    from asma_bench.commands.run import parse_jobs

    processes = parse_jobs(jobs, device)  # a shared --storage is how Optuna runs in parallel
    set_layers(set_, "--seed")
    if save_profile is not None:
        if save_profile.suffix not in (".yaml", ".yml"):
            raise ConfigError(f"--save-profile {save_profile}: the file name must end in .yaml")
        check_writable(save_profile, "--save-profile")
    spec = load_space(space)
    mode = progress_mode(progress)
    opts = TuneOptions(
        profile=profile,
        trials=trials,
        out=out,
        storage=storage,
        study=study,
        seed=seed,
        data=data,
        device=device,
        tracking_uri=tracking_uri,
        overrides=list(set_ or []),
        timeout_s=timeout,
        jobs=processes,
        progress=mode == "bar",
        progress_lines=progress_line if mode == "lines" else None,
    )
    outcome = run_tuning(spec, opts)
    table = trials_table(outcome)
    if not table.empty:
        print_table(
            f"study {outcome.study}: {len(table)} trials ({spec.objective}, higher is better)",
            table,
        )
    typer.echo("")
    if outcome.best is not None:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in outcome.best.params.items())
        typer.echo(
            f"best: trial {outcome.best.number}, {spec.objective} "
            f"{outcome.best.value:.2f}: {params}"
        )
    typer.echo(outcome.verdict())
    if save_profile is not None and outcome.best is not None:
        path = write_profile(outcome, save_profile)
        typer.echo(
            f"saved {profile} + the tuned parameters as a profile: {path}  (use --profile {path})"
        )
    typer.echo(f"Optuna storage: {outcome.storage}  (browse: optuna-dashboard {outcome.storage})")
    typer.echo(f"MLflow store: {outcome.tracking_uri}  (experiment {outcome.experiment})")
    if outcome.best is None:
        raise typer.Exit(1)


@app.command("spaces")
def spaces() -> None:
    """List the search spaces of `asma-bench tune`."""
    from asma_bench.harness.tuning import list_spaces, load_space

    names = list_spaces()
    specs = [load_space(name) for name in names]
    rows = [(n, s.protocol, ", ".join(s.params)) for n, s in zip(names, specs, strict=True)]
    print_listing(("space", "protocol", "tuned"), rows, [s.description for s in specs])


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
