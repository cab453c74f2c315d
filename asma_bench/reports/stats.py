"""Significance of differences between grid cells, with scipy doing the statistics.

Two kinds of evidence are reported for a cell against the grid's baseline:

* across seeds — a paired test of the per-seed metric (paired t-test by default, Wilcoxon
  signed-rank as the alternative), runs paired by seed, and a paired bootstrap confidence
  interval of the mean difference;
* across test samples — McNemar's test on the per-sample correctness of the two cells on
  the same test set, predictions paired by dataset index.

P-values of the comparisons in one table are corrected together (Holm by default,
Benjamini–Hochberg as the alternative). A test that cannot reach p < 0.05 with the data at
hand (Wilcoxon on 5 seeds, McNemar with 5 discordant samples) is flagged, because its
"non-significant" result says nothing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from asma_bench.errors import ConfigError
from asma_bench.protocols.metrics import Predictions

SEED_TESTS = ("ttest", "wilcoxon")
CORRECTIONS = ("holm", "bh", "none")
MCNEMAR_POOLING = ("sum", "fisher", "stouffer")
TEST_NAMES = {
    "ttest": "paired t-test over seeds",
    "wilcoxon": "Wilcoxon signed-rank test over seeds",
    "mcnemar_exact": "McNemar exact (binomial) test",
    "mcnemar_chi2": "McNemar chi-squared test with continuity correction",
}
# below this many discordant pairs McNemar is computed exactly (the usual rule of thumb)
MCNEMAR_EXACT_BELOW = 25


@dataclass(frozen=True)
class TestResult:
    """One test's outcome: which test (a key of ``TEST_NAMES``), statistic, p-value, and
    ``n`` (seed pairs, or discordant samples for McNemar)."""

    test: str
    statistic: float
    p_value: float
    n: int
    note: str = ""
    discordant: tuple[int, int] | None = None  # McNemar's (b, c) when pooled by summing

    @property
    def name(self) -> str:
        return TEST_NAMES.get(self.test, self.test)


#: Fewer paired seeds than this give no p-value: with two seeds a t-test has one degree of
#: freedom and its p-value hangs on a single difference of differences.
MIN_SEEDS = 3


def paired_seed_test(a: Sequence[float], b: Sequence[float], test: str = "ttest") -> TestResult:
    """Paired test of ``a`` against ``b`` (the same seeds, in the same order).

    ``ttest`` is ``scipy.stats.ttest_rel``; ``wilcoxon`` is ``scipy.stats.wilcoxon`` (exact
    for small samples). No p-value (NaN, with the reason in ``note``) where the data cannot
    support one: fewer than :data:`MIN_SEEDS` pairs; every difference zero; or, for the
    t-test, differences of zero spread (to rounding), where t = mean / (sd / √n) is
    undefined or infinite whatever the effect.
    """
    if test not in SEED_TESTS:
        raise ConfigError(f"seed test must be one of {', '.join(SEED_TESTS)}, got {test!r}")
    a, b = _pair_arrays(a, b)
    n = len(a)
    diff = a - b
    if n < MIN_SEEDS:
        return TestResult(test, math.nan, math.nan, n, f"fewer than {MIN_SEEDS} paired seeds")
    if np.all(diff == 0):
        return TestResult(test, math.nan, math.nan, n, "identical results (no spread)")
    if test == "ttest":
        if _zero_spread(diff):
            return TestResult(test, math.nan, math.nan, n, "paired differences have zero spread")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            res = stats.ttest_rel(a, b)
        if any(issubclass(w.category, RuntimeWarning) for w in caught):
            return TestResult(test, math.nan, math.nan, n, "paired differences have zero spread")
        return TestResult(test, float(res.statistic), float(res.pvalue), n)
    res = stats.wilcoxon(a, b)
    return TestResult(test, float(res.statistic), float(res.pvalue), n)


def _zero_spread(diff: np.ndarray) -> bool:
    """Whether the differences are equal up to rounding (relative 1e-9 of their size)."""
    scale = max(float(np.max(np.abs(diff))), 1e-300)
    return float(np.ptp(diff)) <= 1e-9 * scale


def min_detectable_difference(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest mean paired difference a two-sided paired t-test at ``alpha`` detects
    with probability ``power`` from ``n`` seeds whose differences have standard deviation
    ``sd`` (noncentral t: P(|T| > t_{1−α/2, n−1}) = power with noncentrality δ√n / sd).
    NaN with fewer than 2 seeds or no spread."""
    if n < 2 or not np.isfinite(sd) or sd <= 0:
        return math.nan
    return float(sd * _effect_size(n, alpha, power))


