"""The comparison of a grid's cells, as a :class:`GridReport`: one row per cell, mean ± std
over seeds, Δ against the baseline cell with its significance (the paired test over seeds,
the per-clip test, the pooled power), the notes that explain them and the caption;
:mod:`asma_bench.reports.render` writes it as Markdown, LaTeX and CSV.

Layouts follow the cells' ``labels``: the label axes become the leading columns (masking
pairs as spatial | temporal, Table 3's encoders, …). A grid whose cells form a full grid of
two numeric axes (Table 7's n × k) is also shown as a matrix. Failed units are counted and
explained, never shown as numbers; a cell without any finished run keeps its row ("no
result" / "failed (N units)") and the seeds column reads finished/expected when short.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from asma_bench.errors import ConfigError
from asma_bench.reports import stats
from asma_bench.reports.clips import per_clip_note, per_clip_test
from asma_bench.reports.factorial import Factorial, analyse_grid, describe
from asma_bench.reports.naming import dataset_title
from asma_bench.reports.results import (
    GridRuns,
    clip_outcome,
    load_predictions,
)
from asma_bench.training.metrics import knn_metric

log = logging.getLogger(__name__)

STAT_COLUMNS = [
    "mean",
    "std",
    "seeds",
    "failed",
    "pairs",
    "delta",
    "ci_low",
    "ci_high",
    "p_seeds",
    "p_seeds_adj",
    "p_samples",
    "p_samples_adj",
    "discordant",
    "clip_se",
    "clip_df",
    "sig",
    "sig_samples",
    "mdd",
    "mdd_low",
    "mdd_high",
]
SIG_THRESHOLDS = "* p < 0.05, ** p < 0.01 after correction"


@dataclass
class ReportOptions:
    """How comparisons are computed; every choice is written into the table's notes."""

    metric: str | None = None  # default: the grid's metric
    correction: str = "holm"
    seed_test: str = "ttest"
    per_clip: bool = True  # the per-clip test (crossed random effects; McNemar at 1 seed)
    confidence: float = 0.95
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.correction not in stats.CORRECTIONS:
            raise ConfigError(
                f"--correction must be one of {', '.join(stats.CORRECTIONS)}, "
                f"got {self.correction!r}"
            )
        if self.seed_test not in stats.SEED_TESTS:
            raise ConfigError(
                f"--seed-test must be one of {', '.join(stats.SEED_TESTS)}, got {self.seed_test!r}"
            )
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence}")


@dataclass
class GridReport:
    grid: str
    metric: str
    caption: str
    table: pd.DataFrame  # one row per cell (index: cell), label axes, expected, STAT_COLUMNS
    per_seed: pd.DataFrame  # cell, seed, status, value, run_id, reason
    axes: list[str]
    baseline: str | None
    notes: list[str] = field(default_factory=list)
    matrix: tuple[str, str] | None = None  # (row axis, column axis) for a matrix layout
    # the k-NN accuracy shown beside the metric (table columns knn_mean, knn_std,
    # knn_seeds); None when no finished run logged it (older stores, other protocols)
    knn: str | None = None
    # two-way ANOVA (seed as block) when the grid's cells cross two label axes
    factorial: Factorial | None = None


