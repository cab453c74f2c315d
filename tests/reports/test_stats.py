"""Significance tests: identical results, large effects, hand-worked corrections."""

import math

import numpy as np
import pytest

from asma_bench.errors import ConfigError
from asma_bench.reports import stats
from asma_bench.training.metrics import Predictions


def preds(correct, labels=None, order=None):
    correct = np.asarray(correct, bool)
    labels = np.zeros(len(correct), np.int64) if labels is None else np.asarray(labels)
    pred = np.where(correct, labels, 1 - labels)  # two classes: right label or the other
    logits = np.eye(2, dtype=np.float32)[pred]
    idx = np.arange(len(correct)) + 10
    if order is not None:
        return Predictions(logits[order], labels[order], idx[order])
    return Predictions(logits, labels, idx)


def test_identical_results_give_no_seed_test_and_zero_delta():
    a = [74.1, 73.8, 74.5, 74.0, 73.9]
    for test in stats.SEED_TESTS:
        res = stats.paired_seed_test(a, a, test)  # 0 / 0: no p-value, the reason says why
        assert math.isnan(res.p_value) and res.n == 5 and "identical" in res.note
    assert stats.paired_t_interval(a, a) == (0.0, 0.0)
    same = preds(np.random.default_rng(0).random(50) < 0.5)
    b, c, n = stats.discordant_counts(same, same)
    assert (b, c, n) == (0, 0, 50)
    assert stats.mcnemar_test(b, c).p_value == 1.0
    clip = stats.crossed_clip_test(np.zeros((3, 50)))
    assert math.isnan(clip.result.p_value) and "identical" in clip.result.note


def test_large_effect_is_significant():
    rng = np.random.default_rng(1)
    base = 70 + rng.normal(0, 0.3, 5)
    better = base + 10 + rng.normal(0, 0.3, 5)
    res = stats.paired_seed_test(better, base)
    assert res.test == "ttest" and res.p_value < 0.01
    lo, hi = stats.paired_t_interval(better, base)
    assert 9 < lo < np.mean(better - base) < hi < 11
    # McNemar: 60 samples fixed, none broken
    a = np.r_[np.ones(100, bool), np.zeros(100, bool)]
    b = a.copy()
    b[100:160] = True
    mc = stats.mcnemar_test(*stats.discordant_counts(preds(b), preds(a))[:2])
    assert mc.test == "mcnemar_chi2" and mc.p_value < 1e-10


def test_mcnemar_matches_hand_computation():
    # exact: b=8, c=2 -> 2 * P(X <= 2 | n=10, 1/2) = 2 * (1 + 10 + 45) / 1024
    exact = stats.mcnemar_test(8, 2)
    assert exact.test == "mcnemar_exact"
    assert exact.p_value == pytest.approx(112 / 1024)
    # chi-squared with continuity: (|8 - 2| - 1)^2 / 10 = 2.5; 1-df tail = erfc(sqrt(2.5 / 2))
    chi = stats.mcnemar_test(8, 2, exact=False)
    assert chi.statistic == pytest.approx(2.5)
    assert chi.p_value == pytest.approx(math.erfc(math.sqrt(1.25)))


def test_mcnemar_pairs_by_dataset_index():
    rng = np.random.default_rng(2)
    a = rng.random(40) < 0.6
    b = rng.random(40) < 0.4
    labels = rng.integers(0, 2, 40)
    expected = (int(np.sum(a & ~b)), int(np.sum(~a & b)), 40)
    shuffled = preds(b, labels, order=rng.permutation(40))
    assert stats.discordant_counts(preds(a, labels), shuffled) == expected
    # only shared indices count
    part = preds(b[:30], labels[:30])
    assert stats.discordant_counts(preds(a, labels), part)[2] == 30
    with pytest.raises(ConfigError, match="label the same samples differently"):
        stats.discordant_counts(preds(a, labels), preds(b, 1 - labels))
    other = Predictions(shuffled.logits, shuffled.labels, shuffled.indices + 1000)
    with pytest.raises(ConfigError, match="share no test sample"):
        stats.discordant_counts(preds(a, labels), other)


def test_holm_matches_worked_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])
    # NaN entries are not comparisons: m = 2 here
    out = stats.holm([0.01, float("nan"), 0.04])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])
    assert math.isnan(out[1])
    np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1


