"""``asma-bench latency``: teacher vs distilled student on the CPU through ONNX Runtime."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from asma_bench.commands.app import (
    _print_table,
    _progress_line,
    _progress_mode,
    _refuse_seed_override,
    app,
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
    runs: Annotated[int, typer.Option(help="Timed inferences per model and thread count.")] = 100,
    warmup: Annotated[int, typer.Option(help="Untimed inferences first.")] = 10,
    work: Annotated[
        Path, typer.Option(help="Folder for data and checkpoints (shared with `run --out`).")
    ] = Path("runs"),
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
    to int8 and time all three at batch 1 (paper Table 2)."""
    from asma_bench.perf.latency import LatencyOptions, latency_notes, run_latency

    _refuse_seed_override(set_, "--seed")
    opts = LatencyOptions(
        profile=profile,
        overrides=list(set_ or []),
        seed=seed,
        threads=_int_list(threads, "--threads"),
        runs=runs,
        warmup=warmup,
        exporter=exporter,
        train=train,
    )
    mode, start = _progress_mode(progress), time.monotonic()

    def say(message: str) -> None:
        if mode == "bar":  # a terminal: what runs now
            _progress_line(f"  {message}…")
        else:  # logs: one plain line per step (a model exported or timed)
            _progress_line(f"latency: {message} ({time.monotonic() - start:.0f} s)")

    result = run_latency(opts, out, work, progress=None if mode == "off" else say)
    typer.echo(result.caption)
    _print_table("latency", result.table)
    for note in latency_notes(result.models, opts):
        typer.echo(f"  {note}")
    typer.echo(f"\nwrote {', '.join(str(p) for p in result.files.values())}")
