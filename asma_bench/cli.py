"""The ``asma-bench`` command line.

User errors (bad files, bad parameters) print one line and exit non-zero; ``--debug`` shows
the traceback. Library code logs; only this module prints.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from asma_bench import __version__
from asma_bench.errors import AsmaBenchError

app = typer.Typer(
    name="asma-bench",
    help="Benchmark self-supervised skeleton action recognition: masking strategies compared.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Create, convert and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"asma-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
    version: Annotated[
        Optional[bool],  # noqa: UP007 - typer needs Optional here
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = None,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _print_table(title: str, df) -> None:  # noqa: ANN001 - pandas DataFrame
    typer.echo(f"\n{title}")
    typer.echo(df.to_string(float_format=lambda v: f"{v:.4g}"))


# --------------------------------------------------------------------------- data
@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Output dataset folder.")] = Path("data/synthetic"),
    preset: Annotated[str, typer.Option(help="default | noisy | tiny")] = "default",
    seed: Annotated[Optional[int], typer.Option(help="Generator seed (preset's if unset).")] = None,  # noqa: UP007
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
) -> None:
    """Generate the embedded synthetic NTU-25 action dataset."""
    from asma_bench.data.store import SkeletonDataset
    from asma_bench.data.synthetic import generate

    path = generate(out, preset, seed=seed, overwrite=overwrite, progress=True)
    ds = SkeletonDataset(path)
    typer.echo(f"wrote {len(ds)} samples, {ds.num_classes} classes, splits "
               f"{', '.join(ds.split_names)} to {path}")


@data_app.command("convert")
def data_convert(
    source: Annotated[Path, typer.Argument(help="File or folder in a known dataset format.")],
    out: Annotated[Path, typer.Argument(help="Output dataset folder (canonical format).")],
    fmt: Annotated[
        str,
        typer.Option("--format", help="auto | ntu-raw | ssl-npy | ctrgcn-npz | pyskl | pku | ucla"),
    ] = "auto",
    labels: Annotated[Optional[Path], typer.Option(help="Label file/folder (PKU-MMD).")] = None,  # noqa: UP007
    missing: Annotated[
        Optional[Path],  # noqa: UP007
        typer.Option(help="List of sample names to skip (NTU's missing-skeleton list)."),
    ] = None,
    split_file: Annotated[
        Optional[Path], typer.Option(help="Official split file (PKU-MMD cross-subject).")  # noqa: UP007
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing folder.")] = False,
) -> None:
    """Convert NTU / PKU-MMD / NW-UCLA data into the canonical format."""
    from asma_bench.data.readers import convert
    from asma_bench.data.store import SkeletonDataset

    path = convert(source, out, fmt, labels=labels, missing=missing, split_file=split_file,
                   overwrite=overwrite, progress=True)
    ds = SkeletonDataset(path)
    typer.echo(f"wrote {len(ds)} samples ({ds.info['source']}), array {tuple(ds.data.shape)}, "
               f"splits {', '.join(ds.split_names) or '(none)'} to {path}")


@data_app.command("info")
def data_info(
    path: Annotated[Path, typer.Argument(help="Canonical dataset folder.")],
    max_samples: Annotated[int, typer.Option(help="Samples used for motion statistics.")] = 2000,
) -> None:
    """Counts per split and class, frame lengths, per-joint motion by degree."""
    from asma_bench.data.info import summarize
    from asma_bench.data.store import SkeletonDataset

    ds = SkeletonDataset(path)
    s = summarize(ds, max_motion_samples=max_samples)
    typer.echo(f"{path}: {len(ds)} samples, {ds.num_classes} classes, layout {ds.layout.name}, "
               f"array {tuple(ds.data.shape)} float32, source {ds.info.get('source')}")
    if len(s["splits"]):
        _print_table("splits", s["splits"].set_index(["split", "part"]))
    _print_table("samples per class", s["classes"])
    _print_table("valid frames", s["lengths"])
    _print_table(f"mean joint displacement per frame by degree ({s['motion_samples']} samples)",
                 s["motion_degree"])


# --------------------------------------------------------------------------- entry
def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, prog_name="asma-bench", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except AsmaBenchError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except OSError as exc:
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        return 1
    except Exception as exc:  # a bug: one line, the traceback behind --debug
        if debug:
            raise
        typer.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the "
                   "traceback)", err=True)
        return 1
    return 0


def _console() -> None:  # pragma: no cover - thin wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    _console()
