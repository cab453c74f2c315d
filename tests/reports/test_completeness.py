"""Empty, partial, failed and foreign stores: a report names what is missing, or fails in
one line, never with a traceback, a hang or a store written to."""

import json
import socket
import sqlite3
import time

import numpy as np
import pandas as pd
import pytest

from asma_bench.cli import main
from asma_bench.errors import ConfigError
from asma_bench.harness.grids import load_grid
from asma_bench.harness.tracking import TrackingError
from asma_bench.reports.build import FigureOptions, write_report
from asma_bench.reports.results import (
    NoResultsError,
    check_sqlite_store,
    load_grid_runs,
    requested_seeds,
)
from asma_bench.reports.tables import (
    ReportOptions,
    build_grid_report,
    display_rows,
    matrix_rows,
    to_markdown,
)

from .conftest import NUM_TEST, FakeCell, fabricate

FAST = ReportOptions()
NO_FIGURES = FigureOptions(embeddings=False, dataset=False, curves=False)


def _cells(seeds_of: dict[str, tuple[int, ...]], failed: dict[str, str] | None = None):
    """masking_pairs cells with the given seeds each (accuracy rises with the cell's order)."""
    spec = {c.name: c for c in load_grid("masking_pairs").all_cells()}
    rng = np.random.default_rng(1)
    out = []
    for i, (name, seeds) in enumerate(seeds_of.items()):
        correct = {s: rng.random(NUM_TEST) < 0.3 + 0.1 * i for s in seeds}
        fails = {s: failed[name] for s in seeds} if failed and name in failed else {}
        out.append(
            FakeCell(
                name,
                {k: str(v) for k, v in spec[name].labels.items()},
                {} if fails else correct,
                failed=fails,
            )
        )
    return out


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """masking_pairs asked for seeds 0, 1, 2 (the older runner's ``seeds`` param); in the
    store hdsm_lmtm lacks seed 2 and hdsm_hmtm, ldsm_lmtm and both references have no run."""
    root = tmp_path_factory.mktemp("partial")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    seeds = {"random_random": (0, 1, 2), "ldsm_hmtm": (0, 1, 2), "hdsm_lmtm": (0, 1)}
    fabricate(uri, root, "masking_pairs", _cells(seeds), parent_params={"seeds": [0, 1, 2]})
    # the newer runner records the seeds as a tag; 3 was added by a rerun
    fabricate(uri, root, "streams", [FakeCell("a", {"x": "1"}, {0: np.ones(NUM_TEST, bool)})],
              parent_tags={"asma.seeds": "[0, 3]"})  # fmt: skip
    all_failed = {"random_random": (0, 1), "ldsm_hmtm": (0,)}
    fabricate(
        uri, root, "objectives",
        _cells(all_failed, failed={"random_random": "pretrain: loss is nan at epoch 0",
                                   "ldsm_hmtm": "CUDA out of memory"}),
    )  # fmt: skip
    return uri, root


def test_partial_store_names_missing_cells_and_seeds(partial):
    uri, _ = partial
    runs = load_grid_runs(uri, "masking_pairs", load_grid("masking_pairs"))
    assert runs.expected_seeds == [0, 1, 2] and "parent run" in runs.seeds_source
    assert runs.missing == {
        "hdsm_lmtm": [2],
        "hdsm_hmtm": [0, 1, 2],
        "ldsm_lmtm": [0, 1, 2],
        "random_init": [0, 1, 2],
        "supervised": [0, 1, 2],
    }
    rep = build_grid_report(runs, FAST)
    # every cell of the grid is a row; those without a run say so instead of vanishing
    t = rep.table
    assert list(t.index) == [c.name for c in load_grid("masking_pairs").all_cells()]
    rows = display_rows(rep)
    hmtm = rows[(rows["spatial"] == "HDSM") & (rows["temporal"] == "HMTM")].iloc[0]
    assert hmtm["test_top1"] == "no result" and hmtm["seeds"] == "0/3"
    lmtm = rows[(rows["spatial"] == "HDSM") & (rows["temporal"] == "LMTM")].iloc[0]
    assert lmtm["seeds"] == "2/3" and t.loc["hdsm_lmtm", "pairs"] == 2
    assert rows[rows["spatial"] == "random"].iloc[0]["seeds"] == "3"
    # the warnings name the cells and the (cell, seed) units
    notes = rep.notes
    assert notes[0].startswith("warning: incomplete grid: 13 of 21 units (7 cells × seeds 0, 1, 2")
    assert "13 with no run in the store, 0 failed" in notes[0]
    assert (
        "warning: no finished run at all (row shows 'no result' or 'failed'): "
        "hdsm_hmtm, ldsm_lmtm, random_init, supervised." in notes
    )
    assert (
        "warning: no run in the store for hdsm_lmtm (seed 2); hdsm_hmtm (every seed: 0, 1, 2);"
        in notes[2]
    )
    md = to_markdown(rep)
    assert "| HDSM | HMTM | no result | 0/3 |" in md
    assert "- warning: no run in the store for hdsm_lmtm (seed 2)" in md
    missing = rep.per_seed[rep.per_seed["status"] == "MISSING"]
    assert len(missing) == 13 and set(missing["reason"]) == {"no run in the store"}