def build_grid_report(runs: GridRuns, options: ReportOptions | None = None) -> GridReport:
    """Summarise ``runs`` per cell and compare every cell with the baseline."""
    opts = options or ReportOptions()
    if len(runs.datasets) > 1:  # never one table averaging two datasets' runs
        raise ConfigError(
            f"grid {runs.grid!r} has runs on {len(runs.datasets)} datasets "
            f"({', '.join(runs.datasets)}): report each (GridRuns.for_dataset) and compare "
            "them with reports.datasets.across_datasets, as `asma-bench report` does"
        )
    metric = opts.metric or runs.metric
    seeds = runs.per_seed(metric)
    failures = runs.failures()
    axes = runs.axes()
    knn = knn_metric(metric)
    knn_seeds = runs.per_seed(knn) if knn else None
    if knn_seeds is None or not knn_seeds["value"].notna().any():
        knn, knn_seeds = None, None
    rows = []
    for cell in runs.cells:
        vals = seeds[(seeds["cell"] == cell) & seeds["value"].notna()]["value"]
        labels = runs.labels.get(cell, {})
        row = {"cell": cell, **_label_columns(labels, axes)}
        row.update(_mean_std(vals))
        if knn_seeds is not None:
            knn_vals = knn_seeds[(knn_seeds["cell"] == cell) & knn_seeds["value"].notna()]
            row.update({f"knn_{k}": v for k, v in _mean_std(knn_vals["value"]).items()})
        row.update(expected=len(runs.expected_seeds), failed=int((failures["cell"] == cell).sum()))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("cell")
    for col in STAT_COLUMNS:
        if col not in table:
            table[col] = math.nan if col not in ("discordant", "sig", "sig_samples") else ""
    if len(seeds) and not seeds["value"].notna().any():  # a typo, not a failed grid
        known = sorted(c.removeprefix("metrics.") for c in runs.runs if c.startswith("metrics."))
        raise ConfigError(
            f"--metric {metric!r}: no finished run of grid {runs.grid!r} has it "
            f"(metrics: {', '.join(known[:12])})"
        )

    notes: list[str] = list(runs.notes)
    if knn:
        notes.append(_knn_note(runs, metric, knn))
    if runs.baseline:
        notes += _compare(runs, seeds, table, metric, opts)
    notes += _failure_notes(failures)
    factorial, factorial_notes = analyse_grid(seeds, runs.labels, runs.cells, axes)
    notes += factorial_notes
    if factorial is not None:
        notes += describe(factorial, metric_label(metric), opts.alpha)
    per_seed = _per_seed_table(runs, seeds, failures)
    if knn_seeds is not None:
        knn_of = dict(zip(knn_seeds["run_id"], knn_seeds["value"], strict=True))
        per_seed["knn_value"] = per_seed["run_id"].map(knn_of).astype(float)
    return GridReport(
        runs.grid,
        metric,
        _caption(runs, metric, opts),
        table,
        per_seed,
        axes,
        runs.baseline,
        notes,
        _matrix_axes(runs, axes),
        knn,
        factorial,
    )


def _mean_std(vals: pd.Series) -> dict[str, float]:
    """mean, std (N−1) and the number of values."""
    n = len(vals)
    return {
        "mean": vals.mean() if n else math.nan,
        "std": vals.std(ddof=1) if n > 1 else math.nan,
        "seeds": n,
    }


def _knn_note(runs: GridRuns, metric: str, knn: str) -> str:
    ks = runs.param("linear.knn_k")
    k = f", k = {', '.join(ks)}" if ks else ""
    return (
        f"Column '{knn}': k-NN top-1 accuracy (%) of the frozen encoder's features (no "
        f"classifier trained{k}), mean ± std (N−1) over the seeds that logged it (their "
        f"number in brackets where it differs from column 'seeds'). Δ, CI and significance "
        f"compare '{metric}' only."
    )


