"""The two-way ANOVA of a crossed grid against least squares, on designs whose answer is
known, and on the masking_pairs store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.reports.factorial import complete_crossing, two_way_anova
from asma_bench.reports.results import load_grid_runs
from asma_bench.reports.tables import ReportOptions, build_grid_report, to_markdown

from .conftest import NUM_TEST, FakeCell, fabricate


def design(effect_a, effect_b, interaction=0.0, seeds=4, noise=1.0, seed=0) -> pd.DataFrame:
    """y = 60 + α_i + β_j + γ·[i = 0 and j = 0] + block_s + N(0, noise²)."""
    rng = np.random.default_rng(seed)
    rows = []
    blocks = rng.normal(0, 2.0, size=seeds)
    for i, ea in enumerate(effect_a):
        for j, eb in enumerate(effect_b):
            for s in range(seeds):
                y = 60 + ea + eb + interaction * (i == 0 and j == 0) + blocks[s]
                rows.append({"A": f"a{i}", "B": f"b{j}", "seed": s,
                             "value": y + rng.normal(0, noise)})  # fmt: skip
    return pd.DataFrame(rows)


def rss(df: pd.DataFrame, terms: list[str]) -> float:
    """Residual sum of squares of a least-squares fit with dummy-coded ``terms``."""
    cols = [np.ones(len(df))]
    for term in terms:
        factor = df["A"] + ":" + df["B"] if term == "AB" else df[term].astype(str)
        dummies = pd.get_dummies(factor, drop_first=True).to_numpy(float)
        cols.append(dummies)
    x = np.column_stack(cols)
    beta, *_ = np.linalg.lstsq(x, df["value"].to_numpy(), rcond=None)
    return float(((df["value"].to_numpy() - x @ beta) ** 2).sum())


def test_sums_of_squares_equal_least_squares_model_comparisons():
    df = design([0.0, 2.0, -1.0], [0.0, 1.5], interaction=1.0, seeds=4)
    r = two_way_anova(df, "A", "B")
    e = r.effects
    full = rss(df, ["seed", "A", "B", "AB"])
    additive = rss(df, ["seed", "A", "B"])
    assert e.loc["residual", "ss"] == pytest.approx(full, rel=1e-9)
    assert e.loc["A × B", "ss"] == pytest.approx(additive - full, rel=1e-9)
    assert e.loc["A", "ss"] == pytest.approx(rss(df, ["seed", "B"]) - additive, rel=1e-9)
    assert e.loc["B", "ss"] == pytest.approx(rss(df, ["seed", "A"]) - additive, rel=1e-9)
    assert e.loc["seed", "ss"] == pytest.approx(rss(df, ["A", "B"]) - additive, rel=1e-9)
    assert list(e["df"]) == [2, 1, 2, 3, 15]  # (ab − 1)(s − 1) = 5·3 residual df
    f = e.loc["A", "ms"] / e.loc["residual", "ms"]
    assert e.loc["A", "p"] == pytest.approx(sps.f.sf(f, 2, 15))
    eta = e.loc["B", "ss"] / (e.loc["B", "ss"] + e.loc["residual", "ss"])
    assert e.loc["B", "partial_eta2"] == pytest.approx(eta)


def test_a_real_factor_is_found_and_an_absent_one_is_not():
    r = two_way_anova(design([0.0, 4.0, 8.0], [0.0, 0.0], seeds=5, seed=3), "A", "B")
    assert r.effects.loc["A", "p"] < 0.001
    assert r.effects.loc["B", "p"] > 0.05
    assert r.effects.loc["A × B", "p"] > 0.05
    means = r.marginal.set_index("level")["mean"]
    assert means["a2"] - means["a0"] == pytest.approx(8.0, abs=1.5)
    lo, hi = r.marginal.set_index("level").loc["a1", ["low", "high"]]
    assert lo < means["a1"] < hi
    # 4-point steps are far above what 5 seeds can see; the detectable difference is small
    assert 0 < r.mdd["A"] < 4.0


def test_detectable_difference_shrinks_with_more_seeds():
    few = two_way_anova(design([0, 1], [0, 1], seeds=3, seed=1), "A", "B").mdd["A"]
    many = two_way_anova(design([0, 1], [0, 1], seeds=12, seed=1), "A", "B").mdd["A"]
    assert many < few


def test_an_unbalanced_design_is_analysed_and_says_what_is_missing():
    df = design([0.0, 3.0], [0.0, 1.0], interaction=0.5, seeds=4, seed=2)
    gone = df.iloc[1:]  # one (cell, seed) run failed
    r = two_way_anova(gone, "A", "B")
    assert r.missing == [("a0", "b0", 0)] and "1 of 16" in " ".join(r.notes)
    # Type II: each effect is the rise in RSS when it is dropped from the model with every
    # term not containing it
    e = r.effects
    additive = rss(gone, ["seed", "A", "B"])
    assert e.loc["A", "ss"] == pytest.approx(rss(gone, ["seed", "B"]) - additive, rel=1e-9)
    assert e.loc["A × B", "ss"] == pytest.approx(
        additive - rss(gone, ["seed", "A", "B", "AB"]), rel=1e-9
    )
    assert e.loc["residual", "df"] == 15 - 7  # n − rank(intercept, A, B, A×B, 3 seeds)
    with pytest.raises(ConfigError, match="at least 2 seeds"):
        two_way_anova(df[df["seed"] == 0], "A", "B")
    with pytest.raises(ConfigError, match="two observations"):
        two_way_anova(pd.concat([df, df.iloc[:1]]), "A", "B")


def test_masking_pairs_core_is_its_2x2_crossing():
    grid = load_grid("masking_pairs")
    labels = {c.name: c.labels for c in grid.all_cells()}
    kept, left = complete_crossing(labels, list(labels), "spatial", "temporal")
    assert sorted(kept) == ["hdsm_hmtm", "hdsm_lmtm", "ldsm_hmtm", "ldsm_lmtm"]
    assert left == ["random_random"]


def test_factorial_grid_crosses_four_spatial_and_three_temporal_maskings():
    grid = load_grid("masking_factorial")
    labels = {c.name: c.labels for c in grid.all_cells()}
    kept, left = complete_crossing(labels, list(labels), "spatial", "temporal")
    assert len(kept) == 12 and left == []
    assert {labels[c]["spatial"] for c in kept} == {
        "random", "HDSM", "LDSM (eq. 2)", "LDSM (inverse degree)"
    }  # fmt: skip


def test_no_analysis_when_a_crossed_cell_has_no_finished_seed(fake_store):
    runs = load_grid_runs(fake_store.uri, "masking_pairs", load_grid("masking_pairs"))
    report = build_grid_report(runs, ReportOptions())
    assert report.factorial is None  # ldsm_lmtm failed on every seed
    assert any("No factorial analysis" in n and "ldsm_lmtm" in n for n in report.notes)


def test_report_of_a_crossed_grid_carries_the_analysis(tmp_path):
    """The temporal factor adds 15 points of accuracy, the spatial one nothing."""
    rng = np.random.default_rng(5)
    cells = []
    for sp in ("HDSM", "LDSM"):
        for tm, rate in (("HMTM", 0.70), ("LMTM", 0.55)):
            correct = {s: rng.random(NUM_TEST) < rate for s in (0, 1, 2, 3)}
            name = f"{sp.lower()}_{tm.lower()}"
            cells.append(FakeCell(name, {"spatial": sp, "temporal": tm}, correct))
    cells.append(FakeCell("random_random", {"spatial": "random", "temporal": "random"},
                          {s: rng.random(NUM_TEST) < 0.6 for s in (0, 1, 2, 3)}))  # fmt: skip
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fabricate(uri, tmp_path, "masking_pairs", cells)
    runs = load_grid_runs(uri, "masking_pairs", load_grid("masking_pairs"))
    report = build_grid_report(runs, ReportOptions())
    f = report.factorial
    assert f is not None and f.factors == ("spatial", "temporal") and f.seeds == 4
    assert f.effects.loc["temporal", "p"] < 0.01
    text = to_markdown(report)
    assert "Two-way analysis of variance: spatial × temporal" in text
    assert "left out: random_random" in text
    assert "temporal matters" in text
