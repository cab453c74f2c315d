"""Which figures a grid gets follows its labels; all reports of a folder share one page."""

import numpy as np
import pandas as pd
import pytest

from asma_bench.harness.grids import load_grid
from asma_bench.reports import figures
from asma_bench.reports.build import FigureOptions, write_report
from asma_bench.reports.tables import ReportOptions

from .conftest import NUM_CLASSES, NUM_TEST, FakeCell, fabricate

FAST = ReportOptions()


def names(out):
    return sorted(f["name"] for f in out.figures)


def test_sweep_gets_a_sensitivity_curve(fake_store, tmp_path):
    out = write_report(
        "distill_tau",
        fake_store.uri,
        tmp_path / "rep",
        tmp_path,
        FAST,
        figure_options=FigureOptions(embeddings=False, dataset=False),
    )
    assert names(out) == ["distill_tau_curves", "distill_tau_tau_curve"]
    curve = next(f for f in out.figures if f["name"] == "distill_tau_tau_curve")
    assert "Fig. 4" in curve["caption"] and "±1 std band" in curve["caption"]
    table = out.report.table
    assert list(table[table["seeds"] > 0].index) == ["tau1", "tau4", "tau8"]
    # the grid's other taus have no run: rows that say so, and a warning naming them
    assert len(table) == len(load_grid("distill_tau").all_cells())
    assert any(n.startswith("warning: no run in the store for tau2") for n in out.report.notes)
    assert out.report.baseline == "tau8"  # from the built-in grid definition


def test_two_encoder_runs_get_the_per_class_difference(fake_store, tmp_path, monkeypatch):
    seen = {}
    original = figures.per_class_difference

    def spy(difference, class_names, **kwargs):
        seen["difference"], seen["names"] = np.asarray(difference), list(class_names)
        return original(difference, class_names, **kwargs)

    monkeypatch.setattr(figures, "per_class_difference", spy)
    out = write_report(
        "encoders",
        fake_store.uri,
        tmp_path / "rep",
        tmp_path,
        FAST,
        figure_options=FigureOptions(embeddings=False, dataset=False),
    )
    assert "encoders_per_class_theta_phi" in names(out)
    # f_theta is right exactly on class 0, f_phi on classes 1 and 2 (see encoder_cells)
    expected = np.zeros(NUM_CLASSES)
    expected[0], expected[1:3] = 100.0, -100.0
    np.testing.assert_allclose(seen["difference"], expected)
    assert seen["names"] == [f"class {k}" for k in range(NUM_CLASSES)]
    fig = next(f for f in out.figures if f["name"] == "encoders_per_class_theta_phi")
    assert "cell aligned, mean over 2 seed(s)" in fig["caption"]


def test_missing_checkpoints_skip_a_figure_with_the_reason(fake_store, tmp_path):
    out = write_report(
        "masking_pairs",
        fake_store.uri,
        tmp_path / "rep",
        tmp_path,
        FAST,
        figure_options=FigureOptions(dataset=False, curves=False),
    )
    assert names(out) == ["masking_pairs_heatmap"]  # its cells all mask alike: no section
    assert len(out.skipped) == 1 and "pretraining checkpoint not found" in out.skipped[0]
    page = out.index.read_text()
    assert "figure not drawn — embeddings" in page


def test_a_grid_that_compares_maskings_shows_what_each_one_hides(tmp_path):
    rng = np.random.default_rng(0)
    cells = [
        FakeCell(pairing, {"spatial": pairing[:4], "temporal": pairing[5:]},
                 {0: rng.random(NUM_TEST) < 0.5}, overrides={"masking": {"pairing": pairing}})
        for pairing in ("ldsm_hmtm", "hdsm_lmtm")
    ]  # fmt: skip
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    fabricate(uri, tmp_path, "masking_pairs", cells)
    opts = FigureOptions(embeddings=False, dataset=False, curves=False, masking_draws=300)
    out = write_report("masking_pairs", uri, tmp_path / "rep", tmp_path, FAST, figure_options=opts)
    assert {"maskings_joints", "maskings_motion"} <= set(names(out))
    page = out.index.read_text()
    assert "What each masking strategy of the grid masks: 300 draws" in page
    diag = pd.read_csv(out.folder / "maskings.csv", index_col=0)
    assert set(diag.index) == {"ldsm", "hmtm", "hdsm", "lmtm"}
    assert diag.loc["hmtm", "motion percentile"] > 70 > 30 > diag.loc["lmtm", "motion percentile"]
    assert diag.loc["hdsm", "mean degree"] > diag.loc["ldsm", "mean degree"]


def test_one_page_gathers_the_folder(fake_store, tmp_path):
    opts = FigureOptions(embeddings=False, dataset=False, curves=False)
    write_report(
        "distill_tau", fake_store.uri, tmp_path / "rep", tmp_path, FAST, figure_options=opts
    )
    out = write_report(
        "mine",
        fake_store.uri,
        tmp_path / "rep",
        tmp_path,
        FAST,
        baseline="n9_k10",
        figure_options=opts,
    )
    page = out.index.read_text()
    assert "Grid distill_tau" in page and "Grid mine" in page
    assert "mine/figures/mine_heatmap.png" in page  # n x k grid: a heatmap of the matrix
    assert "distill_tau/figures/distill_tau_tau_curve.png" in page


@pytest.mark.parametrize("grid", ["../etc", "a'b"])
def test_bad_grid_names_are_refused(fake_store, tmp_path, grid):
    from asma_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="--grid"):
        write_report(grid, fake_store.uri, tmp_path, tmp_path)