# --------------------------------------------------------------------------- comparisons
def _compare(
    runs: GridRuns, seeds: pd.DataFrame, table: pd.DataFrame, metric: str, opts: ReportOptions
) -> list[str]:
    base = runs.baseline
    wide = seeds.pivot_table(index="seed", columns="cell", values="value", aggfunc="first")
    run_ids = seeds.pivot_table(index="seed", columns="cell", values="run_id", aggfunc="first")
    outcome = clip_outcome(metric) if opts.per_clip else None
    cache: dict[str, dict] = {}
    warnings: dict[str, list[str]] = {}
    kinds: set[str] = set()
    references = reference_cells(runs)
    others = [c for c in runs.cells if c != base and c in wide and base in wide]
    for cell in others:
        both = wide[[cell, base]].dropna()
        a, b = both[cell].to_numpy(), both[base].to_numpy()
        table.loc[cell, "pairs"] = len(both)
        if len(both) == 0:
            continue
        table.loc[cell, "delta"] = float(np.mean(a - b))
        seed_res = stats.paired_seed_test(a, b, opts.seed_test)
        lo, hi = stats.paired_t_interval(a, b, opts.confidence)
        table.loc[cell, ["ci_low", "ci_high", "p_seeds"]] = [lo, hi, seed_res.p_value]
        if seed_res.note:  # no p-value the data can support: 'n/a' and the reason
            _warn(warnings, f"p (seeds) n/a: {seed_res.note}", cell)
        else:
            _warn(warnings, stats.power_warning(seed_res, opts.alpha), cell)
        if outcome is None:
            continue
        pairs = []
        for seed in both.index:
            pa = _predictions(runs, run_ids.loc[seed, cell], outcome.name, cache)
            pb = _predictions(runs, run_ids.loc[seed, base], outcome.name, cache)
            if pa is not None and pb is not None:
                pairs.append((pa, pb))
        if not pairs:
            _warn(warnings, f"no '{outcome.name}' predictions to pair: per-clip test skipped", cell)
            continue
        try:
            test = per_clip_test(pairs, outcome, opts.alpha)
            table.loc[cell, list(test.columns)] = list(test.columns.values())
            for message in test.warnings:
                _warn(warnings, message, cell)
            kind = test.kind
        except ConfigError as exc:  # not the same test set
            _warn(warnings, f"{exc}: per-clip test skipped", cell)
            continue
        if kind:
            kinds.add(kind)

    # Holm's family is the grid's own comparisons; references are a family apart
    compared = [c for c in others if c not in references]
    apart = [c for c in others if c in references]
    for column in ("p_seeds", "p_samples"):
        adjusted = pd.Series(math.nan, index=table.index)
        for cells in (compared, apart):
            if cells:
                adjusted[cells] = stats.adjust_pvalues(
                    table.loc[cells, column].to_numpy(float), opts.correction
                )
        table[f"{column}_adj"] = adjusted
    table["sig"] = [stats.significance_marker(p) for p in table["p_seeds_adj"]]
    table["sig_samples"] = [stats.significance_marker(p) for p in table["p_samples_adj"]]
    table.loc[base, ["sig", "sig_samples"]] = "baseline"

    corr = {"holm": "Holm", "bh": "Benjamini–Hochberg", "none": "no"}[opts.correction]
    m_seeds = int(np.isfinite(table.loc[compared, "p_seeds"].to_numpy(float)).sum())
    m_samples = int(np.isfinite(table.loc[compared, "p_samples"].to_numpy(float)).sum())
    where = (
        f"; the reference rows ({', '.join(apart)}) are corrected apart, as a family of "
        f"their own, so they do not make the cells' comparisons stricter"
        if apart
        else ""
    )
    notes = [
        f"Δ = cell − {base}, averaged over the seeds both have (CSV column 'pairs'); "
        f"{opts.confidence:.0%} CI: Student's t over the paired seeds, Δ ± t_(n−1) · sd / √n.",
        f"p (seeds): {stats.TEST_NAMES[opts.seed_test]}, runs paired by seed; {corr} "
        f"correction over the {m_seeds} compared cells{where}. Column 'sig. (seeds)' marks "
        f"p (seeds): {SIG_THRESHOLDS}. This is the test across training runs, i.e. whether "
        f"the cell beats the baseline beyond seed-to-seed variation.",
    ]
    if outcome is not None:
        notes.append(per_clip_note(outcome, sorted(kinds), corr, m_samples, SIG_THRESHOLDS))
    else:
        why = "--no-per-clip" if not opts.per_clip else f"{metric} is no per-clip mean"
        notes.append(f"p (samples) and 'sig. (samples)': no per-clip test ({why}).")
    power = _pooled_power(wide, table, [base, *compared], opts, percent_metric(metric))
    if power:
        notes.append(power)
    for message, cells in warnings.items():
        notes.append(f"warning ({', '.join(cells)}): {message}")
    return notes