def seeds_needed(
    difference: float, sd: float, alpha: float = 0.05, power: float = 0.8, most: int = 1000
) -> int | None:
    """The fewest seeds (≥ 2) for which a paired t-test detects ``difference`` with
    ``power``, given paired differences of standard deviation ``sd``; None if more than
    ``most`` (or the inputs cannot say)."""
    if not (np.isfinite(difference) and np.isfinite(sd)) or sd <= 0 or difference == 0:
        return None
    target = abs(difference) / sd
    lo, hi = 2, 2
    while _effect_size(hi, alpha, power) > target:  # double, then bisect
        if hi >= most:
            return None
        lo, hi = hi, min(2 * hi, most)
    while lo < hi:
        mid = (lo + hi) // 2
        if _effect_size(mid, alpha, power) <= target:
            hi = mid
        else:
            lo = mid + 1
    return hi


def _effect_size(n: int, alpha: float, power: float) -> float:
    """Standardised effect d = δ / sd that the paired t-test with ``n`` pairs detects with
    ``power`` (the mean of n differences has standard error sd / √n, n − 1 df)."""
    return detectable_shift(1.0 / math.sqrt(n), n - 1, alpha, power)


def detectable_shift(se: float, df: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The shift δ that a two-sided t-test of an estimate with standard error ``se`` and
    ``df`` degrees of freedom detects with probability ``power`` at level ``alpha``:
    P(|T| > t_{1−α/2, df}) = power with T ~ noncentral t(df, δ / se). NaN without spread."""
    from scipy.optimize import brentq

    if not se > 0:
        return math.nan
    crit = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(d: float) -> float:
        nc = d / se
        reach = stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc)
        return (1.0 if not np.isfinite(reach) else float(reach)) - power  # far tail: 1

    return float(brentq(shortfall, 1e-9 * se, 100.0 * se, xtol=1e-10 * se))


def paired_bootstrap_ci(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """Confidence interval of mean(a − b) by a paired bootstrap (``scipy.stats.bootstrap``).

    Seeded for reproducible reports. ``percentile`` is the default because BCa's jackknife
    acceleration is undefined when all differences are equal, which happens with a few
    seeds on a small test set; ``method="BCa"`` or ``"basic"`` are available. With fewer
    than two pairs the interval is NaN.
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    a, b = _pair_arrays(a, b)
    if len(a) < 2:
        return math.nan, math.nan
    diff = a - b
    if np.ptp(diff) == 0:  # every resample has the same mean
        return float(diff[0]), float(diff[0])

    def mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    res = stats.bootstrap(
        (a, b), mean_difference, paired=True, vectorized=True, n_resamples=n_resamples,
        confidence_level=confidence, method=method, rng=np.random.default_rng(seed),
    )  # fmt: skip
    ci = res.confidence_interval
    return float(ci.low), float(ci.high)


def discordant_counts(a: Predictions, b: Predictions) -> tuple[int, int, int]:
    """McNemar's discordant pairs of two prediction sets on the same test samples.

    Samples are paired by dataset index (only indices present in both count). Returns
    ``(a right & b wrong, a wrong & b right, paired samples)``. Raises ConfigError when
    the two sets share no sample or label the same sample differently (not the same test
    set).
    """
    common, ia, ib = np.intersect1d(a.indices, b.indices, assume_unique=False, return_indices=True)
    if len(common) == 0:
        raise ConfigError("McNemar: the two prediction sets share no test sample")
    if not np.array_equal(a.labels[ia], b.labels[ib]):
        raise ConfigError("McNemar: the prediction sets label the same samples differently")
    ca, cb = a.correct[ia], b.correct[ib]
    return int(np.sum(ca & ~cb)), int(np.sum(~ca & cb)), len(common)


def mcnemar_test(b: int, c: int, exact: bool | None = None) -> TestResult:
    """McNemar's test from the discordant counts ``b`` and ``c``.

    Exact: two-sided ``scipy.stats.binomtest(b, b + c, 0.5)``. Otherwise the chi-squared
    statistic with continuity correction, (|b − c| − 1)² / (b + c), on 1 degree of freedom.
    ``exact=None`` picks the exact test below ``MCNEMAR_EXACT_BELOW`` discordant pairs. No
    discordant pair at all means identical correctness: p = 1.
    """
    if b < 0 or c < 0:
        raise ConfigError(f"discordant counts must be >= 0, got {b}, {c}")
    n = b + c
    if exact is None:
        exact = n < MCNEMAR_EXACT_BELOW
    if n == 0:
        return TestResult(
            "mcnemar_exact" if exact else "mcnemar_chi2", 0.0, 1.0, 0, "no discordant samples"
        )
    if exact:
        return TestResult("mcnemar_exact", float(b), float(stats.binomtest(b, n, 0.5).pvalue), n)
    chi2 = (abs(b - c) - 1) ** 2 / n
    return TestResult("mcnemar_chi2", float(chi2), float(stats.chi2.sf(chi2, 1)), n)


def pooled_mcnemar(
    pairs: Sequence[tuple[Predictions, Predictions]],
    pool: str = "sum",
    exact: bool | None = None,
) -> TestResult:
    """McNemar over several seeds, each pair being (cell, baseline) predictions of one seed.

    ``sum`` (default) adds the discordant counts of all seeds and runs one test — the
    Mantel–Haenszel form of McNemar's test for matched pairs in strata. ``fisher`` and
    ``stouffer`` test each seed and combine the p-values with
    ``scipy.stats.combine_pvalues``. All seeds share one test set, so neither pooling
    treats seeds as independent evidence about new samples; seed-to-seed variation is what
    the paired seed test measures.
    """
    if pool not in MCNEMAR_POOLING:
        raise ConfigError(
            f"McNemar pooling must be one of {', '.join(MCNEMAR_POOLING)}, got {pool!r}"
        )
    if not pairs:
        return TestResult("mcnemar_exact", math.nan, math.nan, 0, "no paired predictions")
    counts = [discordant_counts(a, b) for a, b in pairs]
    b_total = sum(c[0] for c in counts)
    c_total = sum(c[1] for c in counts)
    if pool == "sum":
        res = mcnemar_test(b_total, c_total, exact)
        return TestResult(
            res.test,
            res.statistic,
            res.p_value,
            res.n,
            f"{len(pairs)} seeds pooled",
            (b_total, c_total),
        )
    per_seed = [mcnemar_test(b, c, exact) for b, c, _ in counts]
    ps = np.array([r.p_value for r in per_seed])
    if np.all(ps == 1.0):
        p = 1.0
    else:
        p = float(stats.combine_pvalues(ps, method=pool).pvalue)
    return TestResult(
        per_seed[0].test, math.nan, p, b_total + c_total, f"{len(pairs)} seeds combined ({pool})"
    )


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down correction (Holm 1979); NaN entries stay NaN and do not count.

    Sorted ascending, the i-th smallest of m p-values becomes (m − i + 1)·p, made monotone
    by a running maximum and capped at 1.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (``scipy.stats.false_discovery_control``)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = stats.false_discovery_control(p[ok], method="bh")
    return out


def adjust_pvalues(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    """Correct a family of p-values: ``holm``, ``bh`` (Benjamini–Hochberg) or ``none``."""
    if method == "holm":
        return holm(pvalues)
    if method == "bh":
        return benjamini_hochberg(pvalues)
    if method == "none":
        return np.asarray(pvalues, dtype=float)
    raise ConfigError(f"--correction must be one of {', '.join(CORRECTIONS)}, got {method!r}")


def min_attainable_p(test: str, n: int) -> float:
    """The smallest two-sided p-value ``test`` can produce with ``n`` pairs.

    Wilcoxon signed-rank (exact) and exact McNemar (``n`` = discordant samples): all
    differences on one side give 2 / 2^n. The t-test and the chi-squared McNemar can get
    arbitrarily close to 0 (returns 0.0) once defined (n ≥ 2 for the t-test).
    """
    if test in ("wilcoxon", "mcnemar_exact"):
        return min(1.0, 2.0 * 0.5**n) if n > 0 else 1.0
    if test == "ttest":
        return 0.0 if n >= 2 else 1.0
    if test == "mcnemar_chi2":
        return 0.0 if n > 0 else 1.0
    raise ConfigError(f"unknown test {test!r}")


def power_warning(result: TestResult, alpha: float = 0.05) -> str:
    """A one-line warning when ``result``'s test could never reach p < ``alpha``, else ''."""
    if result.n == 0 and not math.isnan(result.p_value):
        return ""  # identical predictions: p = 1 is the answer, not a lack of power
    floor = min_attainable_p(result.test, result.n)
    if floor >= alpha:
        what = "discordant samples" if result.test.startswith("mcnemar") else "paired seeds"
        return (
            f"{result.name} with {result.n} {what} cannot reach p < {alpha:g} "
            f"(smallest possible p = {floor:.3g})"
        )
    return ""


def significance_marker(p: float) -> str:
    """'**' for p < 0.01, '*' for p < 0.05, '' otherwise (and for NaN)."""
    if not np.isfinite(p):
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def _pair_arrays(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(
            f"paired samples must be 1-D and equally long, got {a.shape} and {b.shape}"
        )
    return a, b
