"""The k-NN accuracy linear evaluation logs beside its top-1: a column of the grid's tables
(Markdown, LaTeX, CSV, HTML) and of the runner's summary, present only where runs have it."""

import numpy as np
import pandas as pd
import pytest

from asma_bench.harness.grids import CellSpec, GridSpec, load_grid
from asma_bench.harness.runner import summary_table
from asma_bench.reports.build import FigureOptions, write_report
from asma_bench.reports.results import load_grid_runs
from asma_bench.reports.tables import (
    ReportOptions,
    build_grid_report,
    display_rows,
    to_latex,
    to_markdown,
    write_grid_report,
)

from .conftest import NUM_TEST, FakeCell, fabricate

FAST = ReportOptions()
SEEDS = (0, 1, 2)
KNN = {
    "base": {0: 40.0, 1: 42.0, 2: 47.0},
    "ldsm": {0: 50.0, 1: 53.0},  # seed 2 ran before k-NN was logged
}
THETA_KNN = {0: 30.0, 1: 34.0, 2: 35.0}


def knn_cells() -> list[FakeCell]:
    rng = np.random.default_rng(11)
    correct = {
        name: {s: rng.random(NUM_TEST) < p for s in SEEDS}
        for name, p in (("base", 0.5), ("ldsm", 0.6), ("hdsm", 0.55))
    }
    return [
        FakeCell(
            "base",
            {"pairing": "random"},
            correct["base"],
            metrics={
                "test_knn_top1": KNN["base"],
                "theta_test_top1": {0: 61.0, 1: 62.0, 2: 66.0},
                "theta_test_knn_top1": THETA_KNN,
            },
        ),
        FakeCell(
            "ldsm", {"pairing": "LDSM"}, correct["ldsm"], metrics={"test_knn_top1": KNN["ldsm"]}
        ),
        FakeCell("hdsm", {"pairing": "HDSM"}, correct["hdsm"]),  # no k-NN at all
    ]


