"""A grid's full report: tables, the figures its labels call for, and the HTML page.

Which figures a grid gets is decided by its cells' labels, not by its name: spatial ×
temporal labels give the masking-pair heatmap (Fig. 3), any other full grid of two numeric
axes a heatmap of that grid (Table 7), one numeric axis a sensitivity curve (Fig. 4),
runs with both encoders' predictions the per-class difference (Fig. 6). Every grid gets
its training curves (of metrics logged every epoch: one logged once per run is no curve),
the t-SNE of encoder features (Figs. 5 / 7, when the checkpoints are in ``runs_dir``) and
the degree–motion plot of its dataset (Fig. 1, when it is there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asma_bench.config import CATALOG_SUFFIXES, validate_config
from asma_bench.data.info import summarize
from asma_bench.data.store import SkeletonDataset
from asma_bench.data.transforms import Augment
from asma_bench.errors import AsmaBenchError, ConfigError
from asma_bench.fileio import atomic_write_text
from asma_bench.harness.grids import list_grids, load_grid
from asma_bench.objectives import objective_class
from asma_bench.reports import compare, factorial, figures, html, render
from asma_bench.reports.datasets import AcrossDatasets, across_datasets, write_across
from asma_bench.reports.datasets import display_rows as datasets_display
from asma_bench.reports.embeddings import dataset_class_names, encoder_embeddings
from asma_bench.reports.naming import dataset_info, dataset_name, dataset_title, dataset_titles
from asma_bench.reports.results import (
    GridRuns,
    load_artifact_json,
    load_grid_runs,
    load_predictions,
    metric_histories,
)
from asma_bench.strategies.diagnose import diagnose, example_clip, mean_pose, to_markdown
from asma_bench.training.data import prepare_data, resolve_dataset
from asma_bench.training.pretrain import pretrain_digest

log = logging.getLogger(__name__)

CURVE_PANELS = 4


@dataclass
class FigureOptions:
    embeddings: bool = True
    embedding_method: str = "tsne"  # or "pca"
    classes: Sequence[int] | None = None  # classes shown in the embedding map (default 0-7)
    dataset: bool = True
    curves: bool = True
    masking_draws: int = 10_000  # draws per strategy of the masking diagnostics (0: off)

    def __post_init__(self) -> None:
        if self.embedding_method not in ("tsne", "pca"):
            raise ConfigError(
                f"--embedding-method must be tsne or pca, got {self.embedding_method!r}"
            )


@dataclass
class ReportOutput:
    folder: Path
    report: compare.GridReport
    files: dict[str, Path]
    figures: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # figures not drawn, with the reason
    index: Path | None = None
    # a grid run on several datasets: each dataset's report, and the analysis across them
    parts: dict[str, ReportOutput] = field(default_factory=dict)
    across: AcrossDatasets | None = None


def write_report(
    grid: str,
    uri: str,
    out_dir: Path,
    runs_dir: Path = Path("runs"),
    options: compare.ReportOptions | None = None,
    baseline: str | None = None,
    where: Sequence[str] = (),
    figure_options: FigureOptions | None = None,
    progress: Callable[[str], None] | None = None,
    experiment: str = "asma-bench",
) -> ReportOutput:
    """Write ``out_dir/<grid>/`` (tables, figures, manifest) and ``out_dir/index.html``.

    A grid whose runs were made on several datasets gets one full report per dataset
    (``out_dir/<grid>@<dataset>/``) and, in ``out_dir/<grid>/``, the comparison of every
    cell with the baseline across them (:mod:`asma_bench.reports.datasets`)."""

    fig_opts = figure_options or FigureOptions()
    spec = None
    if grid in list_grids() or grid.endswith(CATALOG_SUFFIXES):
        spec = load_grid(grid)
        grid = spec.name
    runs = load_grid_runs(uri, grid, spec, baseline=baseline, where=where, experiment=experiment)
    opts = options or compare.ReportOptions()
    names = [grid]
    if len(runs.datasets) > 1:
        names += [f"{runs.grid}@{_slug(dataset_name(ds))}" for ds in runs.datasets]
    html.check_report_folder(Path(out_dir), names)  # nothing of the user's is replaced
    if len(runs.datasets) > 1:
        return _write_across(runs, Path(out_dir), Path(runs_dir), opts, fig_opts, progress)
    return _write_grid(runs, Path(out_dir), grid, Path(runs_dir), opts, fig_opts, progress)


def _write_across(
    runs: GridRuns,
    out_dir: Path,
    runs_dir: Path,
    opts: compare.ReportOptions,
    fig_opts: FigureOptions,
    progress: Callable[[str], None] | None,
) -> ReportOutput:
    """One report per dataset, then the cells against the baseline across datasets."""
    if runs.baseline is None:  # refused before anything is written
        raise ConfigError(
            f"grid {runs.grid!r} ran on {len(runs.datasets)} datasets but has no baseline to "
            "compare across them (--baseline CELL)"
        )
    parts = {}
    titles = dataset_titles(runs.datasets)
    for ds in runs.datasets:
        name = f"{runs.grid}@{_slug(dataset_name(ds))}"
        parts[ds] = _write_grid(runs.for_dataset(ds), out_dir, name, runs_dir, opts, fig_opts,
                                progress, dataset=titles[ds])  # fmt: skip
    folder = out_dir / runs.grid
    across = across_datasets(
        {ds: p.report for ds, p in parts.items()}, opts.correction, opts.confidence, opts.alpha
    )
    files = write_across(across, folder)
    manifest = {
        "title": f"Grid {runs.grid} — across {len(parts)} datasets",
        "kind": "grid",
        "tables": [{
            "caption": across.caption,
            "html": datasets_display(across).to_html(index=False, escape=True, border=0),
            "files": {"Markdown": files["markdown"].name, "LaTeX": files["latex"].name,
                      "CSV": files["csv"].name},
        }],
        "notes": across.notes + [
            f"{titles[ds]}: its own report in {p.folder.name}/" for ds, p in parts.items()
        ],
        "figures": [],
    }  # fmt: skip
    html.write_manifest(folder, manifest)
    first = next(iter(parts.values()))
    return ReportOutput(folder, first.report, files, index=html.build_index(out_dir),
                        parts=parts, across=across)  # fmt: skip


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_.+-" else "-" for c in text) or "data"


def _write_grid(
    runs: GridRuns,
    out_dir: Path,
    name: str,
    runs_dir: Path,
    options: compare.ReportOptions,
    fig_opts: FigureOptions,
    progress: Callable[[str], None] | None,
    dataset: str = "",
) -> ReportOutput:
    """Tables, figures and the manifest of one grid on one dataset in ``out_dir/name``."""
    grid = runs.grid
    report = compare.build_grid_report(runs, options)
    folder = out_dir / name
    files = render.write_grid_report(report, folder)
    out = ReportOutput(folder, report, files)

    steps = [
        ("heatmap", _heatmap),
        ("sensitivity", _sensitivity),
        ("per-class difference", _per_class),
    ]
    if fig_opts.curves:
        steps.append(("training curves", _curves))
    if fig_opts.embeddings:
        steps.append(("embeddings", _embeddings))
    if fig_opts.dataset:
        steps.append(("dataset degree/motion", _dataset))
    for name, step in steps:
        if progress:
            progress(name)
        try:
            made = step(runs, report, folder / "figures", runs_dir, fig_opts)
        except AsmaBenchError as exc:
            out.skipped.append(f"{name}: {exc}")
            log.info("figure %s skipped: %s", name, exc)
            continue
        out.figures.extend(made)
    extra_tables = []
    if progress:
        progress("masking diagnostics")
    try:
        made, diag_table = _masking_diagnostics(runs, folder, runs_dir, fig_opts.masking_draws)
        out.figures.extend(made)
        if diag_table is not None:
            extra_tables.append(diag_table)
    except AsmaBenchError as exc:
        out.skipped.append(f"masking diagnostics: {exc}")
    manifest = {
        "title": f"Grid {grid}" + (f" — {runs.table}" if runs.table else "")
        + (f" — on {dataset}" if dataset else ""),
        "kind": "grid",
        "tables": [{
            "caption": report.caption,
            "html": _table_html(report),
            "files": {"Markdown": files["markdown"].name, "LaTeX": files["latex"].name,
                      "CSV (per cell)": files["csv"].name,
                      "CSV (per seed)": files["seeds"].name},
        }, *extra_tables],
        "notes": report.notes + [f"figure not drawn — {s}" for s in out.skipped],
        "figures": [{**f, "png": str(Path(f["png"]).relative_to(folder)),
                     "svg": str(Path(f["svg"]).relative_to(folder))} for f in out.figures],
    }  # fmt: skip
    html.write_manifest(folder, manifest)
    out.index = html.build_index(out_dir)
    return out


def _table_html(report: compare.GridReport) -> str:
    parts = []
    matrix = render.matrix_rows(report)
    if matrix is not None:
        parts.append(matrix.to_html(index=False, escape=True, border=0))
    parts.append(render.display_rows(report).to_html(index=False, escape=True, border=0))
    if report.factorial is not None:
        a, b = report.factorial.factors
        parts.append(
            f"<h3>Two-way analysis of variance: {escape(a)} × {escape(b)}, seed as block</h3>"
        )
        parts.append(factorial.effects_table(report.factorial).to_html(index=False, border=0))
        parts.append(factorial.marginal_table(report.factorial).to_html(index=False, border=0))
    return "\n".join(parts)


def _figure(fig: Any, folder: Path, name: str, caption: str) -> dict[str, Any]:
    paths = figures.save_figure(fig, folder, name)
    return {"name": name, "caption": caption, "png": str(paths["png"]), "svg": str(paths["svg"])}


def _grid_cells(report: compare.GridReport) -> pd.DataFrame:
    """The table rows of the grid's own cells (reference rows left out)."""
    t = report.table
    ref = t[report.axes[0]].astype(str).str.endswith("(reference)") if report.axes else False
    return t[~ref] if report.axes else t


