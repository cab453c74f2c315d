"""``asma-bench report``: tables with significance tests, figures and an HTML page per grid."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from asma_bench.commands.app import app, interactive, print_table


def _classes(text: str | None) -> list[int] | None:
    from asma_bench.errors import ConfigError

    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--classes {text!r} must be comma-separated class numbers") from None


@app.command("report")
def report(
    grid: Annotated[
        str,
        typer.Option(
            help="Grid name (see `asma-bench grids`), YAML file, or a suite (e.g. paper: "
            "every grid of it that has runs)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Report folder (one HTML page for all).")] = Path(
        "reports"
    ),
    runs: Annotated[
        Path, typer.Option(help="Folder of `asma-bench run` (store, data, checkpoints).")
    ] = Path("runs"),
    store: Annotated[
        str | None,  # noqa: UP007
        typer.Option(
            "--store", "--tracking-uri", help="MLflow tracking URI (default: SQLite in --runs)."
        ),
    ] = None,
    correction: Annotated[str, typer.Option(help="holm | bh | none")] = "holm",
    baseline: Annotated[
        str | None, typer.Option(help="Cell to compare against (default: the grid's).")  # noqa: UP007
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="Metric (default: the grid's, e.g. test_top1).")  # noqa: UP007
    ] = None,
    seed_test: Annotated[str, typer.Option(help="ttest | wilcoxon (paired over seeds)")] = "ttest",
    per_clip: Annotated[
        bool,
        typer.Option(
            "--per-clip/--no-per-clip",
            help="Per-clip test on the logged predictions: seed and clip random (McNemar "
            "with one seed).",
        ),
    ] = True,
    where: Annotated[
        list[str] | None,  # noqa: UP007
        typer.Option(help="Only runs with this parameter value, e.g. pretrain.epochs=3."),
    ] = None,
    embeddings: Annotated[
        bool, typer.Option("--embeddings/--no-embeddings", help="t-SNE of encoder features.")
    ] = True,
    embedding_method: Annotated[
        str, typer.Option(help="tsne | pca (2-D map of encoder features)")
    ] = "tsne",
    classes: Annotated[
        str | None, typer.Option(help="Classes for the t-SNE, e.g. 0,3,7 (default: 0-7).")  # noqa: UP007
    ] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment of the runs.")] = "asma-bench",
    masking_draws: Annotated[
        int,
        typer.Option(
            min=0, help="Draws per masking strategy for the diagnostics section (0: none)."
        ),
    ] = 10_000,
) -> None:
    """Tables (Markdown, LaTeX, CSV) with Δ and significance, figures and an HTML page.

    A grid whose cells cross two label axes also gets a two-way analysis of variance (seed
    as block), and a grid that pretrains with masks a section on what each of its masking
    strategies hides. Cells or seeds missing from the store are named in a warning block
    and under the table; a store where no unit of the grid finished is an error.
    """
    from asma_bench.harness.suites import find_suite
    from asma_bench.reports.results import NoResultsError, NoRunsError, resolve_tracking_uri

    settings = dict(
        out=out, runs=runs, store=store, correction=correction, baseline=baseline,
        metric=metric, seed_test=seed_test, per_clip=per_clip, where=where,
        embeddings=embeddings, embedding_method=embedding_method, classes=classes,
        experiment=experiment, masking_draws=masking_draws,
    )  # fmt: skip
    suite = find_suite(grid)
    if suite is None:
        _report_one(grid, **settings)
        return
    if baseline is not None:
        from asma_bench.errors import ConfigError

        raise ConfigError(
            f"--baseline names a cell of one grid; suite {suite.name} has "
            f"{len(suite.grids)} grids, each with its own baseline"
        )
    resolve_tracking_uri(store, runs)  # a missing store is one error, not one per grid
    done = []
    for name in suite.grids:
        typer.echo(f"== {name}")
        try:
            _report_one(name, **settings)
            done.append(name)
        except (NoRunsError, NoResultsError) as exc:  # not run yet: the others still report
            typer.echo(f"grid {name}: not reported ({exc})")
    typer.echo(f"\nsuite {suite.name}: {len(done)} of {len(suite.grids)} grids reported")
    if not done:
        raise NoResultsError(f"suite {suite.name}: none of its grids has a finished run in {runs}")


def _report_one(
    grid,
    out,
    runs,
    store,
    correction,
    baseline,
    metric,
    seed_test,
    per_clip,  # noqa: ANN001, PLR0913
    where,
    embeddings,
    embedding_method,
    classes,
    experiment,
    masking_draws,
) -> None:
    """One grid's report (what ``report --grid NAME`` writes and prints)."""
    from asma_bench.reports.build import FigureOptions, write_report
    from asma_bench.reports.compare import ReportOptions
    from asma_bench.reports.results import resolve_tracking_uri

    options = ReportOptions(
        metric=metric,
        correction=correction,
        seed_test=seed_test,
        per_clip=per_clip,
    )
    uri = resolve_tracking_uri(store, runs)
    show = interactive()
    result = write_report(
        grid, uri, out, runs_dir=runs, options=options, baseline=baseline, where=list(where or []),
        figure_options=FigureOptions(
            embeddings=embeddings, embedding_method=embedding_method, classes=_classes(classes),
            masking_draws=masking_draws,
        ),
        experiment=experiment,
        progress=(lambda step: typer.echo(f"  drawing {step}…", err=True)) if show else None,
    )  # fmt: skip
    from asma_bench.reports.datasets import display_rows as across_rows
    from asma_bench.reports.naming import dataset_name
    from asma_bench.reports.render import display_rows

    reports = {dataset_name(k): p.report for k, p in result.parts.items()} or {"": result.report}
    warnings = []
    for name, rep in reports.items():
        typer.echo(rep.caption)
        title = f"{rep.grid}" + (f" on {name}" if name else "")
        print_table(title, display_rows(rep).set_index(rep.axes[0] if rep.axes else "cell"))
        # incomplete grids, failed units, weak tests: a block on stderr, also in the notes
        warnings += [
            n for n in rep.notes if n.startswith(("warning", "FAILED", "KILLED", "RUNNING"))
        ]
    if result.across is not None:
        typer.echo(result.across.caption)
        rows = across_rows(result.across)
        print_table(f"{result.across.grid} across datasets",
                     rows.set_index(rows.columns[0]))  # fmt: skip
    if warnings:
        typer.echo("", err=True)
        for note in warnings:
            typer.echo(f"  {note}", err=True)
    for skipped in result.skipped:
        typer.echo(f"  figure not drawn: {skipped}")
    typer.echo(
        f"\nwrote {len(result.files)} tables and {len(result.figures)} figures to "
        f"{result.folder}; page: {result.index}"
    )


