"""Significance of differences between grid cells, with scipy doing the distributions.

Two kinds of evidence are reported for a cell against the grid's baseline:

* across seeds — a paired test of the per-seed metric (paired t-test by default, Wilcoxon
  signed-rank as the alternative), runs paired by seed, and a paired t-interval of the mean
  difference (:func:`paired_t_interval`);
* across test clips and seeds together — :func:`crossed_clip_test`: the per-clip
  differences of every seed, analysed as a crossed random-effects design (seed and clip
  random), so neither the clips nor the seeds are taken as independent replicates. With a
  single seed McNemar's test on per-clip correctness is what remains.

P-values of the comparisons in one table are corrected together (Holm by default,
Benjamini–Hochberg as the alternative). A test that cannot reach p < 0.05 with the data at
hand (Wilcoxon on 5 seeds, McNemar with 5 discordant samples) is flagged, because its
"non-significant" result says nothing. What the seeds can detect comes from the pooled
error of the whole grid, with an interval (:func:`pooled_power`).

Every interval and test here is checked by simulation in the test suite
(``tests/reports/test_calibration.py``): coverage of nominal 95% intervals at least 93%
and type-I error at most 6% at α = 5%, at 3, 5 and 10 seeds. The percentile bootstrap over
seeds is not offered: at 3 seeds it is the range of the differences and covers about 75%.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from asma_bench.errors import ConfigError
from asma_bench.training.metrics import Predictions

SEED_TESTS = ("ttest", "wilcoxon")
CORRECTIONS = ("holm", "bh", "none")
TEST_NAMES = {
    "ttest": "paired t-test over seeds",
    "wilcoxon": "Wilcoxon signed-rank test over seeds",
    "mcnemar_exact": "McNemar exact (binomial) test",
    "mcnemar_chi2": "McNemar chi-squared test with continuity correction",
    "crossed": "crossed random-effects test over seeds and clips",
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


def paired_t_interval(
    a: Sequence[float], b: Sequence[float], confidence: float = 0.95
) -> tuple[float, float]:
    """Student-t interval of mean(a − b) over paired seeds: d̄ ± t_{(1+c)/2, n−1} · s_d / √n.

    Exact for normal differences, and it holds its level at 3 seeds where a bootstrap
    cannot (tested by simulation). NaN with fewer than two pairs; a point where every
    difference is equal (no spread to scale an interval)."""
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    a, b = _pair_arrays(a, b)
    n = len(a)
    if n < 2:
        return math.nan, math.nan
    diff = a - b
    mean = float(diff.mean())
    if _zero_spread(diff):
        return mean, mean
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * float(diff.std(ddof=1)) / math.sqrt(n)
    return mean - half, mean + half


@dataclass(frozen=True)
class ClipTest:
    """:func:`crossed_clip_test`'s outcome: the mean per-clip difference, its standard
    error, Satterthwaite's degrees of freedom, and the test."""

    estimate: float
    se: float
    df: float
    result: TestResult