def _blank_squares(runs: GridRuns, cells: Sequence[str]) -> str:
    """A caption's sentence naming the squares left blank, and cells short of seeds."""
    text = ""
    blank = [c for c in runs.unfinished_cells() if c in set(cells)]
    if blank:
        text += f" Blank: no finished run of {', '.join(blank)}."
    failed = set(runs.failures()["cell"])
    short = [c for c in cells if c not in blank and (c in runs.missing or c in failed)]
    if short:
        text += f" Fewer seeds than requested: {', '.join(short)} (see the table's notes)."
    return text


def _max_seeds(report: compare.GridReport) -> int:
    return int(report.table["seeds"].max()) if len(report.table) else 0


# --------------------------------------------------------------------------- figures
def _heatmap(
    runs: GridRuns, report: compare.GridReport, folder: Path, _runs_dir: Path, _opts: FigureOptions
) -> list[dict]:
    axes = report.axes
    label = compare.metric_label(report.metric)
    n = _max_seeds(report)
    if {"spatial", "temporal"} <= set(axes):
        cells = _grid_cells(report)
        fig = figures.label_heatmap(
            cells, "spatial", "temporal", value_label=f"{label} (%)",
            title=f"{runs.grid}: {label} (%) by masking pair",
            order={"spatial": ["HDSM", "LDSM", "random"], "temporal": ["HMTM", "LMTM", "random"]},
        )  # fmt: skip
        caption = (
            f"Masking-pair heatmap (paper Fig. 3): mean {label} (%) of each spatial × "
            f"temporal masking pair, annotated mean ± std over up to {n} seeds; "
            f"{compare.describe_data(runs)}.{_blank_squares(runs, cells.index)}"
        )
        return [_figure(fig, folder, f"{runs.grid}_heatmap", caption)]
    if report.matrix:
        r_ax, c_ax = report.matrix
        fig = figures.label_heatmap(
            _grid_cells(report),
            r_ax,
            c_ax,
            f"{label} (%)",
            title=f"{runs.grid}: {label} (%) by {r_ax} × {c_ax}",
        )
        caption = (
            f"Heatmap of mean {label} (%) over {r_ax} × {c_ax}, annotated mean ± std "
            f"over up to {n} seeds; {compare.describe_data(runs)}."
            f"{_blank_squares(runs, _grid_cells(report).index)}"
        )
        return [_figure(fig, folder, f"{runs.grid}_heatmap", caption)]
    return []