@pytest.fixture(scope="module")
def knn_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("knn_store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    cells = knn_cells()
    fabricate(uri, root, "knn_grid", cells, table="Table 3")
    spec = GridSpec(
        name="knn_grid",
        baseline="base",
        references=[],
        cells=[CellSpec(name=c.name, labels=c.labels) for c in cells],
    )
    return uri, root, spec, {c.name: c for c in cells}


@pytest.fixture(scope="module")
def knn_report(knn_store):
    uri, _, spec, _ = knn_store
    return build_grid_report(load_grid_runs(uri, "knn_grid", spec), FAST)


def test_knn_mean_and_std_beside_the_linear_top1(knn_report):
    rep, t = knn_report, knn_report.table
    assert rep.knn == "test_knn_top1"
    for name, values in KNN.items():
        assert t.loc[name, "knn_mean"] == pytest.approx(np.mean(list(values.values())))
        assert t.loc[name, "knn_std"] == pytest.approx(np.std(list(values.values()), ddof=1))
        assert t.loc[name, "knn_seeds"] == len(values)
    assert t.loc["hdsm", "knn_seeds"] == 0 and np.isnan(t.loc["hdsm", "knn_mean"])
    assert (t["seeds"] == 3).all()  # the linear top-1 of every seed, k-NN or not
    rows = display_rows(rep).set_index("pairing")
    cols = list(rows.columns)
    assert cols[cols.index("test_top1") + 1] == "test_knn_top1"
    std = np.std([40.0, 42.0, 47.0], ddof=1)
    assert rows.loc["random", "test_knn_top1"] == f"43.00 ± {std:.2f}"
    assert rows.loc["LDSM", "test_knn_top1"] == "51.50 ± 2.12 (2 seeds)"
    assert rows.loc["HDSM", "test_knn_top1"] == "–"
    assert any(n.startswith("Column 'test_knn_top1': k-NN top-1") for n in rep.notes)


def test_significance_stays_on_the_linear_top1(knn_report, knn_store):
    cells = knn_store[3]
    t = knn_report.table
    diffs = [
        100.0 * (cells["ldsm"].correct[s].mean() - cells["base"].correct[s].mean()) for s in SEEDS
    ]
    assert t.loc["ldsm", "delta"] == pytest.approx(np.mean(diffs))
    assert t.loc["ldsm", "pairs"] == 3  # all three seeds, though one has no k-NN


def test_knn_column_in_every_file(knn_report, knn_store, tmp_path):
    uri, root, _, _ = knn_store
    assert "| test_top1 | test_knn_top1 | seeds |" in to_markdown(knn_report)
    assert r"test\_top1 & test\_knn\_top1 & seeds" in to_latex(knn_report)
    assert r"\num{43.00} $\pm$" in to_latex(knn_report)
    paths = write_grid_report(knn_report, tmp_path / "tables")
    csv = pd.read_csv(paths["csv"], index_col="cell")
    assert csv.loc["base", "knn_mean"] == pytest.approx(43.0)
    assert csv.loc["ldsm", "knn_seeds"] == 2 and (csv["knn_metric"] == "test_knn_top1").all()
    seeds = pd.read_csv(paths["seeds"]).set_index(["cell", "seed"])
    assert seeds.loc[("ldsm", 1), "knn_value"] == 53.0
    assert np.isnan(seeds.loc[("ldsm", 2), "knn_value"])
    out = write_report(
        "knn_grid", uri, tmp_path / "rep", root, FAST, baseline="base",
        figure_options=FigureOptions(embeddings=False, dataset=False, curves=False),
    )  # fmt: skip
    page = out.index.read_text()
    assert "<th>test_knn_top1</th>" in page and "51.50 ± 2.12 (2 seeds)" in page


def test_a_per_encoder_metric_gets_its_own_knn(knn_store):
    uri, _, spec, _ = knn_store
    runs = load_grid_runs(uri, "knn_grid", spec)
    rep = build_grid_report(runs, ReportOptions(metric="theta_test_top1"))
    assert rep.knn == "theta_test_knn_top1"
    assert rep.table.loc["base", "knn_mean"] == pytest.approx(np.mean(list(THETA_KNN.values())))
    assert "theta_test_knn_top1" in display_rows(rep).columns


def test_no_knn_column_without_the_metric(fake_store, tmp_path):
    runs = load_grid_runs(fake_store.uri, "masking_pairs", load_grid("masking_pairs"))
    rep = build_grid_report(runs, FAST)
    assert rep.knn is None
    assert not [c for c in rep.table.columns if c.startswith("knn")]
    assert not [c for c in display_rows(rep).columns if "knn" in c]
    assert "knn" not in to_markdown(rep) and "knn" not in to_latex(rep)
    paths = write_grid_report(rep, tmp_path)
    assert "knn" not in paths["csv"].read_text() and "knn" not in paths["seeds"].read_text()


def test_runner_summary_shows_knn_only_when_logged():
    results = pd.DataFrame(
        {
            "cell": ["a", "a", "a", "random_init", "random_init", "random_init"],
            "seed": [0, 1, 2, 0, 1, 2],
            "test_top1": [60.0, 62.0, 64.0, 30.0, 31.0, 32.0],
            "test_knn_top1": [50.0, 51.0, np.nan, 20.0, 24.0, 28.0],
            "linear_loss": [0.5] * 6,
        }
    )
    table = summary_table(results, ["a", "random_init"])
    assert list(table.columns) == [
        "mean", "std", "knn_mean", "knn_std", "seeds", "vs_random_init",
    ]  # fmt: skip
    assert table.loc["a", "mean"] == pytest.approx(62.0)
    assert table.loc["a", "knn_mean"] == pytest.approx(50.5)
    assert table.loc["a", "knn_std"] == pytest.approx(np.std([50.0, 51.0], ddof=1))
    assert table.loc["random_init", "knn_std"] == pytest.approx(4.0)
    assert table.loc["a", "vs_random_init"] == "better"  # on test_top1
    old = summary_table(results.drop(columns="test_knn_top1"), ["a", "random_init"])
    assert list(old.columns) == ["mean", "std", "seeds", "vs_random_init"]
