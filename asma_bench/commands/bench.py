"""``asma-bench bench``: throughput of the pretraining step, inference, FLOPs and memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from asma_bench.commands.app import app, check_device_flag, check_writable, interactive, print_table


@app.command("bench")
def bench(
    shapes: Annotated[str, typer.Option(help="paper | quick | both (or another profile)")] = "both",
    steps: Annotated[int, typer.Option(help="Timed steps per workload (median reported).")] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed steps first.")] = 1,
    rounds: Annotated[
        int, typer.Option(help="Round-robin rounds over the workloads (noise spread evenly).")
    ] = 1,
    batch_size: Annotated[
        int, typer.Option(help="Pretraining batch (0 keeps each profile's own).")
    ] = 64,
    objectives: Annotated[
        str, typer.Option(help="Comma-separated: barlow_twins (one encoder), asma (two).")
    ] = "barlow_twins,asma",
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N")] = "cpu",
    amp: Annotated[
        bool,
        typer.Option(
            help="Autocast: bf16 on a CPU with native bf16 (AVX512-BF16, AMX); on CUDA bf16, "
            "else fp16."
        ),
    ] = False,
    optimizer: Annotated[
        str,
        typer.Option(
            help="profile (each profile's Adam, pretrain.fused_adam: the paper profile's is "
            "fused) | foreach | fused"
        ),
    ] = "profile",
    inference: Annotated[bool, typer.Option(help="Also time forward-only inference.")] = True,
    flops: Annotated[bool, typer.Option(help="Count FLOPs (one extra step each).")] = True,
    memory: Annotated[
        str,
        typer.Option(
            help="CPU peak memory: isolated (each workload in a fresh process of its own) | "
            "shared (this process, which holds every workload)."
        ),
    ] = "isolated",
    ops: Annotated[
        int, typer.Option(help="Also print the profiler's top N operators of one step.")
    ] = 0,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045 - this typer cannot parse `list[str] | None`
        typer.Option("--set", help="Config override key.sub=value, e.g. masking.mode=drop."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON to this file.")] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress lines (default: on a terminal)."),
    ] = None,
) -> None:
    """Throughput of the pretraining step, its phases, GFLOP/s and memory.

    Samples/s of the triplet Barlow Twins and ASMa steps and of inference, the share of
    masking, augmentation and data loading, at the paper's shapes and the quick profile's.
    Under torchrun every rank takes its share of each batch (DistributedDataParallel) and
    samples/s counts the whole batch.
    """
    from asma_bench.perf.bench import format_environment, parse_shapes, run_bench

    check_device_flag(device)
    check_writable(out, "--out")
    names = [s.strip() for s in objectives.split(",") if s.strip()]
    show = (interactive() if progress is None else progress) and not as_json
    report = run_bench(
        parse_shapes(shapes),
        names,
        steps=steps,
        warmup=warmup,
        rounds=rounds,
        batch_size=batch_size or None,
        device=device,
        amp=amp,
        optimizer=optimizer,
        inference=inference,
        count_flops=flops,
        overrides=list(set_ or []),
        memory=memory,
        operators=ops,
        progress=(lambda what: typer.echo(f"measuring {what} ...", err=True)) if show else None,
    )
    from asma_bench.training.distributed import is_main

    if not is_main():  # under torchrun every rank measures; rank 0 reports
        return
    data = report.as_dict()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2) + "\n")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    print_table(
        f"pretraining throughput ({format_environment(report.environment)}); median of "
        f"{steps * rounds} steps, spread = (max - min) / median",
        report.table(),
    )
    import pandas as pd

    for name, rows in report.operators.items():
        table = pd.DataFrame(rows).set_index("operator")
        table["share"] = 100 * table["share"]
        print_table(f"top operators of one step: {name} (self time)", table)