def crossed_clip_test(diff: np.ndarray) -> ClipTest:
    """Test that the mean per-clip difference between two cells is zero, with seeds and
    test clips both random (a crossed random-effects model).

    ``diff`` is (S seeds, I clips): cell − baseline on each clip at each seed (correctness
    in points, or a per-clip loss). The model is d_si = μ + a_s + b_i + e_si with seed
    effects a_s ~ (0, σ_a²), clip effects b_i ~ (0, σ_b²) and residual e_si ~ (0, σ_e²).
    The mean d̄ has variance σ_a²/S + σ_b²/I + σ_e²/(SI), estimated without bias from the
    two-way ANOVA's mean squares as (MS_seed + MS_clip − MS_err) / (SI) (the expected mean
    squares are Iσ_a² + σ_e², Sσ_b² + σ_e² and σ_e²); t = d̄ / SE on Satterthwaite's
    degrees of freedom (Satterthwaite, 1946; the quasi-F of Clark, 1973, for items crossed
    with subjects). Unlike McNemar's test pooled over seeds it does not take 464 × S
    predictions as independent: a seed whose model is better on many clips at once counts
    as one seed. Unlike the seed-level test it generalises over test clips too, and it uses
    every clip's outcome, so a per-clip loss (negative log-likelihood, Brier) can be
    tested. Its level is checked by simulation with 0/1 outcomes from a logistic model with
    seed and clip random effects. Needs two seeds and two clips; otherwise NaN.
    """
    d = np.asarray(diff, dtype=float)
    if d.ndim != 2:
        raise ConfigError(f"per-clip differences must be (seeds, clips), got shape {d.shape}")
    s, i = d.shape
    mean = float(d.mean()) if d.size else math.nan
    if s < 2 or i < 2:
        why = "fewer than 2 seeds" if s < 2 else "fewer than 2 clips"
        return ClipTest(mean, math.nan, math.nan, TestResult("crossed", math.nan, math.nan, s, why))
    seed_means, clip_means = d.mean(axis=1), d.mean(axis=0)
    ms_seed = i * float(((seed_means - mean) ** 2).sum()) / (s - 1)
    ms_clip = s * float(((clip_means - mean) ** 2).sum()) / (i - 1)
    resid = d - seed_means[:, None] - clip_means[None, :] + mean
    ms_err = float((resid**2).sum()) / ((s - 1) * (i - 1))
    combined = ms_seed + ms_clip - ms_err
    if not combined > 0:  # the unbiased estimate fell below zero: the residual term alone
        combined = ms_err
    if combined <= 1e-300:
        note = "identical results (no spread)" if np.all(d == 0) else "no spread"
        return ClipTest(mean, 0.0, math.nan, TestResult("crossed", math.nan, math.nan, s, note))
    se = math.sqrt(combined / (s * i))
    denominator = ms_seed**2 / (s - 1) + ms_clip**2 / (i - 1) + ms_err**2 / ((s - 1) * (i - 1))
    df = max(1.0, combined**2 / denominator) if denominator > 0 else float(s - 1)
    t = mean / se
    p = float(2 * stats.t.sf(abs(t), df))
    return ClipTest(mean, se, df, TestResult("crossed", float(t), p, s, f"{s} seeds × {i} clips"))


@dataclass(frozen=True)
class PooledPower:
    """What a grid's seeds can detect, from the pooled error of all its compared cells.

    ``sd_diff`` is the standard deviation of a paired difference between two cells at one
    seed (√2 · the residual standard deviation of the cells × seeds block design), on
    ``df`` degrees of freedom; ``*_low``/``*_high`` come from its chi-squared interval."""

    sd_diff: float
    sd_low: float
    sd_high: float
    df: int
    seeds: int
    cells: int
    mdd: float
    mdd_low: float
    mdd_high: float
    alpha: float
    power: float

    def seeds_for(self, difference: float, most: int = 1000) -> tuple[int | None, ...]:
        """Seeds the paired t-test needs to detect ``difference`` with :attr:`power`: at
        the estimated spread, and at the low and high ends of its interval."""
        return tuple(
            seeds_needed(difference, sd, self.alpha, self.power, most)
            for sd in (self.sd_diff, self.sd_low, self.sd_high)
        )


def block_residual(y: np.ndarray) -> tuple[float, int]:
    """Residual sum of squares and degrees of freedom of a complete (cells, seeds) block
    design: y − cell mean − seed mean + grand mean, on (C − 1)(S − 1) df."""
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    return float((resid**2).sum()), (y.shape[0] - 1) * (y.shape[1] - 1)


def paired_sd_interval(ss: float, df: int, confidence: float = 0.95) -> tuple[float, ...]:
    """The sd of a paired difference between two cells, √(2 σ̂²) with σ̂² = ``ss`` / ``df``,
    and the ends of its chi-squared ``confidence`` interval."""
    ms = ss / df
    tail = (1 - confidence) / 2
    ends = (float(stats.chi2.ppf(q, df)) for q in (1 - tail, tail))
    return tuple(math.sqrt(2 * v) for v in (ms, *(df * ms / e for e in ends)))