def test_benjamini_hochberg_matches_worked_example():
    # ranks 1..4 of sorted p: 0.005*4/1 = 0.02, 0.01*4/2 = 0.02, 0.03*4/3 = 0.04, 0.04*4/4 = 0.04
    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(stats.adjust_pvalues(p, "bh"), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(stats.adjust_pvalues(p, "none"), p)
    with pytest.raises(ConfigError, match="--correction"):
        stats.adjust_pvalues(p, "bonferroni")


def test_tests_that_cannot_reach_significance_are_flagged():
    # Wilcoxon with 5 seeds all on one side: the smallest two-sided p is 2 / 2^5
    assert stats.min_attainable_p("wilcoxon", 5) == pytest.approx(0.0625)
    res = stats.paired_seed_test([2, 3, 4, 5, 6], [1, 1, 1, 1, 1], "wilcoxon")
    assert res.p_value == pytest.approx(0.0625)
    assert "cannot reach p < 0.05" in stats.power_warning(res)
    six = stats.paired_seed_test([2, 3, 4, 5, 6, 7], [1] * 6, "wilcoxon")
    assert six.p_value < 0.05 and stats.power_warning(six) == ""
    # exact McNemar with 5 discordant samples cannot either; 6 can
    assert "5 discordant samples" in stats.power_warning(stats.mcnemar_test(5, 0))
    assert stats.power_warning(stats.mcnemar_test(6, 0)) == ""
    # one seed: the t-test is undefined
    one = stats.paired_seed_test([1.0], [0.0])
    assert math.isnan(one.p_value) and "1 paired seeds" in stats.power_warning(one)
    assert stats.power_warning(stats.mcnemar_test(0, 0)) == ""  # identical, not underpowered


def test_bad_arguments():
    with pytest.raises(ConfigError, match="seed test"):
        stats.paired_seed_test([1, 2], [1, 2], "ztest")
    with pytest.raises(ConfigError, match="equally long"):
        stats.paired_seed_test([1, 2, 3], [1, 2])
    with pytest.raises(ConfigError, match="seeds, clips"):
        stats.crossed_clip_test(np.zeros(5))
    assert stats.significance_marker(0.004) == "**"
    assert stats.significance_marker(0.03) == "*"
    assert stats.significance_marker(0.2) == stats.significance_marker(float("nan")) == ""


def test_nearly_constant_differences_are_flagged_not_warned(recwarn):
    # 0.5-0.4, 0.6-0.5, 0.7-0.6 differ only in the last bits: scipy's t statistic is
    # meaningless there, and the result says so instead of leaking a RuntimeWarning
    res = stats.paired_seed_test([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert "zero spread" in res.note and math.isnan(res.p_value)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_fewer_than_three_seeds_or_constant_differences_give_no_p_value():
    two = stats.paired_seed_test([71.0, 73.0], [60.0, 62.0])  # t = inf with scipy
    assert math.isnan(two.p_value) and "fewer than 3" in two.note
    assert stats.significance_marker(two.p_value) == ""
    const = stats.paired_seed_test([71.0, 73.0, 70.0], [60.0, 62.0, 59.0])
    assert math.isnan(const.p_value) and "zero spread" in const.note
    ok = stats.paired_seed_test([71.0, 73.5, 70.0], [60.0, 62.0, 59.0])
    assert ok.p_value < 0.01 and ok.note == ""


def test_minimum_detectable_difference_matches_textbook_power():
    # paired t-test, alpha 0.05 two-sided, 80% power (Cohen's tables; G*Power):
    # d = 0.5 needs 34 pairs, d = 1.0 needs 10; with 30 pairs d = 0.53 is detectable
    assert stats.seeds_needed(0.5, 1.0) == 34
    assert stats.seeds_needed(2.0, 2.0) == 10  # only the ratio matters
    assert stats.min_detectable_difference(1.0, 30) == pytest.approx(0.529, abs=2e-3)
    assert stats.min_detectable_difference(3.0, 30) == pytest.approx(3 * 0.529, abs=6e-3)
    # more seeds detect smaller differences; one seed or no spread: nothing to say
    assert stats.min_detectable_difference(1.0, 5) > stats.min_detectable_difference(1.0, 10)
    assert math.isnan(stats.min_detectable_difference(1.0, 1))
    assert math.isnan(stats.min_detectable_difference(0.0, 5))
    assert stats.seeds_needed(1e-3, 1.0) is None  # more than 1000


def test_paired_t_interval_matches_hand_computation():
    # differences 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.3027 -> 2 ± 4.3027 / sqrt(3)
    lo, hi = stats.paired_t_interval([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half))
    assert all(math.isnan(v) for v in stats.paired_t_interval([1.0], [0.0]))


def test_crossed_clip_test_matches_its_mean_squares():
    # d_si = seed effect + clip effect + residual; the variance of the mean is
    # (MS_seed + MS_clip - MS_err) / (S I), on Satterthwaite's degrees of freedom
    rng = np.random.default_rng(4)
    d = rng.normal(0, 2, (4, 1))[:, :] + rng.normal(0, 1, (1, 30)) + rng.normal(0.5, 1, (4, 30))
    s, i = d.shape
    m = d.mean()
    ms_s = i * ((d.mean(1) - m) ** 2).sum() / (s - 1)
    ms_c = s * ((d.mean(0) - m) ** 2).sum() / (i - 1)
    r = d - d.mean(1, keepdims=True) - d.mean(0, keepdims=True) + m
    ms_e = (r**2).sum() / ((s - 1) * (i - 1))
    v = ms_s + ms_c - ms_e
    df = v**2 / (ms_s**2 / (s - 1) + ms_c**2 / (i - 1) + ms_e**2 / ((s - 1) * (i - 1)))
    res = stats.crossed_clip_test(d)
    assert res.estimate == pytest.approx(m)
    assert res.se == pytest.approx(math.sqrt(v / (s * i)))
    assert res.df == pytest.approx(df)
    from scipy import stats as sps

    assert res.result.p_value == pytest.approx(2 * sps.t.sf(abs(m) / res.se, df))
    # a seed that is better on every clip at once counts as one seed: the seed term
    # dominates, and the test is no sharper than one over 4 seed means
    assert res.df < 10


def test_pooled_power_pools_the_block_design_error():
    rng = np.random.default_rng(5)
    seeds = rng.normal(0, 3, 6)  # shared by every cell: cancels in paired differences
    y = 70 + seeds[None, :] + rng.normal(0, 1.0, (5, 6))
    p = stats.pooled_power(y)
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    ms = (resid**2).sum() / (4 * 5)
    assert p.df == 20 and p.seeds == 6 and p.cells == 5
    assert p.sd_diff == pytest.approx(math.sqrt(2 * ms))
    assert p.sd_low < p.sd_diff < p.sd_high
    assert p.mdd == pytest.approx(stats.min_detectable_difference(p.sd_diff, 6))
    assert p.mdd_low < p.mdd < p.mdd_high
    point, low, high = p.seeds_for(2.0)
    assert low <= point <= high
    assert stats.pooled_power(y[:1]) is None and stats.pooled_power(y[:, :1]) is None
