"""``asma-bench latency``: teacher vs distilled student on the CPU through ONNX Runtime."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from asma_bench.commands.app import (
    app,
    print_table,
    progress_line,
    progress_mode,
    renamed,
    set_layers,
)


def _int_list(text: str, option: str) -> list[int]:
    from asma_bench.errors import ConfigError

    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r} must be comma-separated integers") from None
    if not values:
        raise ConfigError(f"{option} must name at least one value")
    return values


@app.command("latency")
def latency(
    profile: Annotated[str, typer.Option(help="smoke | quick | paper | a YAML file.")] = "quick",
    out: Annotated[Path, typer.Option(help="Report folder (one HTML page for all).")] = Path(
        "reports"
    ),
    threads: Annotated[str, typer.Option(help="Intra-op thread counts, e.g. 1,2.")] = "1,2",
    repeats: Annotated[
        int, typer.Option(help="Timed inferences per model and thread count.")
    ] = 100,
    warmup: Annotated[int, typer.Option(help="Untimed inferences first.")] = 10,
    runs: Annotated[
        Path,
        typer.Option(
            help="The runs folder (data, checkpoints; that of `asma-bench run`): with --grid or "
            "--run-id, the teacher and student trained there are timed, nothing trained again."
        ),
    ] = Path("runs"),
    old_work: Annotated[Path | None, typer.Option("--work", hidden=True)] = None,  # --runs
    grid: Annotated[
        str | None,
        typer.Option(help="Time a grid's trained models: the distill grid, e.g. teacher_kind."),
    ] = None,
    cell: Annotated[
        str | None, typer.Option(help="With --grid: the cell (default: the grid's first).")
    ] = None,
    run_id: Annotated[
        str | None, typer.Option(help="Time a trained distill unit: its MLflow run id.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="'synthetic' or a canonical dataset folder: the data the models are trained "
            "on and scored on (with --grid: which dataset's unit)."
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(help="With --grid/--run-id: MLflow tracking URI (default: in --runs)."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the teacher and student.")] = 0,
    exporter: Annotated[str, typer.Option(help="dynamo | torchscript")] = "dynamo",
    train: Annotated[
        bool,
        typer.Option(
            "--train/--no-train",
            help="Train teacher and student (accuracy); "
            "--no-train times the architectures with initial weights.",
        ),
    ] = True,
    set_: Annotated[
        list[str] | None,  # noqa: UP007
        typer.Option("--set", help="Config override key.sub=value (repeatable)."),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress",
            help="Say what is being measured; default: on a terminal, and one line per step "
            "with the time so far elsewhere.",
        ),
    ] = None,
) -> None:
    """Export the ASMa teacher and its student to ONNX, check them, quantise the student
    to int8 and time all three at batch 1 (paper Table 2): the models a grid trained
    (`--runs DIR --grid teacher_kind`), or ones trained here for `--profile` (their data and
    checkpoints kept in --runs)."""
    from asma_bench.errors import ConfigError
    from asma_bench.perf.latency import LatencyOptions, latency_notes, run_latency

    set_layers(set_, "--seed")
    given = old_work is not None or runs != Path("runs")
    runs = renamed("latency", "--runs", runs, "--work", old_work, Path("runs"))
    if given and not runs.is_dir() and str(runs).isdigit():
        raise ConfigError(
            f"--runs {runs}: --runs names a runs folder; the number of timed inferences "
            "is --repeats"
        )
    overrides: list[str | dict] = list(set_ or [])
    config = origin = None
    if grid is None and run_id is None:  # models trained here (or found in --runs)
        if cell or store:
            raise ConfigError("--cell and --store need --grid or --run-id (a trained unit)")
        if data:
            source = data if data == "synthetic" else str(Path(data).expanduser())
            overrides.insert(0, {"data": {"source": source}})
    else:
        from asma_bench.perf.trained import check_checkpoints, find_unit, with_overrides

        if not train:
            raise ConfigError("--no-train times untrained models; --grid/--run-id trained ones")
        unit = find_unit(runs, store, grid, cell, seed, run_id, data)
        check_checkpoints(unit, runs)
        config = with_overrides(unit.config, [str(o) for o in overrides])
        origin = unit.origin + (
            f", changed by --set {' '.join(str(o) for o in overrides)}" if overrides else ""
        )
    opts = LatencyOptions(
        profile=profile,
        overrides=overrides,
        seed=seed,
        threads=_int_list(threads, "--threads"),
        runs=repeats,
        warmup=warmup,
        exporter=exporter,
        train=train,
        config=config,
        origin=origin,
    )
    mode, start = progress_mode(progress), time.monotonic()

    def say(message: str) -> None:
        if mode == "bar":  # a terminal: what runs now
            progress_line(f"  {message}…")
        else:  # logs: one plain line per step (a model exported or timed)
            progress_line(f"latency: {message} ({time.monotonic() - start:.0f} s)")

    result = run_latency(opts, out, runs, progress=None if mode == "off" else say)
    typer.echo(result.caption)
    print_table("latency", result.table)
    for note in latency_notes(result.models, opts):
        typer.echo(f"  {note}")
    typer.echo(f"\nwrote {', '.join(str(p) for p in result.files.values())}")