def _sensitivity(
    runs: GridRuns, report: compare.GridReport, folder: Path, _runs_dir: Path, _opts: FigureOptions
) -> list[dict]:
    if len(report.axes) != 1:
        return []
    axis = report.axes[0]
    xs = {c: runs.labels[c].get(axis) for c in runs.cells if axis in runs.labels.get(c, {})}
    if not xs or not all(compare.is_number(v) for v in xs.values()):
        return []
    seeds = runs.per_seed(report.metric)
    seeds = seeds[seeds["cell"].isin(list(xs))].assign(x=lambda d: d["cell"].map(xs))
    label = compare.metric_label(report.metric)
    base = float(xs[runs.baseline]) if runs.baseline in xs else None
    fig = figures.sensitivity_curve(
        seeds,
        figures.axis_label(axis),
        f"{label} (%)",
        title=f"{runs.grid}: {label} (%) against {figures.axis_label(axis)}",
        highlight=base,
    )
    caption = (
        f"Sensitivity to {figures.axis_label(axis)} (paper Fig. 4): mean {label} (%) over "
        f"seeds with a ±1 std band, individual seeds as dots; {compare.describe_data(runs)}."
    )
    return [_figure(fig, folder, f"{runs.grid}_{axis}_curve", caption)]


def _per_class(
    runs: GridRuns, report: compare.GridReport, folder: Path, runs_dir: Path, _opts: FigureOptions
) -> list[dict]:
    done = runs.finished
    if "metrics.theta_test_top1" not in done or "metrics.phi_test_top1" not in done:
        return []
    has = done[done["metrics.theta_test_top1"].notna() & done["metrics.phi_test_top1"].notna()]
    if has.empty:
        return []
    order = [runs.baseline] if runs.baseline in set(has["cell"]) else []
    cell = (order + [c for c in runs.cells if c in set(has["cell"])])[0]
    pairs = []
    for run_id in has[has["cell"] == cell]["run_id"]:
        preds = load_predictions(runs.uri, run_id)
        if "theta_test" in preds and "phi_test" in preds:
            pairs.append((preds["theta_test"], preds["phi_test"]))
    if not pairs:
        return []
    config = load_artifact_json(runs.uri, has[has["cell"] == cell]["run_id"].iloc[0], "config.json")

    names = dataset_class_names(config, runs_dir)
    num_classes = max(len(names), int(max(p.logits.shape[1] for p, _ in pairs)))
    names = names + [f"class {k}" for k in range(len(names), num_classes)]
    diff = figures.class_accuracy_difference(pairs, num_classes)
    fig = figures.per_class_difference(diff, names, seeds=len(pairs))
    caption = (
        f"Per-class test accuracy of f_θ (HDSM+LMTM) minus f_ϕ (LDSM+HMTM), each "
        f"linear-probed alone (paper Fig. 6); cell {cell}, mean over {len(pairs)} "
        f"seed(s); {compare.describe_data(runs)}."
    )
    return [_figure(fig, folder, f"{runs.grid}_per_class_theta_phi", caption)]


