"""What is registered: ``grids``, ``profiles``, ``maskings`` (with ``--diagnose`` and
``--out``) and ``models``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from asma_bench.commands.app import (
    app,
    print_listing,
    print_table,
)


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
    print_table(
        f"backbones on {layout}, {frames} frames, {bodies} bodies (FLOPs: 2 per MAC, "
        "torch.utils.flop_counter)",
        pd.DataFrame(rows).set_index("backbone"),
    )
