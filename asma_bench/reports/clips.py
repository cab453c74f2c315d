"""The per-clip comparison of a cell with the grid's baseline: each test clip's outcome
under the two cells' predictions, paired by dataset index — McNemar's test for one seed,
a crossed random-effects test (seed and clip random) for several — and the notes' words
for it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asma_bench.errors import ConfigError
from asma_bench.reports import stats
from asma_bench.reports.results import ClipOutcome
from asma_bench.training.metrics import Predictions


@dataclass
class ClipTest:
    """One cell's per-clip test against the baseline: which test (``crossed``,
    ``mcnemar_exact``, ``mcnemar_chi2``, or "" when none applies), the table columns it
    fills and the warnings it leaves for the notes."""

    kind: str
    columns: dict[str, object] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def per_clip_test(
    pairs: list[tuple[Predictions, Predictions]], outcome: ClipOutcome, alpha: float = 0.05
) -> ClipTest:
    """The per-clip test of a cell against the baseline from (cell, baseline) prediction
    pairs, one per seed: McNemar's test for one seed (correctness only), the crossed
    random-effects test (seed and clip random) for several."""
    if len(pairs) == 1:
        if outcome.outcome != "top1":
            return ClipTest("", warnings=["one seed: no per-clip test of a loss (needs two seeds)"])
        b, c, _ = stats.discordant_counts(*pairs[0])
        mc = stats.mcnemar_test(b, c)
        kind = "mcnemar_exact" if mc.test == "mcnemar_exact" else "mcnemar_chi2"
        warning = stats.power_warning(mc, alpha)
        return ClipTest(kind, {"p_samples": mc.p_value, "discordant": f"{b}/{c}"},
                        [warning] if warning else [])  # fmt: skip
    res = stats.crossed_clip_test(paired_clip_differences(pairs, outcome))
    columns = {"p_samples": res.result.p_value, "clip_se": res.se, "clip_df": res.df}
    warnings = []
    if res.result.note and not np.isfinite(res.result.p_value):
        warnings.append(f"p (samples) n/a: {res.result.note}")
    return ClipTest("crossed", columns, warnings)


def paired_clip_differences(
    pairs: list[tuple[Predictions, Predictions]], outcome: ClipOutcome
) -> np.ndarray:
    """(seeds, clips): cell − baseline per clip and seed, on the clips every seed's two
    prediction sets share (paired by dataset index). ConfigError when they share none or
    label a clip differently (not one test set)."""
    common = None
    for pa, pb in pairs:
        for p in (pa, pb):
            common = p.indices if common is None else np.intersect1d(common, p.indices)
    if common is None or len(common) == 0:
        raise ConfigError("the prediction sets share no test clip")
    rows = []
    labels = None
    for pa, pb in pairs:
        row = []
        for p in (pa, pb):
            order = np.argsort(p.indices, kind="stable")
            pos = order[np.searchsorted(p.indices[order], common)]
            if labels is None:
                labels = p.labels[pos]
            elif not np.array_equal(labels, p.labels[pos]):
                raise ConfigError("the prediction sets label the same clips differently")
            row.append(outcome.values(p)[pos])
        rows.append(row[0] - row[1])
    return np.vstack(rows)


def per_clip_note(
    outcome: ClipOutcome, kinds: list[str], corr: str, m: int, thresholds: str
) -> str:
    """The notes' paragraph on the per-clip tests ``kinds`` that ran."""
    what = {"top1": "correctness (0 or 100 points)", "nll": "negative log-likelihood",
            "brier": "Brier score"}[outcome.outcome]  # fmt: skip
    parts = [
        f"p (samples): each test clip's {what} under '{outcome.name}' predictions, paired "
        f"by dataset index."
    ]
    if "crossed" in kinds:
        parts.append(
            "With several seeds: a crossed random-effects test (seed and clip random; the "
            "mean difference's variance from the seed, clip and residual mean squares, "
            "Satterthwaite's degrees of freedom; CSV columns 'clip_se', 'clip_df'), which "
            "counts neither the clips nor the seeds as independent replicates and holds its "
            "level in simulation. It generalises over retraining and over test clips."
        )
    if any(k.startswith("mcnemar") for k in kinds):
        parts.append(
            f"With one seed: McNemar's test (exact binomial below "
            f"{stats.MCNEMAR_EXACT_BELOW} discordant clips, else chi-squared with continuity "
            "correction; CSV column 'discordant': cell right and baseline wrong / the "
            "reverse), which says whether these two trained models differ on this test "
            "set, not whether the difference survives retraining."
        )
    parts.append(f"{corr} correction over {m} compared cells; 'sig. (samples)': {thresholds}.")
    return " ".join(parts)
