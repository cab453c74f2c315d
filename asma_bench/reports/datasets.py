"""One analysis across datasets: a grid run on several datasets, the dataset as a block.

Each dataset keeps its own report (table, tests, figures). Beside them, every cell is
compared with the baseline on all datasets at once (:func:`~asma_bench.reports.stats.
blocked_paired_test`): each dataset's per-seed paired differences, the dataset as a
block, the datasets weighted alike. An effect that is consistent across datasets then
shows with fewer seeds per dataset, the way a paper's table reads across NTU-60, NTU-120
and PKU-MMD; a heterogeneity test says when the effect is not consistent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from asma_bench.reports import stats
from asma_bench.reports.compare import SIG_THRESHOLDS, GridReport, metric_label
from asma_bench.reports.naming import dataset_title, dataset_titles
from asma_bench.reports.render import fmt_p, fmt_value, label_frame, latex_table, markdown_table


@dataclass
class AcrossDatasets:
    grid: str
    metric: str
    baseline: str
    datasets: list[str]
    table: pd.DataFrame  # index: cell; axes, per-dataset mean/std/seeds, the combined test
    axes: list[str]
    notes: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # dataset → its title (columns)

    def title(self, dataset: str) -> str:
        """The dataset's column title (:func:`dataset_titles`)."""
        return self.names.get(dataset) or dataset_title(dataset)

    @property
    def caption(self) -> str:
        return (
            f"{self.grid} across {len(self.datasets)} datasets "
            f"({', '.join(self.title(d) for d in self.datasets)}): "
            f"{metric_label(self.metric)} (%), mean ± std (N−1) over seeds per dataset; Δ "
            f"against {self.baseline} averaged over the datasets, the dataset as a block."
        )


def across_datasets(
    reports: dict[str, GridReport], correction: str = "holm", confidence: float = 0.95,
    alpha: float = 0.05,
) -> AcrossDatasets:  # fmt: skip
    """Compare every cell with the baseline over all ``reports`` (dataset → its report)."""
    first = next(iter(reports.values()))
    base = first.baseline
    if base is None:
        raise ValueError("an analysis across datasets needs the grid's baseline")
    axes = first.axes
    cells = list(first.table.index)
    refs = [c for c in cells if _is_reference(first.table, c, axes)]
    rows = []
    names = dataset_titles(list(reports))
    per_seed = {
        ds: r.per_seed[r.per_seed["status"] == "FINISHED"].pivot_table(
            index="seed", columns="cell", values="value", aggfunc="first"
        )
        for ds, r in reports.items()
    }
    for cell in cells:
        row: dict[str, object] = {"cell": cell}
        for a in axes:
            row[a] = first.table.loc[cell, a]
        for ds, r in reports.items():
            name = names[ds]
            for col in ("mean", "std", "seeds"):
                row[f"{name}:{col}"] = r.table.loc[cell, col] if cell in r.table.index else math.nan
        if cell != base:
            groups = []
            for wide in per_seed.values():
                if cell in wide and base in wide:
                    both = wide[[cell, base]].dropna()
                    groups.append((both[cell] - both[base]).to_numpy())
            res = stats.blocked_paired_test(groups, confidence)
            row.update(delta=res.estimate, ci_low=res.low, ci_high=res.high, se=res.se,
                       df=res.df, p=res.result.p_value, p_heterogeneity=res.heterogeneity_p,
                       datasets_compared=len([g for g in groups if len(g) >= 2]))  # fmt: skip
        rows.append(row)
    table = pd.DataFrame(rows).set_index("cell")
    for col in ("delta", "ci_low", "ci_high", "se", "df", "p", "p_heterogeneity"):
        if col not in table:
            table[col] = math.nan
    compared = [c for c in cells if c != base and c not in refs]
    apart = [c for c in cells if c != base and c in refs]
    table["p_adj"] = math.nan
    for family in (compared, apart):
        if family:
            table.loc[family, "p_adj"] = stats.adjust_pvalues(
                table.loc[family, "p"].to_numpy(float), correction
            )
    table["sig"] = [stats.significance_marker(p) for p in table["p_adj"]]
    table.loc[base, "sig"] = "baseline"
    corr = {"holm": "Holm", "bh": "Benjamini–Hochberg", "none": "no"}[correction]
    notes = [
        f"Δ = cell − {base}: the mean over datasets of each dataset's mean paired difference "
        f"over seeds (every dataset weighted alike); {confidence:.0%} interval and p from "
        f"Student's t with the seed-to-seed variance pooled within datasets (CSV columns "
        f"'se', 'df'); {corr} correction over the {len(compared)} compared cells"
        + (f", the reference rows ({', '.join(apart)}) apart" if apart else "")
        + f". 'sig.': {SIG_THRESHOLDS}.",
        "p (heterogeneity): F-test that the difference is the same on every dataset; a "
        "small value means the average over datasets hides an effect that differs between "
        "them (read each dataset's own report).",
    ]
    power = _pooled_power(per_seed, [base, *compared], alpha, confidence)
    if power:
        notes.append(power)
    return AcrossDatasets(first.grid, first.metric, base, list(reports), table, axes, notes,
                          names)  # fmt: skip