def pooled_power(
    values: np.ndarray, alpha: float = 0.05, power: float = 0.8, confidence: float = 0.95
) -> PooledPower | None:
    """:class:`PooledPower` of a (cells, seeds) matrix of a metric, complete, every cell
    run with every seed.

    The cells × seeds table is a randomised complete block design: its residual mean
    square MS_E on (C − 1)(S − 1) degrees of freedom estimates σ², and a paired
    difference between two cells at one seed has variance 2σ² (the seed's effect cancels).
    One pair alone gives that variance on S − 1 degrees of freedom; the grid's C − 1 pairs
    pool into C − 1 times as many, so the estimate (and the minimum detectable difference
    of the paired t-test with S seeds, :func:`min_detectable_difference`) is far less
    uncertain; its interval is σ's chi-squared interval, ``confidence`` level. This
    assumes one residual variance for all cells; a pair's own spread may differ. None
    below 2 cells or 2 seeds, or without spread.
    """
    y = np.asarray(values, dtype=float)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2 or not np.isfinite(y).all():
        return None
    c, n = y.shape
    ss, df = block_residual(y)
    if not ss > 0:
        return None
    sd, lo, hi = paired_sd_interval(ss, df, confidence)
    mdd = [min_detectable_difference(x, n, alpha, power) for x in (sd, lo, hi)]
    return PooledPower(sd, lo, hi, df, n, c, *mdd, alpha, power)


@dataclass(frozen=True)
class BlockedDifference:
    """:func:`blocked_paired_test`'s outcome: the mean paired difference over datasets,
    its interval and test, and whether the difference varies between datasets."""

    estimate: float
    low: float
    high: float
    se: float
    df: int
    result: TestResult
    heterogeneity_p: float
    per_group: tuple[float, ...]


def blocked_paired_test(
    groups: Sequence[Sequence[float]], confidence: float = 0.95
) -> BlockedDifference:
    """The mean paired difference over several datasets, the dataset as a block.

    ``groups`` holds each dataset's per-seed paired differences (cell − baseline). The
    model is d_ds = μ + δ_d + e_ds with the datasets fixed and e ~ N(0, σ²): the estimate
    is the unweighted mean of the datasets' means (every dataset counts alike, as a table
    reading across NTU-60, NTU-120 and PKU-MMD does), its variance σ² Σ_d (1/S_d) / D²
    with σ² pooled within datasets on Σ_d (S_d − 1) degrees of freedom. So 3 seeds on each
    of two datasets test on 4 degrees of freedom where either alone has 2, and an effect
    consistent across datasets shows with fewer seeds per dataset. ``heterogeneity_p`` is
    the F-test of equal means across datasets (δ_d = 0): a small value says the effect
    differs between datasets and the mean over them hides it. Datasets with fewer than two
    seeds are left out; NaN without two seeds anywhere or without spread.
    """
    kept = [np.asarray(g, dtype=float) for g in groups if len(g) >= 2]
    means = tuple(float(g.mean()) for g in kept)
    df = sum(len(g) - 1 for g in kept)
    nan = math.nan
    if not kept or df < 1:
        res = TestResult("ttest", nan, nan, df, "fewer than 2 seeds on every dataset")
        return BlockedDifference(nan, nan, nan, nan, df, res, nan, means)
    estimate = float(np.mean(means))
    ss = sum(float(((g - g.mean()) ** 2).sum()) for g in kept)
    var = ss / df
    scale = max(max(abs(float(v)) for g in kept for v in g), 1e-300)
    if var <= (1e-9 * scale) ** 2:
        res = TestResult("ttest", nan, nan, df, "paired differences have zero spread")
        return BlockedDifference(estimate, estimate, estimate, 0.0, df, res, nan, means)
    d = len(kept)
    se = math.sqrt(var * sum(1.0 / len(g) for g in kept)) / d
    t = estimate / se
    p = float(2 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf((1 + confidence) / 2, df)) * se
    het = nan
    if d >= 2:
        sizes = np.array([len(g) for g in kept], dtype=float)
        weighted = float((sizes * np.array(means)).sum() / sizes.sum())
        between = float((sizes * (np.array(means) - weighted) ** 2).sum()) / (d - 1)
        het = float(stats.f.sf(between / var, d - 1, df))
    res = TestResult("ttest", t, p, df, f"{d} datasets, {df} degrees of freedom")
    return BlockedDifference(estimate, estimate - half, estimate + half, se, df, res, het, means)


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