def test_partial_report_page_and_heatmap_say_what_is_missing(partial, tmp_path):
    uri, _ = partial
    out = write_report("masking_pairs", uri, tmp_path / "rep", tmp_path, FAST,
                       figure_options=NO_FIGURES)  # fmt: skip
    heat = next(f for f in out.figures if f["name"] == "masking_pairs_heatmap")
    assert "Blank: no finished run of hdsm_hmtm, ldsm_lmtm." in heat["caption"]
    assert "Fewer seeds than requested: hdsm_lmtm" in heat["caption"]
    page = out.index.read_text()
    assert "warning: no run in the store for hdsm_lmtm (seed 2)" in page
    assert "no result" in page


def test_partial_report_command_prints_a_warning_block(partial, tmp_path, capsys, monkeypatch):
    from asma_bench.reports import build

    uri, _ = partial
    monkeypatch.setattr(build, "_dataset", lambda *a: [])  # would generate a dataset
    code = main(["report", "--grid", "masking_pairs", "--store", uri, "--out",
                 str(tmp_path / "rep"), "--runs", str(tmp_path), "--no-embeddings"])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Traceback" not in out.err
    assert "  warning: incomplete grid: 13 of 21 units" in out.err
    assert "  warning: no run in the store for hdsm_lmtm (seed 2); hdsm_hmtm" in out.err
    assert "no result" in out.out and "2/3" in out.out


def test_requested_seeds_from_the_tag_or_the_param(partial):
    uri, _ = partial
    runs = load_grid_runs(uri, "streams")  # a grid known only from the store
    assert runs.expected_seeds == [0, 3] and runs.missing == {"a": [3]}
    assert any("seed 3" in n for n in runs.notes)
    parents = pd.DataFrame(
        {"params.seeds": ["[0, 1, 2]", None], "tags.asma.seeds": [None, "[2, 5]"]}
    )
    assert requested_seeds(parents) == [0, 1, 2, 5]
    assert requested_seeds(pd.DataFrame({"params.seeds": ["0,1"]})) == [0, 1]
    assert requested_seeds(pd.DataFrame({"tags.asma.seeds": ["oops"]})) == []
    assert requested_seeds(pd.DataFrame()) == []


def test_without_requested_seeds_the_union_seen_is_expected(fake_store):
    # the fabricated store records no seeds: every seed seen counts, and the note says so
    runs = load_grid_runs(fake_store.uri, "masking_pairs", load_grid("masking_pairs"))
    assert runs.expected_seeds == [0, 1, 2, 3, 4] and "seen in the store" in runs.seeds_source
    assert runs.missing == {"supervised": [0, 1, 2, 3, 4]}
    rep = build_grid_report(runs, FAST)
    assert "seen in the store; the requested seeds were not recorded" in rep.notes[0]
    # a complete grid has no completeness warning
    mine = load_grid_runs(fake_store.uri, "mine")
    assert mine.missing == {} and not any("incomplete" in n for n in mine.notes)


def test_a_baseline_without_finished_runs(partial):
    uri, _ = partial
    spec = load_grid("masking_pairs").model_copy(update={"baseline": "hdsm_hmtm"})
    runs = load_grid_runs(uri, "masking_pairs", spec)
    assert runs.baseline is None
    assert any("baseline hdsm_hmtm has no finished run" in n for n in runs.notes)
    rep = build_grid_report(runs, FAST)
    assert "Δ" not in display_rows(rep).columns
    with pytest.raises(ConfigError, match="--baseline 'hdsm_hmtm': no finished run"):
        load_grid_runs(uri, "masking_pairs", load_grid("masking_pairs"), baseline="hdsm_hmtm")


