"""``asma-bench data``: synthesise, convert and describe datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asma_bench.commands.app import (
    LateHelp,
    data_app,
    interactive,
    print_table,
)


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
        out, preset, seed=seed, overwrite=overwrite, progress=interactive(), layout=layout
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
        progress=interactive(),
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
            print_table(
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
        print_table("splits", s["splits"].set_index(["split", "part"]))
    print_table("samples per class", s["classes"])
    print_table("valid frames", s["lengths"])
    print_table(
        f"mean joint displacement per frame by degree ({s['motion_samples']} samples)",
        s["motion_degree"],
    )
