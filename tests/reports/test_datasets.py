"""One grid on two datasets: a report per dataset, and the cells against the baseline
across both with the dataset as a block."""

from __future__ import annotations

import numpy as np
import pytest

from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.reports import stats
from asma_bench.reports.build import FigureOptions, write_report
from asma_bench.reports.results import load_grid_runs
from asma_bench.reports.tables import build_grid_report

from .conftest import NUM_TEST, SEEDS, FakeCell, fabricate

NO_FIGURES = FigureOptions(embeddings=False, dataset=False, curves=False, masking_draws=0)


def _cells(rng, source: str | None, gain: float) -> list[FakeCell]:
    """random_random and hdsm_lmtm (``gain`` more correct per seed, a seed-level effect
    with spread) on one dataset, 3 seeds."""
    over = {"data": {"source": source}} if source else {}
    base, better = {}, {}
    for s in SEEDS[:3]:
        base[s] = rng.random(NUM_TEST) < 0.6
        flip = (~base[s]) & (rng.random(NUM_TEST) < gain + rng.normal(0, 0.04))
        better[s] = base[s] | flip
    return [
        FakeCell("random_random", {"spatial": "random", "temporal": "random"}, base,
                 overrides=over),
        FakeCell("hdsm_lmtm", {"spatial": "HDSM", "temporal": "LMTM"}, better, overrides=over),
    ]  # fmt: skip


@pytest.fixture
def two_datasets(tmp_path):
    rng = np.random.default_rng(11)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fabricate(uri, tmp_path, "masking_pairs",
              _cells(rng, None, 0.12) + _cells(rng, str(tmp_path / "ucla"), 0.12))  # fmt: skip
    return uri, tmp_path


def test_a_store_with_two_datasets_is_never_averaged_in_one_table(two_datasets):
    uri, _ = two_datasets
    runs = load_grid_runs(uri, "masking_pairs", load_grid("masking_pairs"))
    assert runs.datasets == sorted(["synthetic/tiny", str(two_datasets[1] / "ucla")])
    with pytest.raises(ConfigError, match="2 datasets"):
        build_grid_report(runs)
    one = build_grid_report(runs.for_dataset("synthetic/tiny"))
    assert one.table.loc["hdsm_lmtm", "seeds"] == 3  # not 6


def test_report_across_datasets_pools_the_seeds_of_both(two_datasets, tmp_path):
    uri, _ = two_datasets
    out = write_report("masking_pairs", uri, tmp_path / "reports", figure_options=NO_FIGURES)
    assert len(out.parts) == 2 and out.across is not None
    row = out.across.table.loc["hdsm_lmtm"]
    # the dataset as a block: 2 × (3 − 1) degrees of freedom, the mean of the two means
    per = [p.report.table.loc["hdsm_lmtm", "delta"] for p in out.parts.values()]
    assert row["df"] == 4 and row["delta"] == pytest.approx(np.mean(per))
    alone = [p.report.table.loc["hdsm_lmtm", "p_seeds"] for p in out.parts.values()]
    assert row["p"] < min(alone)  # a consistent effect shows with fewer seeds per dataset
    assert 0 < row["p_heterogeneity"] <= 1
    md = (tmp_path / "reports" / "masking_pairs" / "masking_pairs_datasets.md").read_text()
    assert "Δ (all datasets)" in md and "tiny" in md and "ucla" in md
    folders = sorted(p.name for p in (tmp_path / "reports").iterdir() if p.is_dir())
    assert folders == ["masking_pairs", "masking_pairs@synthetic-tiny", "masking_pairs@ucla"]
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "across 2 datasets" in index


def test_blocked_test_matches_hand_computation():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([3.0, 5.0])
    r = stats.blocked_paired_test([a, b])
    var = (((a - 2) ** 2).sum() + ((b - 4) ** 2).sum()) / (2 + 1)
    se = np.sqrt(var * (1 / 3 + 1 / 2)) / 2
    assert r.estimate == pytest.approx(3.0) and r.df == 3 and r.se == pytest.approx(se)
    from scipy import stats as sps

    assert r.result.p_value == pytest.approx(2 * sps.t.sf(3.0 / se, 3))
    assert r.low == pytest.approx(3.0 - sps.t.ppf(0.975, 3) * se)
    # heterogeneity: the same mean on both datasets gives F = 0; far apart, a tiny p
    assert stats.blocked_paired_test([a, a + 0.0]).heterogeneity_p == pytest.approx(1.0)
    assert stats.blocked_paired_test([a, a + 20.0]).heterogeneity_p < 1e-3