def _curves(
    runs: GridRuns, report: compare.GridReport, folder: Path, _runs_dir: Path, _opts: FigureOptions
) -> list[dict]:
    done = runs.finished
    keys = [c.removeprefix("metrics.") for c in done.columns if c.startswith("metrics.")]
    keys = [
        k
        for k in keys
        if not k.startswith("final_") and (k.endswith("_loss") or k.endswith("_val_top1"))
    ]
    keys.sort(key=lambda k: (k != "pretrain_loss", k.endswith("_val_top1"), k))
    if not keys:
        return []
    hist = metric_histories(runs.uri, list(done["run_id"]), keys)
    # a curve has two or more steps in a run: a linear probe's val_top1 is logged once, at
    # its last L-BFGS iteration's step, and is a number of the table, not a curve
    curves = set(figures.curve_keys(hist))
    once = [k for k in keys if k not in curves and k in set(hist["key"])]
    keys = [k for k in keys if k in curves][:CURVE_PANELS]
    if not keys:
        if once:
            raise ConfigError(f"no per-epoch history: {', '.join(once)} logged once per run")
        return []
    meta = done.set_index("run_id")[["cell", "seed"]]
    hist = hist[hist["key"].isin(keys)].join(meta, on="run_id")
    order = {c: i for i, c in enumerate(runs.cells)}
    hist = hist.sort_values(by="cell", key=lambda s: s.map(order), kind="stable")
    fig = figures.training_curves(
        hist, keys, title=f"{runs.grid}: per-epoch metrics, mean ± std over seeds"
    )
    shown = "; ".join(f"{figures.metric_title(k)} ({k})" for k in keys)
    caption = (
        f"Training curves of {runs.grid} per epoch: {shown} (MLflow metric history), one "
        f"line per cell, mean ± std over seeds at each epoch."
        + (f" Logged once per run, so not drawn: {', '.join(once)}." if once else "")
        + _pretraining_note(hist, runs.cells)
    )
    return [_figure(fig, folder, f"{runs.grid}_curves", caption)]


