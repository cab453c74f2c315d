"""Every interval the report prints covers at its level, and every test holds its level.

Seeded simulations (so each run gives the same figures) of the designs the report
analyses, at 3, 5 and 10 seeds: nominal 95% intervals must cover the true value at least
93% of the time, and tests at α = 5% must reject a true null at most 6% of the time. The
simulated data are harder than the tests' assumptions where it matters: heavy-tailed seed
noise for the paired interval, 0/1 outcomes from a logistic model with seed, clip, and
cell × clip effects for the per-clip test, a failed unit for the factorial analysis.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from asma_bench.reports import stats
from asma_bench.reports.factorial import two_way_anova

SEEDS = (3, 5, 10)
MIN_COVERAGE = 0.93
MAX_LEVEL = 0.06


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("noise", ["normal", "student_t3"])
def test_paired_t_interval_covers(n, noise):
    rng = np.random.default_rng(100 + n)
    reps, delta = 3000, 1.5
    seed_effect = rng.normal(0, 3.0, (reps, n))  # shared by both cells: cancels
    if noise == "normal":
        e = rng.normal(0, 1.0, (reps, n, 2))
    else:
        e = rng.standard_t(3, (reps, n, 2))
    a = 70 + delta + seed_effect + e[..., 0]
    b = 70 + seed_effect + e[..., 1]
    hits = rejects = rank_rejects = 0
    for r in range(reps):
        lo, hi = stats.paired_t_interval(a[r], b[r])
        hits += lo <= delta <= hi
        rejects += stats.paired_seed_test(a[r] - delta, b[r]).p_value < 0.05  # a true null
        if r < 500:  # Wilcoxon, the alternative seed test (exact, slower)
            rank_rejects += stats.paired_seed_test(a[r] - delta, b[r], "wilcoxon").p_value < 0.05
    assert hits / reps >= MIN_COVERAGE
    assert rejects / reps <= MAX_LEVEL
    assert rank_rejects / 500 <= MAX_LEVEL


def _clip_outcomes(rng, reps, seeds, clips, cell_clip_sd=0.4):
    """0/1 correctness (reps, seeds, clips) of two cells with equal expected accuracy:
    logit = clip difficulty + seed effect (shared) + cell × seed + cell × clip noise."""
    difficulty = rng.normal(1.0, 1.5, (reps, 1, clips))
    seed = rng.normal(0, 0.3, (reps, seeds, 1))
    out = []
    for _ in range(2):
        logit = (difficulty + seed + rng.normal(0, 0.25, (reps, seeds, 1))
                 + rng.normal(0, cell_clip_sd, (reps, 1, clips)))  # fmt: skip
        out.append(rng.random((reps, seeds, clips)) < 1 / (1 + np.exp(-logit)))
    return out


@pytest.mark.parametrize("n", SEEDS)
def test_crossed_clip_test_holds_its_level(n):
    rng = np.random.default_rng(200 + n)
    reps, clips = 1500, 150
    a, b = _clip_outcomes(rng, reps, n, clips)
    d = 100.0 * (a.astype(float) - b.astype(float))
    p = np.array([stats.crossed_clip_test(d[r]).result.p_value for r in range(reps)])
    assert np.isfinite(p).all()
    assert (p < 0.05).mean() <= MAX_LEVEL
    if n == 10:  # and it is not a test that never rejects: a 10-point gain is found
        worse = b & (rng.random(b.shape) > 0.15)
        gain = 100.0 * (a.astype(float) - worse.astype(float))
        hits = np.mean([stats.crossed_clip_test(gain[r]).result.p_value < 0.05 for r in range(200)])
        assert hits > 0.8


def test_pooled_mcnemar_would_not_hold_its_level():
    """Why the per-clip headline changed: summing McNemar's discordant counts over seeds
    treats a seed-wide shift as hundreds of independent clips."""
    rng = np.random.default_rng(7)
    reps, n, clips = 400, 5, 150
    a, b = _clip_outcomes(rng, reps, n, clips)
    rejects = 0
    for r in range(reps):
        bb = int((a[r] & ~b[r]).sum())
        cc = int((~a[r] & b[r]).sum())
        rejects += stats.mcnemar_test(bb, cc).p_value < 0.05
    assert rejects / reps > 0.1


def test_mcnemar_at_one_seed_holds_its_level():
    rng = np.random.default_rng(8)
    reps = 3000
    total = rng.poisson(40, reps)  # discordant clips, each equally likely either way
    b = rng.binomial(total, 0.5)
    p = [stats.mcnemar_test(int(x), int(t - x)).p_value for x, t in zip(b, total, strict=True)]
    assert np.mean(np.array(p) < 0.05) <= MAX_LEVEL


@pytest.mark.parametrize("n", SEEDS)
def test_pooled_spread_interval_covers(n):
    rng = np.random.default_rng(300 + n)
    reps, cells, sigma = 1000, 5, 1.3
    y = 70 + rng.normal(0, 3, (reps, 1, n)) + rng.normal(0, sigma, (reps, cells, n))
    truth = np.sqrt(2) * sigma  # sd of a paired difference between two cells
    hits = 0
    for r in range(reps):
        p = stats.pooled_power(y[r])
        hits += p.sd_low <= truth <= p.sd_high
    assert hits / reps >= MIN_COVERAGE


def _factorial(rng, n, drop_one=False):
    """spatial (4 levels) × temporal (3) × seeds, no effect of either factor."""
    rows = []
    seed_effect = rng.normal(0, 2.0, n)
    for i in range(4):
        for j in range(3):
            for s in range(n):
                rows.append((f"s{i}", f"t{j}", s, 70 + seed_effect[s] + rng.normal(0, 1.0)))
    df = pd.DataFrame(rows, columns=["spatial", "temporal", "seed", "value"])
    return df.iloc[1:] if drop_one else df


@pytest.mark.parametrize(
    ("n", "drop_one"), [(3, False), (5, False), (10, False), (3, True), (10, True)]
)
def test_factorial_tests_hold_their_level_and_marginal_intervals_cover(n, drop_one):
    rng = np.random.default_rng(400 + n + 7 * drop_one)
    reps = 600
    rejects = 0
    hits = total = 0
    for _ in range(reps):
        r = two_way_anova(_factorial(rng, n, drop_one), "spatial", "temporal")
        rejects += int(
            (r.effects.loc[["spatial", "temporal", "spatial × temporal"], "p"] < 0.05).sum()
        )
        # every level's population mean is 70 (seed effects have mean zero)
        m = r.marginal
        hits += int(((m["low"] <= 70) & (70 <= m["high"])).sum())
        total += len(m)
    assert rejects / (3 * reps) <= MAX_LEVEL  # three true nulls per simulated grid
    assert hits / total >= MIN_COVERAGE


def test_the_old_marginal_interval_left_out_the_seed_variance():
    """ȳ ± t_{df_E} √(MS_E / n), the interval before, ignores that every level's mean moves
    with the seeds' common effect: with a seed spread twice the residual it covers far less
    than 95%."""
    rng = np.random.default_rng(9)
    hits = total = 0
    for _ in range(300):
        r = two_way_anova(_factorial(rng, 3), "spatial", "temporal")
        ms, df = r.effects.loc["residual", "ms"], r.effects.loc["residual", "df"]
        for _, row in r.marginal.iterrows():
            half = sps.t.ppf(0.975, df) * np.sqrt(ms / row["n"])
            hits += abs(row["mean"] - 70) <= half
            total += 1
    assert hits / total < 0.8


@pytest.mark.parametrize("n", SEEDS)
def test_across_datasets_interval_covers_and_test_holds_its_level(n):
    """Two datasets with effects +1 and −1 (the mean over datasets is zero) and their own
    seed spreads: the blocked interval covers the mean, the test holds its level."""
    rng = np.random.default_rng(500 + n)
    reps = 3000
    effects = (1.0, -1.0)
    hits = rejects = het_rejects = 0
    for _ in range(reps):
        groups = [e + rng.normal(0, 1.2, n) for e in effects]
        r = stats.blocked_paired_test(groups)
        hits += r.low <= 0.0 <= r.high
        rejects += r.result.p_value < 0.05
        same = stats.blocked_paired_test([rng.normal(0, 1.2, n) for _ in effects])
        het_rejects += same.heterogeneity_p < 0.05  # equal effects: a true null
    assert hits / reps >= MIN_COVERAGE
    assert rejects / reps <= MAX_LEVEL
    assert het_rejects / reps <= MAX_LEVEL