def reference_cells(runs: GridRuns) -> set[str]:
    """The grid's reference rows (``random_init``, ``supervised``): not masking cells."""
    return {c for c in runs.cells if "reference" in runs.labels.get(c, {})}


def seed_test_na(table: pd.DataFrame) -> pd.Series:
    """Cells compared with the baseline over seeds that got no p-value: too few paired
    seeds or differences of zero spread (the reason is in the notes)."""
    return (table["pairs"].fillna(0) > 0) & table["p_seeds"].isna()


def percent_metric(metric: str) -> bool:
    """Whether ``metric`` is an accuracy in percent (top-1, top-5, mean per-class)."""
    return metric.endswith(("_top1", "_top5", "mean_class_acc"))


def _pooled_power(
    wide: pd.DataFrame,
    table: pd.DataFrame,
    cells: list[str],
    opts: ReportOptions,
    percent: bool = True,
) -> str:
    """The power note from the pooled error of the compared cells (and the baseline) on
    the seeds they all finished; fills CSV columns 'mdd', 'mdd_low', 'mdd_high'."""
    present = [c for c in cells if c in wide]
    block = wide[present].dropna()
    if len(present) < 2 or len(block) < 2:
        return ""
    power = stats.pooled_power(block.to_numpy().T, opts.alpha, confidence=opts.confidence)
    if power is None:
        return ""
    table.loc[present, ["mdd", "mdd_low", "mdd_high"]] = [power.mdd, power.mdd_low, power.mdd_high]
    unit = "points" if percent else "(in the metric's units)"
    needs = []
    for target in (1.0, 2.0, 3.0) if percent else ():
        point, low, high = power.seeds_for(target)
        needs.append(f"{target:g} point{'s' if target != 1 else ''}: {_seeds(point)} "
                     f"({_seeds(low)}–{_seeds(high)})")  # fmt: skip
    tail = (
        "Seeds it needs to detect "
        + "; ".join(needs)
        + " (at the estimated spread, and at the interval's ends)."
        if needs
        else ""
    )
    return (
        f"Power: pooled over the {power.cells} compared cells and {power.seeds} seeds (a "
        f"cells × seeds block design; {power.df} degrees of freedom for the error), a paired "
        f"difference between two cells has standard deviation {power.sd_diff:.3g} {unit} "
        f"({opts.confidence:.0%} interval {power.sd_low:.3g}–{power.sd_high:.3g}). The "
        f"paired t-test over these {power.seeds} seeds (α = {opts.alpha:g} two-sided, before "
        f"correction) detects a Δ of {power.mdd:.3g} {unit} with 80% power "
        f"(interval {power.mdd_low:.3g}–{power.mdd_high:.3g}; CSV columns 'mdd', "
        f"'mdd_low', 'mdd_high'). " + tail
    ).strip()


def _seeds(n: int | None) -> str:
    return "over 1000" if n is None else str(n)


def _predictions(runs: GridRuns, run_id: object, name: str, cache: dict) -> object | None:
    if not isinstance(run_id, str):
        return None
    if run_id not in cache:
        try:
            cache[run_id] = load_predictions(runs.uri, run_id)
        except Exception as exc:  # a missing artifact must not stop the report
            log.warning("run %s: no predictions (%s)", run_id, exc)
            cache[run_id] = {}
    return cache[run_id].get(name)


def _warn(warnings: dict[str, list[str]], message: str, cell: str) -> None:
    if message:
        warnings.setdefault(message, []).append(cell)


# --------------------------------------------------------------------------- pieces
def _label_columns(labels: dict[str, str], axes: list[str]) -> dict[str, str]:
    if not axes:
        return {}
    if "reference" in labels and not any(a in labels for a in axes):
        return {
            a: (f"{labels['reference']} (reference)" if i == 0 else "") for i, a in enumerate(axes)
        }
    return {a: str(labels.get(a, "")) for a in axes}


def _failure_notes(failures: pd.DataFrame) -> list[str]:
    notes = []
    for _, f in failures.sort_values(["cell", "seed"]).iterrows():
        reason = f["reason"] or "no reason recorded"
        notes.append(f"{f['status']}: {f['cell']} seed {f['seed']}: {reason}")
    return notes