def test_no_finished_unit_is_an_error_naming_the_failures(partial, tmp_path, capsys):
    uri, _ = partial
    with pytest.raises(NoResultsError, match="no unit finished"):
        load_grid_runs(uri, "objectives")
    code = main(["report", "--grid", "objectives", "--store", uri, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "Traceback" not in err
    assert "no unit finished" in err and "3 FAILED" in err
    assert "ldsm_hmtm (seed 0); random_random (seeds 0, 1)" in err
    assert "first reason:" in err


def test_a_store_without_the_grid_lists_the_grids_it_has(partial):
    uri, _ = partial
    with pytest.raises(ConfigError, match=r"no runs of this grid .*grids there: masking_pairs"):
        load_grid_runs(uri, "backbones")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_fails_fast_in_one_line(tmp_path, capsys):
    uri = f"http://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    code = main(["report", "--grid", "masking_pairs", "--store", uri, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert time.monotonic() - t0 < 30  # MLflow's own retries take minutes
    assert code != 0 and err.count("\n") == 1 and "unreachable" in err and uri in err
    with pytest.raises(TrackingError, match="unreachable"):
        load_grid_runs(uri, "masking_pairs")


def _tables(path) -> list[str]:
    con = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master"))
    finally:
        con.close()


def test_foreign_sqlite_files_are_refused_and_left_alone(tmp_path, capsys):
    optuna = tmp_path / "optuna.db"
    con = sqlite3.connect(optuna)
    con.execute("CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name TEXT)")
    con.execute("CREATE TABLE trials (trial_id INTEGER PRIMARY KEY, study_id INTEGER)")
    con.commit()
    con.close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    text = tmp_path / "notes.db"
    text.write_text(json.dumps({"not": "sqlite"}) * 100)
    before = {p: p.read_bytes() for p in (optuna, empty, text)}
    for path, why in (
        (optuna, "no table alembic_version, experiments, runs"),
        (empty, "an empty SQLite file"),
        (text, "not a database"),
    ):
        uri = f"sqlite:///{path}"
        code = main(["report", "--grid", "masking_pairs", "--store", uri,
                     "--out", str(tmp_path / "rep")])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert f"--store: {path} is not an MLflow tracking store" in err and why in err
        with pytest.raises(ConfigError, match="not an MLflow tracking store"):
            load_grid_runs(uri, "masking_pairs")  # the library refuses it too
    assert {p: p.read_bytes() for p in before} == before  # nothing written into them
    assert _tables(optuna) == ["studies", "trials"]
    gone = tmp_path / "nothing" / "here.db"
    with pytest.raises(ConfigError, match="no MLflow store at"):
        load_grid_runs(f"sqlite:///{gone}", "masking_pairs")
    assert not gone.exists() and not gone.parent.exists()


def test_a_real_store_passes_the_check(fake_store):
    check_sqlite_store(fake_store.uri)  # no error
    check_sqlite_store("http://example.invalid")  # other backends are not inspected


def test_sample_level_significance_has_its_own_mark(fake_store):
    runs = load_grid_runs(fake_store.uri, "masking_pairs", load_grid("masking_pairs"))
    rep = build_grid_report(runs, FAST)
    t = rep.table
    assert t.loc["hdsm_lmtm", "p_samples_adj"] < 0.001 and t.loc["hdsm_lmtm", "sig_samples"] == "**"
    assert t.loc["random_random", "sig_samples"] == "baseline"
    for cell in t.index.drop("random_random"):
        p = t.loc[cell, "p_samples_adj"]
        expect = "" if not np.isfinite(p) else "**" if p < 0.01 else "*" if p < 0.05 else ""
        assert t.loc[cell, "sig_samples"] == expect, cell
    rows = display_rows(rep)
    assert {"sig. (seeds)", "sig. (samples)"} <= set(rows.columns) and "sig." not in rows
    notes = " ".join(rep.notes)
    assert "Column 'sig. (seeds)' marks p (seeds)" in notes
    assert "'sig. (samples)': * p < 0.05" in notes
    assert "crossed random-effects test" in notes
    off = build_grid_report(runs, ReportOptions(per_clip=False))
    assert (off.table["sig_samples"].drop("random_random") == "").all()
    assert "no per-clip test (--no-per-clip)" in " ".join(off.notes)


def test_matrix_says_no_result_for_a_cell_without_runs(fake_store):
    from asma_bench.harness.grids import CellSpec, GridSpec

    spec = GridSpec(
        name="mine",
        baseline="n9_k10",
        references=[],
        cells=[CellSpec(name=c.name, labels=c.labels) for c in fake_store.matrix]
        + [CellSpec(name=f"n11_k{k}", labels={"n": 11, "k": k}) for k in (8, 10)],
    )
    rep = build_grid_report(load_grid_runs(fake_store.uri, "mine", spec), FAST)
    m = matrix_rows(rep).set_index("n \\ k")
    assert list(m.loc["11"]) == ["no result", "no result"]
    assert "* / ** as in 'sig. (seeds)'" in to_markdown(rep)