@app.command("results")
def results(
    grid: Annotated[str, typer.Option(help="Grid name or YAML file.")],
    runs: Annotated[Path, typer.Option(help="Folder of `asma-bench run`.")] = Path("runs"),
    store: Annotated[
        str | None,  # noqa: UP007
        typer.Option("--store", "--tracking-uri", help="MLflow tracking URI (default: in --runs)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    all_runs: Annotated[
        bool, typer.Option("--all", help="Also units that failed or were killed.")
    ] = False,
    experiment: Annotated[str, typer.Option(help="MLflow experiment of the runs.")] = "asma-bench",
) -> None:
    """One row per unit (cell, seed): status, run id, metrics; csv and json add every
    configuration value (the same frame as ``asma_bench.api.load_results``)."""
    from asma_bench.api import load_results
    from asma_bench.errors import ConfigError

    if fmt not in ("table", "csv", "json"):
        raise ConfigError(f"--format must be table, csv or json, got {fmt!r}")
    df = load_results(grid, runs, store=store, finished_only=not all_runs, experiment=experiment)
    if fmt in ("csv", "json"):  # typed values: true/false, empty or null for None, lists
        from asma_bench.reports.results import results_csv, results_json

        typer.echo(results_csv(df) if fmt == "csv" else results_json(df), nl=fmt == "json")
    else:
        shown = [c for c in ("cell", "seed", "status", "test_top1", "test_knn_top1",
                             "unit_seconds", "run_id") if c in df]  # fmt: skip
        from asma_bench.harness.grids import load_grid

        try:
            name = load_grid(grid).name
        except ConfigError:
            name = grid
        print_table(f"{name}: {len(df)} units", df[shown].set_index(["cell", "seed"]))