def _pretraining_note(hist: pd.DataFrame, cells: Sequence[str]) -> str:
    """What a missing pretraining line means: the loss is logged by the unit that trained
    the checkpoint, and units that load it (or train none) draw no line of their own."""
    drawn = set(hist.loc[hist["key"] == "pretrain_loss", "cell"])
    silent = [c for c in cells if c not in drawn]
    if not drawn or not silent:
        return ""
    return (
        f" A pretraining is logged by the unit that trained its checkpoint: {', '.join(silent)} "
        "loaded a checkpoint another cell trained, or train none (random init), so they "
        "draw no pretraining line."
    )


def _embeddings(
    runs: GridRuns, report: compare.GridReport, folder: Path, runs_dir: Path, opts: FigureOptions
) -> list[dict]:

    cells = _grid_cells(report)
    cells = cells[cells["seeds"] > 0]
    if cells.empty:
        return []
    best = cells["mean"].idxmax()
    chosen = [runs.baseline] if runs.baseline in cells.index and runs.baseline != best else []
    chosen.append(best)

    done = runs.finished
    # cells that differ only after pretraining (Table 3's probes) share their encoders
    by_encoders: dict[str, tuple[list[str], dict]] = {}
    seed_used = None
    for cell in chosen:
        rows = done[done["cell"] == cell].sort_values("seed")
        if seed_used is not None and (rows["seed"] == seed_used).any():
            rows = rows[rows["seed"] == seed_used]
        run = rows.iloc[0]
        seed_used = int(run["seed"])
        config = load_artifact_json(runs.uri, run["run_id"], "config.json")
        digest = pretrain_digest(validate_config(config))
        by_encoders.setdefault(digest, ([], config))[0].append(cell)
    panels: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    names: list[str] = []
    for cells_sharing, config in by_encoders.values():
        feats, names = encoder_embeddings(config, runs_dir, opts.classes)
        label = " = ".join(cells_sharing)
        for enc, value in feats.items():
            panels[label if enc == "encoder" else f"{label}: f_{enc}"] = value
    fig = figures.embedding_scatter(panels, names, method=opts.embedding_method)
    method = "t-SNE" if opts.embedding_method == "tsne" else "PCA"
    classes = sorted({int(c) for _, y in panels.values() for c in y})
    caption = (
        f"{method} of pooled test-set encoder features (paper Figs. 5 / 7; the panel "
        f"titles name the method actually used) for {len(classes)} classes, seed "
        f"{seed_used}: {', '.join(panels)}."
    )
    return [_figure(fig, folder, f"{runs.grid}_embeddings", caption)]


def _dataset(
    runs: GridRuns, report: compare.GridReport, folder: Path, runs_dir: Path, _opts: FigureOptions
) -> list[dict]:

    run = runs.finished.iloc[0] if len(runs.finished) else None
    if run is None:
        return []
    cfg = validate_config(load_artifact_json(runs.uri, run["run_id"], "config.json"))
    if cfg.data.source != "synthetic" and not Path(cfg.data.source).exists():
        raise ConfigError(f"dataset {cfg.data.source} not found")
    path = resolve_dataset(cfg.data, runs_dir / "data")
    ds = SkeletonDataset(path)
    summary = summarize(ds, max_motion_samples=500)
    title = dataset_title(path)
    fig = figures.degree_motion(
        summary["motion_joints"], title=f"{title}: joint degree vs motion intensity"
    )
    caption = (
        f"Joint degree vs motion intensity (paper Fig. 1) of dataset {title} "
        f"({summary['motion_samples']} samples): mean displacement per frame of each "
        f"joint, and the mean ± std per degree."
    )
    return [_figure(fig, folder, "dataset_degree_motion", caption)]


