"""Which factor moves accuracy: a two-way analysis of variance of a crossed grid.

A grid whose cells cross two label axes (``masking_factorial``: spatial × temporal
masking) is a randomised block design with the seed as block: the seed fixes the data
split and the validation carve-out, and under ``rng="streams"`` (the default) also the
initial weights, the batch order and every augmented view, which all cells then share;
cells differ only in their masks. (Runs made with ``rng="shared"`` share only the split and
the initial weights across cells whose masks draw differently, and the block assumption
holds less well for them.) The model is

    y_ijs = μ + α_i + β_j + (αβ)_ij + ρ_s + ε_ijs,   ε ~ N(0, σ²),

fitted by least squares on dummy-coded factors (numpy's ``lstsq``). Each effect's sum of
squares is the rise in the residual sum of squares when the term is dropped from the
model that keeps every term not containing it (Type II; Montgomery, *Design and Analysis
of Experiments*, ch. 5; Fox, *Applied Regression Analysis*, 8.2.4), its degrees of
freedom the drop in the model's rank. In a complete balanced design these are the
classical sums of squares (tested); a grid with a failed unit or a missing seed is still
analysed, and the notes name what is missing. Each effect is tested by F = MS_effect /
MS_E; effect size partial η² = SS / (SS + SS_E).

Each level's marginal mean gets a 95% interval that includes the seed-to-seed variance:
the level's mean is computed per seed (over its cells that seed finished) and the
interval is Student's t over those per-seed means (S − 1 degrees of freedom), so a level
mean is not treated as known to the precision of the within-seed residual. Each factor
gets the smallest difference between two of its levels that a two-sided test on the
marginal means would detect at α = 0.05 with 80% power (noncentral t, df_E; the seed
cancels in a difference of levels, so MS_E is the right error there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from asma_bench.errors import ConfigError
from asma_bench.reports.stats import detectable_shift

#: Fewer seeds than this give no analysis (the block and the error need replication).
MIN_BLOCKS = 2


@dataclass
class Factorial:
    """A two-way ANOVA with blocks: the effects table, the marginal means and notes."""

    factors: tuple[str, str]
    effects: pd.DataFrame  # index: source; columns ss, df, ms, F, p, partial_eta2
    marginal: pd.DataFrame  # factor, level, mean, low, high, n (runs), seeds
    mdd: dict[str, float]  # factor -> minimum detectable difference between two levels
    seeds: int
    notes: list[str] = field(default_factory=list)
    missing: list[tuple[str, str, object]] = field(default_factory=list)  # (a, b, seed)


def _codes(values: pd.Series) -> np.ndarray:
    return pd.factorize(values, sort=False)[0]


def _term_columns(df: pd.DataFrame, a: str, b: str, block: str) -> dict[str, np.ndarray]:
    """Each term's indicator columns (the model's rank, not the column count, gives its
    degrees of freedom, so no level is dropped)."""
    ca, cb, cs = _codes(df[a]), _codes(df[b]), _codes(df[block])
    codes = {"a": ca, "b": cb, "interaction": ca * (cb.max() + 1) + cb, "block": cs}
    return {term: np.eye(c.max() + 1)[c] for term, c in codes.items()}


def _block_means(values: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """The mean of ``values`` in each block present."""
    present, inverse = np.unique(blocks, return_inverse=True)
    return np.bincount(inverse, weights=values) / np.bincount(inverse)


def _rss(columns: dict[str, np.ndarray], terms: list[str], y: np.ndarray) -> tuple[float, int]:
    """Residual sum of squares and rank of the least-squares fit of an intercept and
    ``terms``."""
    x = np.column_stack([np.ones((len(y), 1)), *(columns[t] for t in terms)])
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    return float(((y - x @ beta) ** 2).sum()), int(rank)


def two_way_anova(
    df: pd.DataFrame,
    a: str,
    b: str,
    block: str = "seed",
    y: str = "value",
    alpha: float = 0.05,
    power: float = 0.8,
) -> Factorial:
    """Two-way ANOVA of ``y`` on factors ``a`` × ``b`` with ``block`` as a block factor.

    ``df`` has one row per (a, b, block) observation. The design may be unbalanced or
    miss observations (Type II sums of squares); it needs two levels of each factor, at
    least :data:`MIN_BLOCKS` blocks, at most one observation per (a, b, block), and one
    residual degree of freedom; else ConfigError.
    """
    levels_a = list(dict.fromkeys(df[a]))
    levels_b = list(dict.fromkeys(df[b]))
    blocks = sorted(dict.fromkeys(df[block]))
    na, nb, ns = len(levels_a), len(levels_b), len(blocks)
    if na < 2 or nb < 2:
        raise ConfigError(f"a factorial analysis needs two levels of each factor ({a}, {b})")
    if ns < MIN_BLOCKS:
        raise ConfigError(f"a factorial analysis needs at least {MIN_BLOCKS} seeds, got {ns}")
    if bool(df.duplicated([a, b, block]).any()):
        raise ConfigError(f"the grid has two observations of one ({a}, {b}, {block})")
    values = df[y].to_numpy(float)
    columns = _term_columns(df, a, b, block)
    fits = {}
    models = {
        "full": ["a", "b", "interaction", "block"],
        "additive": ["a", "b", "block"],
        "no_a": ["b", "block"],
        "no_b": ["a", "block"],
        "no_block": ["a", "b", "interaction"],
    }
    for name, terms in models.items():
        fits[name] = _rss(columns, terms, values)
    ss_error, rank_full = fits["full"]
    df_error = len(df) - rank_full
    if df_error < 1:
        raise ConfigError(
            f"the grid's {len(df)} observations leave no residual degree of freedom for a "
            f"{na}×{nb} factorial analysis"
        )
    ms_error = ss_error / df_error
    interaction = f"{a} × {b}"
    reduced = {a: ("no_a", "additive"), b: ("no_b", "additive"),
               interaction: ("additive", "full"), block: ("no_block", "full")}  # fmt: skip
    rows = []
    for source, (smaller, larger) in reduced.items():
        (rss_s, rank_s), (rss_l, rank_l) = fits[smaller], fits[larger]
        dof = rank_l - rank_s
        ss = max(rss_s - rss_l, 0.0)
        ms = ss / dof if dof else math.nan
        f = ms / ms_error if ms_error > 0 and dof else math.nan
        p = float(stats.f.sf(f, dof, df_error)) if np.isfinite(f) else math.nan
        eta = ss / (ss + ss_error) if ss + ss_error > 0 else math.nan
        rows.append({"source": source, "ss": ss, "df": dof, "ms": ms, "F": f, "p": p,
                     "partial_eta2": eta})  # fmt: skip
    rows.append({"source": "residual", "ss": ss_error, "df": df_error, "ms": ms_error,
                 "F": math.nan, "p": math.nan, "partial_eta2": math.nan})  # fmt: skip
    effects = pd.DataFrame(rows).set_index("source")

    marginal_rows = []
    mdd = {}
    blocks_of = _codes(df[block])
    for factor, levels in ((a, levels_a), (b, levels_b)):
        sizes = []
        column = df[factor].to_numpy()
        for level in levels:
            rows = column == level
            per_seed = _block_means(values[rows], blocks_of[rows])
            m = float(values[rows].mean())
            k = len(per_seed)
            sd = float(per_seed.std(ddof=1)) if k >= 2 else 0.0
            half = float(stats.t.ppf(0.975, k - 1)) * sd / math.sqrt(k) if sd > 0 else math.nan
            marginal_rows.append(
                {"factor": factor, "level": level, "mean": m, "low": m - half,
                 "high": m + half, "n": int(rows.sum()), "seeds": k}
            )  # fmt: skip
            sizes.append(int(rows.sum()))
        n_level = float(np.mean(sizes))  # runs per level (exact when balanced)
        mdd[factor] = detectable_shift(math.sqrt(2 * ms_error / n_level), df_error, alpha, power)
    present = set(zip(df[a], df[b], df[block], strict=True))
    missing = [
        (la, lb, s) for la in levels_a for lb in levels_b for s in blocks
        if (la, lb, s) not in present
    ]  # fmt: skip
    notes = []
    if ms_error == 0:
        notes.append("The residual variation is zero: no F test is possible.")
    if missing:
        shown = ", ".join(f"{la} × {lb} seed {s}" for la, lb, s in missing[:6])
        more = f" and {len(missing) - 6} more" if len(missing) > 6 else ""
        notes.append(
            f"Unbalanced: {len(missing)} of {na * nb * ns} (cell, seed) runs are missing "
            f"({shown}{more}); the sums of squares are Type II (each effect adjusted for the "
            f"others) and the marginal means average the runs present."
        )
    return Factorial((a, b), effects, pd.DataFrame(marginal_rows), mdd, ns, notes, missing)


def describe(result: Factorial, metric: str, alpha: float = 0.05) -> list[str]:
    """Plain sentences: which factor matters, at which size, and what the design can see."""
    a, b = result.factors
    out = []
    for source in (a, b, f"{a} × {b}"):
        r = result.effects.loc[source]
        if not np.isfinite(r["p"]):
            continue
        verdict = "matters" if r["p"] < alpha else "is not distinguished from noise"
        out.append(
            f"{source} {verdict} for {metric}: F({int(r['df'])}, "
            f"{int(result.effects.loc['residual', 'df'])}) = {r['F']:.2f}, p = {_p(r['p'])}, "
            f"partial η² = {r['partial_eta2']:.2f}."
        )
    for factor in (a, b):
        m = result.mdd[factor]
        if np.isfinite(m):
            out.append(
                f"With {result.seeds} seeds, two levels of {factor} that differ by less than "
                f"{m:.2f} points are missed more often than 1 time in 5 (α = {alpha}, 80% power)."
            )
    return out + result.notes


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def effects_table(result: Factorial) -> pd.DataFrame:
    """The ANOVA table for display (rounded strings)."""
    rows = []
    for source, r in result.effects.iterrows():
        rows.append({
            "source": source, "SS": f"{r['ss']:.2f}", "df": int(r["df"]), "MS": f"{r['ms']:.2f}",
            "F": "" if not np.isfinite(r["F"]) else f"{r['F']:.2f}",
            "p": "" if not np.isfinite(r["p"]) else _p(r["p"]),
            "partial η²": "" if not np.isfinite(r["partial_eta2"]) else f"{r['partial_eta2']:.2f}",
        })  # fmt: skip
    return pd.DataFrame(rows)


def marginal_table(result: Factorial) -> pd.DataFrame:
    """Marginal means of each level with their 95% intervals over seeds (rounded strings)."""
    m = result.marginal
    intervals = [
        f"[{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) else "–"
        for lo, hi in zip(m["low"], m["high"], strict=True)
    ]
    return pd.DataFrame({
        "factor": m["factor"], "level": m["level"], "mean": m["mean"].map(lambda v: f"{v:.2f}"),
        "95% interval": intervals, "runs": m["n"],
    })  # fmt: skip


def complete_crossing(
    labels: dict[str, dict[str, str]], cells: list[str], a: str, b: str
) -> tuple[list[str], list[str]]:
    """(cells kept, cells left out) forming the largest complete ``a`` × ``b`` crossing.

    The columns are the set of ``b`` levels shared by the most ``a`` levels (with at least
    two of them); an ``a`` level is kept when it has a cell at every one of those columns.
    ``masking_pairs`` (HDSM/LDSM × HMTM/LMTM plus random/random) gives its 2×2 core.
    """
    where: dict[tuple[str, str], str] = {}
    for cell in cells:
        lab = labels.get(cell, {})
        if a in lab and b in lab and "reference" not in lab:
            where.setdefault((lab[a], lab[b]), cell)
    rows: dict[str, set[str]] = {}
    for va, vb in where:
        rows.setdefault(va, set()).add(vb)
    shapes = [frozenset(s) for s in rows.values() if len(s) >= 2]
    if not shapes:
        return [], [c for c in cells if c in where.values()]
    columns = max(set(shapes), key=lambda s: (sum(s <= set(r) for r in shapes), len(s)))
    kept_rows = [va for va, s in rows.items() if columns <= s]
    if len(kept_rows) < 2:
        return [], list(where.values())
    kept = [where[(va, vb)] for va in kept_rows for vb in sorted(columns)]
    return kept, [c for c in where.values() if c not in kept]


def analyse_grid(
    per_seed: pd.DataFrame, labels: dict[str, dict[str, str]], cells: list[str], axes: list[str]
) -> tuple[Factorial | None, list[str]]:
    """The two-way ANOVA of a grid with two label axes, on its complete crossing and every
    run of it that finished (a failed unit leaves the design unbalanced, not unanalysed);
    (None, reason) when the grid cannot support one."""
    if len(axes) != 2:
        return None, []
    a, b = axes
    kept, left = complete_crossing(labels, cells, a, b)
    if not kept:
        return None, [f"No factorial analysis: the cells do not cross {a} and {b}."]
    done = per_seed[per_seed["cell"].isin(kept) & per_seed["value"].notna()]
    empty = [c for c in kept if not (done["cell"] == c).any()]
    if empty:
        return None, [
            f"No factorial analysis: cells {', '.join(empty)} of the {a} × {b} crossing "
            "have no finished run."
        ]
    frame = pd.DataFrame({
        a: [labels[c][a] for c in done["cell"]], b: [labels[c][b] for c in done["cell"]],
        "seed": done["seed"].to_numpy(), "value": done["value"].to_numpy(),
    })  # fmt: skip
    try:
        result = two_way_anova(frame, a, b)
    except ConfigError as exc:
        return None, [f"No factorial analysis: {exc}."]
    notes = []
    if left:
        notes.append(
            f"The factorial analysis covers the complete {a} × {b} crossing; "
            f"left out: {', '.join(left)}."
        )
    return result, notes