def _per_seed_table(runs: GridRuns, seeds: pd.DataFrame, failures: pd.DataFrame) -> pd.DataFrame:
    """One row per unit: FINISHED (with its value), FAILED / KILLED / RUNNING (with the
    reason) and MISSING (expected, but no run in the store)."""
    done = seeds.assign(status="FINISHED", reason="")
    failed = failures.assign(value=math.nan, run_id="")
    missing = pd.DataFrame(
        [(c, s) for c, miss in runs.missing.items() for s in miss], columns=["cell", "seed"]
    ).assign(status="MISSING", reason="no run in the store", value=math.nan, run_id="")
    parts = [done, failed[done.columns]] + ([missing[done.columns]] if len(missing) else [])
    out = pd.concat(parts, ignore_index=True)
    order = {c: i for i, c in enumerate(runs.cells)}
    out["_o"] = out["cell"].map(order)
    return out.sort_values(["_o", "seed"]).drop(columns="_o").reset_index(drop=True)


def _matrix_axes(runs: GridRuns, axes: list[str]) -> tuple[str, str] | None:
    """Two numeric axes whose values form a full grid (Table 7's n × k)."""
    if len(axes) != 2:
        return None
    pts = [
        (runs.labels[c].get(axes[0]), runs.labels[c].get(axes[1]))
        for c in runs.cells
        if "reference" not in runs.labels.get(c, {})
    ]
    if any(r is None or c is None or not is_number(r) or not is_number(c) for r, c in pts):
        return None
    rows, cols = {r for r, _ in pts}, {c for _, c in pts}
    return (axes[0], axes[1]) if len(set(pts)) == len(rows) * len(cols) == len(pts) else None


def is_number(v: str) -> bool:
    """Whether a label reads as a number (numeric axes: n, k, τ, layers)."""
    try:
        float(v)
    except ValueError:
        return False
    return True


def describe_data(runs: GridRuns) -> str:
    """The data a grid's numbers come from: ``NW-UCLA, split xview``; for a transfer grid,
    where the scores were measured (the target) and what the encoders were pretrained on."""
    here = _describe_source(runs, "data")
    if runs.param("transfer.target.source"):
        target = _describe_source(runs, "transfer.target")
        return f"{target} (pretrained on {here})"
    return here


def _describe_source(runs: GridRuns, key: str) -> str:
    parts = []
    for src in runs.param(f"{key}.source") or ["?"]:
        if src == "synthetic":
            presets = runs.param(f"{key}.preset")
            parts.append(f"synthetic ({', '.join(presets)} preset)" if presets else "synthetic")
        else:
            parts.append(dataset_title(src) if Path(src).is_dir() else Path(src).name or src)
    splits = runs.param(f"{key}.split")
    return f"{', '.join(parts)}, split {', '.join(splits) or '?'}"


def metric_label(metric: str) -> str:
    words = metric.replace("top1", "top-1").replace("top5", "top-5").replace("_", " ")
    return (
        words.replace("mean class acc", "mean per-class accuracy")
        .replace("top-1", "top-1 accuracy")
        .replace("top-5", "top-5 accuracy")
    )


def _caption(runs: GridRuns, metric: str, opts: ReportOptions) -> str:
    protocols = runs.param("protocol")
    table = f" ({runs.table})" if runs.table else ""
    text = (
        f"{runs.grid}{table}: {metric_label(metric)} (%), mean ± std (N−1) over seeds. "
        f"Data: {describe_data(runs)}; protocol {', '.join(protocols) or '?'}; "
        f"profile {runs.profile or '?'}."
    )
    if runs.baseline:
        corr = {"holm": "Holm", "bh": "Benjamini–Hochberg", "none": "no"}[opts.correction]
        text += (
            f" Δ against {runs.baseline} with {opts.confidence:.0%} paired t-interval; "
            f"p-values after {corr} correction."
        )
    return text
