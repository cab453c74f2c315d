"""Which factor moves accuracy: a two-way analysis of variance of a crossed grid.

A grid whose cells cross two label axes (``masking_factorial``: spatial × temporal
masking) is a randomised complete block design when every cell has run with the same
seeds: the seed is the block (it fixes the data split, the initialisation and the
augmentation draws, which every cell shares). The model is

    y_ijs = μ + α_i + β_j + (αβ)_ij + ρ_s + ε_ijs,   ε ~ N(0, σ²),

fitted by the classical sums of squares of a balanced design (Montgomery, *Design and
Analysis of Experiments*, ch. 5 and 4.2):

    SS_A  = b·s·Σ_i (ȳ_i·· − ȳ)²          df a − 1
    SS_B  = a·s·Σ_j (ȳ_·j· − ȳ)²          df b − 1
    SS_AB = s·Σ_ij (ȳ_ij· − ȳ_i·· − ȳ_·j· + ȳ)²   df (a − 1)(b − 1)
    SS_S  = a·b·Σ_s (ȳ_··s − ȳ)²          df s − 1
    SS_E  = SS_total − the above           df (ab − 1)(s − 1)

Each effect is tested by F = MS_effect / MS_E. Effect size: partial η² = SS / (SS + SS_E).
Each level's marginal mean gets a 95% interval ȳ ± t_{0.975, df_E} √(MS_E / n_level), and
each factor the smallest difference between two of its levels that a two-sided t-test on
the marginal means would detect at α = 0.05 with 80% power (noncentral t, df_E).
An unbalanced or incomplete grid (a cell missing a seed) is not analysed: the sums of
squares above would no longer partition the variation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from asma_bench.errors import ConfigError
from asma_bench.reports.stats import detectable_shift

#: Fewer common seeds than this give no analysis (the error term has (ab − 1)(s − 1) df).
MIN_BLOCKS = 2


@dataclass
class Factorial:
    """A two-way ANOVA with blocks: the effects table, the marginal means and notes."""

    factors: tuple[str, str]
    effects: pd.DataFrame  # index: source; columns ss, df, ms, F, p, partial_eta2
    marginal: pd.DataFrame  # factor, level, mean, low, high, n
    mdd: dict[str, float]  # factor -> minimum detectable difference between two levels
    seeds: int
    notes: list[str] = field(default_factory=list)


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

    ``df`` has one row per (a, b, block) observation; the design must be complete and
    balanced (every a × b cell observed once in every block), else ConfigError.
    """
    levels_a = list(dict.fromkeys(df[a]))
    levels_b = list(dict.fromkeys(df[b]))
    blocks = sorted(dict.fromkeys(df[block]))
    na, nb, ns = len(levels_a), len(levels_b), len(blocks)
    if na < 2 or nb < 2:
        raise ConfigError(f"a factorial analysis needs two levels of each factor ({a}, {b})")
    if ns < MIN_BLOCKS:
        raise ConfigError(f"a factorial analysis needs at least {MIN_BLOCKS} seeds, got {ns}")
    counts = df.groupby([a, b, block]).size()
    if len(counts) != na * nb * ns or bool((counts != 1).any()):
        raise ConfigError(
            f"the grid is not a complete {na}×{nb} crossing observed once per seed "
            f"({len(df)} observations for {na * nb * ns} expected)"
        )
    cube = np.empty((na, nb, ns))
    pos_a = {v: i for i, v in enumerate(levels_a)}
    pos_b = {v: i for i, v in enumerate(levels_b)}
    pos_s = {v: i for i, v in enumerate(blocks)}
    for row in df.itertuples(index=False):
        r = row._asdict()
        cube[pos_a[r[a]], pos_b[r[b]], pos_s[r[block]]] = float(r[y])
    grand = cube.mean()
    mean_a = cube.mean(axis=(1, 2))
    mean_b = cube.mean(axis=(0, 2))
    mean_s = cube.mean(axis=(0, 1))
    mean_ab = cube.mean(axis=2)
    ss = {
        a: nb * ns * float(((mean_a - grand) ** 2).sum()),
        b: na * ns * float(((mean_b - grand) ** 2).sum()),
        f"{a} × {b}": ns
        * float(((mean_ab - mean_a[:, None] - mean_b[None, :] + grand) ** 2).sum()),
        block: na * nb * float(((mean_s - grand) ** 2).sum()),
    }
    dof = {a: na - 1, b: nb - 1, f"{a} × {b}": (na - 1) * (nb - 1), block: ns - 1}
    ss_total = float(((cube - grand) ** 2).sum())
    ss_error = max(ss_total - sum(ss.values()), 0.0)
    df_error = (na * nb - 1) * (ns - 1)
    ms_error = ss_error / df_error
    rows = []
    for source, s in ss.items():
        ms = s / dof[source]
        f = ms / ms_error if ms_error > 0 else math.nan
        p = float(stats.f.sf(f, dof[source], df_error)) if ms_error > 0 else math.nan
        eta = s / (s + ss_error) if s + ss_error > 0 else math.nan
        rows.append(
            {"source": source, "ss": s, "df": dof[source], "ms": ms, "F": f, "p": p,
             "partial_eta2": eta}
        )  # fmt: skip
    rows.append({"source": "residual", "ss": ss_error, "df": df_error, "ms": ms_error,
                 "F": math.nan, "p": math.nan, "partial_eta2": math.nan})  # fmt: skip
    effects = pd.DataFrame(rows).set_index("source")

    crit = float(stats.t.ppf(0.975, df_error))
    marginal_rows = []
    mdd = {}
    for factor, levels, means, n in (
        (a, levels_a, mean_a, nb * ns),
        (b, levels_b, mean_b, na * ns),
    ):
        half = crit * math.sqrt(ms_error / n)
        for level, m in zip(levels, means, strict=True):
            marginal_rows.append(
                {"factor": factor, "level": level, "mean": float(m),
                 "low": float(m) - half, "high": float(m) + half, "n": n}
            )  # fmt: skip
        mdd[factor] = detectable_shift(math.sqrt(2 * ms_error / n), df_error, alpha, power)
    notes = []
    if ms_error == 0:
        notes.append("The residual variation is zero: no F test is possible.")
    return Factorial((a, b), effects, pd.DataFrame(marginal_rows), mdd, ns, notes)


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
    """Marginal means of each level with their 95% intervals (rounded strings)."""
    m = result.marginal
    intervals = [f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(m["low"], m["high"], strict=True)]
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
    """The two-way ANOVA of a grid with two label axes, on its complete crossing and the
    seeds every kept cell finished; (None, reason) when the grid cannot support one."""
    if len(axes) != 2:
        return None, []
    a, b = axes
    kept, left = complete_crossing(labels, cells, a, b)
    if not kept:
        return None, [f"No factorial analysis: the cells do not cross {a} and {b}."]
    done = per_seed[per_seed["cell"].isin(kept) & per_seed["value"].notna()]
    common = set.intersection(*(set(done[done["cell"] == c]["seed"]) for c in kept))
    if len(common) < MIN_BLOCKS:
        return None, [
            f"No factorial analysis: it needs at least {MIN_BLOCKS} seeds finished by every "
            f"cell of the {a} × {b} crossing ({len(common)} are)."
        ]
    done = done[done["seed"].isin(common)]
    frame = pd.DataFrame({
        a: [labels[c][a] for c in done["cell"]], b: [labels[c][b] for c in done["cell"]],
        "seed": done["seed"].to_numpy(), "value": done["value"].to_numpy(),
    })  # fmt: skip
    result = two_way_anova(frame, a, b)
    notes = []
    if left:
        notes.append(
            f"The factorial analysis covers the complete {a} × {b} crossing; "
            f"left out: {', '.join(left)}."
        )
    dropped = sorted(set(per_seed[per_seed["cell"].isin(kept)]["seed"]) - common)
    if dropped:
        notes.append(
            f"Seeds {', '.join(map(str, dropped))} are left out of the factorial analysis: "
            "not every cell finished them."
        )
    return result, notes