def _masking_diagnostics(
    runs: GridRuns, folder: Path, runs_dir: Path, draws: int
) -> tuple[list[dict], dict[str, Any] | None]:
    """What each masking strategy of the grid's cells does to the grid's training clips
    (``asma-bench maskings --diagnose`` restricted to the strategies the cells use, with
    their settings): a table and two figures. ([], None) unless the grid compares
    maskings (its pretrained cells do not all mask alike)."""

    done = runs.finished.drop_duplicates("cell")
    configs = [
        validate_config(load_artifact_json(runs.uri, r["run_id"], "config.json"))
        for _, r in done.iterrows()
    ]
    configs = [c for c in configs if c.pretrain.epochs > 0]
    if draws <= 0 or not configs:
        return [], None
    first = configs[0]
    if first.data.source != "synthetic" and not Path(first.data.source).exists():
        raise ConfigError(f"dataset {first.data.source} not found")
    data = prepare_data(first.data, first.seed, runs_dir / "data")
    strategies: dict[str, Any] = {}
    per_cell: list[frozenset[str]] = []
    for cfg in configs:
        keys = set()
        for pair in objective_class(cfg.pretrain.objective).masks(cfg, data.layout):
            for s in pair:
                if s.name == "none":
                    continue
                law = s.params.get("law", "eq2")
                key = s.name + (f":{law}" if law != "eq2" else "")
                same = strategies.get(key)
                if same is not None and same.params != s.params:
                    key = f"{key} ({cfg.masking.n:g}, {cfg.masking.k:g})"
                strategies.setdefault(key, s)
                keys.add(key)
        per_cell.append(frozenset(keys))
    if not strategies or len(set(per_cell)) < 2:  # not a grid that compares maskings
        return [], None
    result = diagnose(data.train.x, data.layout, strategies, draws, augment=Augment(data.layout))
    # 2-D keypoints are image coordinates (y down), but the synthetic camera's y is up
    synthetic = first.data.source == "synthetic" or "synthetic" in _dataset_info(first, runs_dir)
    made = write_masking_diagnostics(result, strategies, data.train.x, data.layout, folder,
                                     y_down=data.layout.dims == 2 and not synthetic)  # fmt: skip
    table = {
        "caption": f"What each masking strategy of the grid masks: {result.draws} draws per "
        f"strategy on augmented training clips of {compare.describe_data(runs)}",
        "html": result.summary.to_html(float_format=lambda v: f"{v:.3f}", border=0),
        "files": {"Markdown": "maskings.md", "CSV": "maskings.csv",
                  "CSV (per joint)": "maskings_joints.csv"},
    }  # fmt: skip
    return made, table


def _dataset_info(cfg: Any, runs_dir: Path) -> dict:  # noqa: ANN401 - a validated Config
    """The info.json of the dataset folder ``cfg.data`` names ({} for generated data)."""
    if cfg.data.source == "synthetic":
        return {}
    try:
        return dataset_info(resolve_dataset(cfg.data, runs_dir / "data"))
    except AsmaBenchError:
        return {}


def write_masking_diagnostics(
    result: Any,  # noqa: ANN401 - a strategies.diagnose.Diagnosis
    strategies: dict[str, Any],
    clips: Any,  # noqa: ANN401 - (N, C, T, V, M) tensor
    layout: Any,  # noqa: ANN401 - a SkeletonLayout
    folder: Path,
    figure_folder: Path | None = None,
    y_down: bool | None = None,
) -> list[dict]:
    """``maskings.md``, ``maskings.csv``, ``maskings_joints.csv`` in ``folder`` and the two
    figures (joints coloured by masked share; a clip's motion curve with each temporal
    strategy's frames) in ``figure_folder`` (default ``folder/figures``); returns the
    figures' entries. ``y_down`` draws the skeletons in image orientation (default: for a
    2-D layout, whose keypoints are image coordinates). Shared by
    ``maskings --diagnose --out`` and the report of a grid that compares maskings."""

    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "maskings.md", to_markdown(result))
    atomic_write_text(folder / "maskings.csv", result.summary.to_csv())
    atomic_write_text(folder / "maskings_joints.csv", result.joints.to_csv())
    fig_dir = figure_folder or folder / "figures"
    made = []
    spatial = [n for n, s in strategies.items() if s.kind in ("spatial", "spatiotemporal")]
    if spatial:
        fig = figures.masking_skeletons(
            result.joints, mean_pose(clips), layout.edges, spatial,
            title=f"per-joint masked share ({result.draws} draws)",
            y_down=layout.dims == 2 if y_down is None else y_down,
        )  # fmt: skip
        made.append(_figure(fig, fig_dir, "maskings_joints",
                            "Each joint coloured by how often each spatial masking hides it "
                            "(share of its cells masked)."))  # fmt: skip
    motion, frames = example_clip(clips, strategies)
    if frames:
        made.append(_figure(figures.masking_motion_curve(motion, frames), fig_dir,
                            "maskings_motion",
                            "A training clip's frame motion a_t (eq. 4) and the frames each "
                            "temporal masking hides."))  # fmt: skip
    return made