def _is_reference(table: pd.DataFrame, cell: str, axes: list[str]) -> bool:
    return bool(axes) and str(table.loc[cell, axes[0]]).endswith("(reference)")


def _pooled_power(
    per_seed: dict[str, pd.DataFrame], cells: list[str], alpha: float, confidence: float
) -> str:
    """What the combined test detects: the residual of each dataset's cells × seeds block
    design pooled over datasets."""
    ss = 0.0
    df = 0
    seeds = []
    for wide in per_seed.values():
        present = [c for c in cells if c in wide]
        block = wide[present].dropna()
        if len(present) < 2 or len(block) < 2:
            continue
        part_ss, part_df = stats.block_residual(block.to_numpy().T)
        ss += part_ss
        df += part_df
        seeds.append(len(block))
    if df < 1 or ss <= 0 or len(seeds) < 2:
        return ""
    sds = stats.paired_sd_interval(ss, df, confidence)
    d = len(seeds)

    def mdd(sd: float, per: list[int]) -> float:
        se = sd * math.sqrt(sum(1.0 / s for s in per)) / len(per)
        return stats.detectable_shift(se, sum(s - 1 for s in per), alpha, 0.8)

    found = [mdd(sd, seeds) for sd in sds]
    needs = []
    for target in (1.0, 2.0, 3.0):
        n = next((k for k in range(2, 1001) if mdd(sds[0], [k] * d) <= target), None)
        needs.append(f"{target:g}: {'over 1000' if n is None else n}")
    return (
        f"Power across datasets: a paired difference has standard deviation {sds[0]:.2f} "
        f"points within a dataset (pooled over the {d} datasets' cells × seeds designs, {df} "
        f"degrees of freedom; interval {sds[1]:.2f}–{sds[2]:.2f}); with these seeds the "
        f"combined test detects a Δ of {found[0]:.2f} points with 80% power (interval "
        f"{found[1]:.2f}–{found[2]:.2f}); seeds per dataset it needs for a Δ of "
        + ", ".join(needs)
        + " points."
    )


def display_rows(result: AcrossDatasets) -> pd.DataFrame:
    """The table across datasets as text cells (Markdown, LaTeX, HTML, the terminal)."""
    t = result.table
    out = label_frame(t, result.axes)
    for ds in result.datasets:
        name = result.title(ds)
        out[name] = [_mean_std(r, name) for _, r in t.iterrows()]
    out["Δ (all datasets)"] = [fmt_value(d, sign=True) for d in t["delta"]]
    out["CI"] = [
        f"[{fmt_value(lo, sign=True)}, {fmt_value(hi, sign=True)}]" if np.isfinite(lo) else "–"
        for lo, hi in zip(t["ci_low"], t["ci_high"], strict=True)
    ]
    out["p"] = [fmt_p(p) for p in t["p_adj"]]
    out["sig."] = t["sig"]
    out["p (heterogeneity)"] = [fmt_p(p) for p in t["p_heterogeneity"]]
    out.loc[result.baseline, ["CI", "p", "sig.", "p (heterogeneity)"]] = ""
    out.loc[result.baseline, "Δ (all datasets)"] = "(baseline)"
    return out.reset_index(drop=True)


def _mean_std(row: pd.Series, name: str) -> str:
    n, mean, std = row[f"{name}:seeds"], row[f"{name}:mean"], row[f"{name}:std"]
    if not n or not np.isfinite(n):
        return "–"
    return f"{fmt_value(mean)} ± {fmt_value(std)}" if n > 1 else f"{fmt_value(mean)} (1 seed)"


def write_across(result: AcrossDatasets, folder: Path) -> dict[str, Path]:
    """``<grid>_datasets.md``, ``.tex`` and ``.csv`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = display_rows(result)
    paths = {k: folder / f"{result.grid}_datasets{s}" for k, s in
             (("markdown", ".md"), ("latex", ".tex"), ("csv", ".csv"))}  # fmt: skip
    md = [f"**Table: {result.caption}**", "", markdown_table(rows), ""]
    md += [f"- {n}" for n in result.notes]
    paths["markdown"].write_text("\n".join(md) + "\n", encoding="utf-8")
    paths["latex"].write_text(
        latex_table(rows, result.caption, f"tab:{result.grid}-datasets", result.notes) + "\n",
        encoding="utf-8",
    )
    result.table.assign(metric=result.metric).to_csv(paths["csv"])
    return paths
