"""Grid tables from an MLflow store: numbers, comparisons, failures, layouts, files."""

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from asma_bench.errors import ConfigError
from asma_bench.harness.grids import CellSpec, GridSpec, load_grid
from asma_bench.reports import stats
from asma_bench.reports.results import load_grid_runs, resolve_tracking_uri
from asma_bench.reports.tables import (
    ReportOptions,
    build_grid_report,
    display_rows,
    latex_escape,
    matrix_rows,
    seed_test_na,
    to_latex,
    to_markdown,
    write_grid_report,
)

from .conftest import SEEDS


@pytest.fixture(scope="module")
def report(fake_store):
    runs = load_grid_runs(fake_store.uri, "masking_pairs", load_grid("masking_pairs"))
    return build_grid_report(runs, ReportOptions())


def test_cells_in_grid_order_with_mean_std_and_counts(report, fake_store):
    t = report.table
    assert list(t.index) == [
        "ldsm_hmtm",
        "hdsm_lmtm",
        "hdsm_hmtm",
        "ldsm_lmtm",
        "random_random",
        "random_init",
        "supervised",  # in the grid definition, no run in the store: a row, not a gap
    ]
    for name in ("random_random", "hdsm_lmtm", "hdsm_hmtm", "random_init"):
        cell = fake_store.cells[name]
        values = [cell.accuracy(s) for s in SEEDS if s in cell.correct]
        assert t.loc[name, "mean"] == pytest.approx(np.mean(values))
        assert t.loc[name, "std"] == pytest.approx(np.std(values, ddof=1))
        assert t.loc[name, "seeds"] == len(values)
    assert t.loc["hdsm_hmtm", "failed"] == 1 and t.loc["hdsm_hmtm", "seeds"] == 4
    assert t.loc["ldsm_lmtm", "failed"] == 5 and t.loc["ldsm_lmtm", "seeds"] == 0
    assert np.isnan(t.loc["ldsm_lmtm", "mean"])
    assert t.loc["random_init", "spatial"] == "random init (reference)"
    assert t.loc["supervised", "seeds"] == 0 and t.loc["supervised", "failed"] == 0
    assert (t["expected"] == len(SEEDS)).all()  # no seeds on the parent: every seed seen


def test_comparisons_against_the_baseline(report, fake_store):
    t = report.table
    # an exact copy of the baseline: no difference at all
    assert t.loc["ldsm_hmtm", "delta"] == 0.0
    # over seeds no test is defined (zero spread): no p-value, 'n/a' and the reason
    assert np.isnan(t.loc["ldsm_hmtm", "p_seeds"]) and t.loc["ldsm_hmtm", "sig"] == ""
    assert seed_test_na(t)["ldsm_hmtm"] and not seed_test_na(t)["hdsm_lmtm"]
    # per clip: identical predictions at every seed give no test either
    assert np.isnan(t.loc["ldsm_hmtm", "p_samples"])
    # a large effect, stored in shuffled sample order (McNemar pairs by index)
    cells = fake_store.cells
    base, better = cells["random_random"], cells["hdsm_lmtm"]
    diffs = [better.accuracy(s) - base.accuracy(s) for s in SEEDS]
    assert t.loc["hdsm_lmtm", "delta"] == pytest.approx(np.mean(diffs))
    assert t.loc["hdsm_lmtm", "p_seeds_adj"] < 0.01 and t.loc["hdsm_lmtm", "sig"] == "**"
    # the per-clip test over seeds × clips (pairs clips by dataset index): far from zero
    assert t.loc["hdsm_lmtm", "p_samples"] < 1e-3 and t.loc["hdsm_lmtm", "clip_df"] >= 1
    lo, hi = t.loc["hdsm_lmtm", ["ci_low", "ci_high"]]
    assert lo <= np.mean(diffs) <= hi
    # a seed failed: Δ is over the 4 seeds both cells have
    assert t.loc["hdsm_hmtm", "pairs"] == 4
    # the masking cells' p-values are corrected together (Holm by default); the
    # reference rows form a family of their own
    refs = ["random_init", "supervised"]
    cells_ = t.index.drop(["random_random", *refs])
    for col in ("p_seeds", "p_samples"):
        np.testing.assert_allclose(
            t.loc[cells_, f"{col}_adj"], stats.holm(t.loc[cells_, col]), equal_nan=True
        )
        np.testing.assert_allclose(
            t.loc[refs, f"{col}_adj"], stats.holm(t.loc[refs, col]), equal_nan=True
        )
    assert np.isnan(t.loc["ldsm_lmtm", "p_seeds"])  # failed cells are not compared
    assert t.loc["random_random", "sig"] == "baseline"


def test_failures_are_shown_as_failed_never_as_numbers(report):
    rows = display_rows(report).set_index("spatial")
    assert rows.loc["LDSM"].iloc[1]["test_top1"] == "failed (5 units)"
    md = to_markdown(report)
    assert "failed (5 units)" in md
    assert "FAILED: hdsm_hmtm seed 0: pretrain: loss is nan at epoch 0" in md
    assert sum("loss is inf at epoch 1" in n for n in report.notes) == 5
    seeds = report.per_seed
    failed = seeds[seeds["status"] == "FAILED"]
    assert len(failed) == 6 and failed["value"].isna().all()


def test_caption_and_notes_say_what_produced_each_number(report):
    cap = report.caption
    for part in (
        "masking_pairs (Table 9 / Fig. 3)",
        "test top-1 accuracy",
        "mean ± std (N−1)",
        "synthetic (tiny preset)",
        "split xsub",
        "protocol linear",
        "profile smoke",
        "Δ against random_random",
        "Holm",
    ):
        assert part in cap, part
    notes = " ".join(report.notes)
    assert "paired t-test over seeds" in notes and "Student's t over the paired seeds" in notes
    assert "crossed random-effects test" in notes and "corrected apart" in notes


def test_files_written(report, tmp_path):
    paths = write_grid_report(report, tmp_path)
    md = paths["markdown"].read_text()
    assert "| HDSM | LMTM |" in md and "(baseline)" in md
    tex = paths["latex"].read_text()
    assert r"\begin{tabular}" in tex and r"masking\_pairs" in tex and r"$\pm$" in tex
    assert r"\toprule" in tex and r"\bottomrule" in tex
    assert not re.search(r"^%", tex, re.M)  # the notes are in the caption, not comments
    assert "Holm correction over" in tex.split(r"\label{tab:masking_pairs}")[0]
    csv = pd.read_csv(paths["csv"], index_col="cell")
    assert csv.loc["hdsm_lmtm", "mean"] == pytest.approx(report.table.loc["hdsm_lmtm", "mean"])
    seeds = pd.read_csv(paths["seeds"])
    assert set(seeds.columns) >= {"cell", "seed", "status", "value", "reason", "metric"}
    assert len(seeds) == 4 * 5 + 4 + 1 + 5 + 5  # finished + failed + missing units
    missing = seeds[seeds["status"] == "MISSING"]
    assert set(missing["cell"]) == {"supervised"} and sorted(missing["seed"]) == list(SEEDS)


def test_bh_correction_and_seed_test_options(fake_store):
    runs = load_grid_runs(fake_store.uri, "masking_pairs", load_grid("masking_pairs"))
    rep = build_grid_report(runs, ReportOptions(correction="bh", seed_test="wilcoxon"))
    t = rep.table
    cells_ = t.index.drop(["random_random", "random_init", "supervised"])
    np.testing.assert_allclose(
        t.loc[cells_, "p_seeds_adj"],
        stats.benjamini_hochberg(t.loc[cells_, "p_seeds"]),
        equal_nan=True,
    )
    # Wilcoxon on 5 seeds can never reach 0.05: the report says so
    assert any("cannot reach p < 0.05" in n and "Wilcoxon" in n for n in rep.notes)
    with pytest.raises(ConfigError, match="--correction"):
        ReportOptions(correction="bonferroni")


def test_matrix_layout_for_two_numeric_axes(fake_store):
    spec = GridSpec(
        name="mine",
        baseline="n9_k10",
        references=[],
        cells=[CellSpec(name=c.name, labels=c.labels) for c in fake_store.matrix],
    )
    rep = build_grid_report(load_grid_runs(fake_store.uri, "mine", spec), ReportOptions())
    assert rep.matrix == ("n", "k")
    m = matrix_rows(rep).set_index("n \\ k")
    assert list(m.index) == ["7", "9"] and list(m.columns) == ["k=8", "k=10"]
    t = rep.table.loc["n7_k10"]
    assert m.loc["7", "k=10"].startswith(f"{t['mean']:.2f} ± {t['std']:.2f}")
    assert m.loc["9", "k=10"].endswith("†")  # the baseline
    assert "† baseline" in to_markdown(rep)
    # without a grid definition the axes come from the runs' label.* params
    runs = load_grid_runs(fake_store.uri, "mine", baseline="n9_k10")
    assert runs.labels["n7_k8"] == {"k": "8", "n": "7"} and runs.axes() == ["k", "n"]
    assert runs.table == "Table 7"


def test_store_and_selection_errors(fake_store, tmp_path):
    with pytest.raises(ConfigError, match="--runs: no MLflow store"):
        resolve_tracking_uri(None, tmp_path)
    with pytest.raises(ConfigError, match="no runs of this grid"):
        load_grid_runs(fake_store.uri, "backbones")
    with pytest.raises(ConfigError, match="--baseline 'nope'"):
        load_grid_runs(fake_store.uri, "masking_pairs", baseline="nope")
    runs = load_grid_runs(fake_store.uri, "masking_pairs", where=["pretrain.epochs=0"])
    assert set(runs.runs["cell"]) == {"random_init"}
    with pytest.raises(ConfigError, match="no parameter 'nope'"):
        load_grid_runs(fake_store.uri, "masking_pairs", where=["nope=1"])


def test_a_metric_no_run_has_is_an_error(fake_store):
    runs = load_grid_runs(fake_store.uri, "masking_pairs", load_grid("masking_pairs"))
    with pytest.raises(ConfigError, match="--metric 'test_top2'.*test_top1"):
        build_grid_report(runs, ReportOptions(metric="test_top2"))


def test_mixed_configurations_are_refused(fake_store):
    with pytest.raises(ConfigError, match="finished runs differ in linear.epochs"):
        load_grid_runs(fake_store.uri, "mixed")
    assert len(load_grid_runs(fake_store.uri, "mixed", where=["linear.epochs=7"]).finished) == 1


def test_latex_escape():
    assert latex_escape("a_b & 50% ± Δ") == r"a\_b \& 50\% $\pm$ $\Delta$"
    assert latex_escape("partial η², ȳ → x") == r"partial $\eta$$^{2}$, \={y} $\to$ x"
    assert latex_escape("column 'sig.'\n\nnext") == r"column `sig.' next"  # no blank line


@pytest.fixture(scope="module")
def matrix_report(fake_store):
    runs = load_grid_runs(fake_store.uri, "mine", baseline="n9_k10")
    return build_grid_report(runs, ReportOptions())


def _cells(row: str) -> list[str]:
    assert row.endswith(r" \\"), row
    return [c.strip() for c in re.split(r"(?<!\\)&", row.removesuffix(r" \\"))]


def _tables(tex: str) -> list[dict]:
    """Each table's column spec, caption, header and body rows."""
    out = []
    for block in tex.split(r"\begin{table}")[1:]:
        assert block.index(r"\toprule") < block.index(r"\midrule") < block.index(r"\bottomrule")
        caption = re.search(r"^\\caption\[\{(.*)\}\]\{(.*)\}$", block, re.M)
        head = block.split(r"\toprule")[1].split(r"\midrule")[0].strip()
        body = block.split(r"\midrule")[1].split(r"\bottomrule")[0].strip().split("\n")
        spec = re.search(r"\\begin\{tabular\}\{(\w+)\}", block).group(1)
        out.append({"spec": spec, "short": caption.group(1), "caption": caption.group(2),
                    "head": _cells(head), "rows": [_cells(r) for r in body]})  # fmt: skip
    return out


def _without_escapes(tex: str) -> str:
    return re.sub(r"\\.", "", tex)  # \%, \{, \\ ... and the first letter of commands


@pytest.mark.parametrize("which", ["report", "matrix_report"])
def test_latex_tables_are_booktabs_with_siunitx_numbers(which, request):
    rep = request.getfixturevalue(which)
    tex = to_latex(rep)
    assert tex.isascii()  # every symbol as a LaTeX command: any engine, any encoding
    plain = _without_escapes(re.sub(r"\\label\{[^}]*\}", "", tex))
    assert plain.count("{") == plain.count("}") and plain.count("$") % 2 == 0
    depth = 0
    for ch in plain:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    for special in ("%", "_", "#"):  # comments, subscripts outside math, parameters
        assert special not in re.sub(r"\$[^$]*\$", "", plain), special
    tables = _tables(tex)
    # the matrix report: the n x k matrix, the table, the ANOVA and the marginal means
    assert len(tables) == tex.count(r"\begin{tabular}") == (4 if which == "matrix_report" else 1)
    for t in tables:
        assert set(t["spec"]) <= {"l", "r"}
        assert len(t["head"]) == len(t["spec"]) and t["rows"]
        assert all(len(r) == len(t["spec"]) for r in t["rows"]), t["spec"]
        assert "&" not in _without_escapes(t["caption"])
        for k, align in enumerate(t["spec"]):
            column = [r[k] for r in t["rows"]]
            if align == "l":
                assert not any(r"\num" in c for c in column)
                continue
            for c in column:  # a number outside \num{} only in a placeholder
                rest = re.sub(r"\\num\{[^}]*\}", "", c)
                assert not re.search(r"\d", rest) or rest.startswith("failed ("), c
    main = next(t for t in tables if "Notes: " in t["caption"])
    assert main["short"] == latex_escape(rep.caption)
    for note in rep.notes:  # every note, escaped, in the caption
        assert latex_escape(note).rstrip(".") in main["caption"]
    shown = display_rows(rep)
    numeric = {c: a for c, a in zip(shown.columns, main["spec"], strict=True)}
    text_axes = set() if which == "matrix_report" else set(rep.axes)  # n, k are numbers
    assert {c for c, a in numeric.items() if a == "l"} == text_axes | {
        "sig. (seeds)",
        "sig. (samples)",
    }
    assert numeric[rep.metric] == "r" and numeric["seeds"] == "r" and numeric["CI"] == "r"


def test_latex_compiles(report, matrix_report, tmp_path):
    """The tables in a minimal document, through pdflatex (skipped without it)."""
    pdflatex, kpsewhich = shutil.which("pdflatex"), shutil.which("kpsewhich")
    if pdflatex is None:
        pytest.skip("pdflatex not installed")
    for package in ("booktabs.sty", "siunitx.sty"):
        if kpsewhich is None:
            break
        found = subprocess.run([kpsewhich, package], capture_output=True, text=True, timeout=30)
        if not found.stdout.strip():
            pytest.skip(f"LaTeX package {package} not installed")
    (tmp_path / "tables.tex").write_text(to_latex(report) + "\n" + to_latex(matrix_report))
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{siunitx}\n"
        "\\begin{document}\n\\listoftables\n\\input{tables}\n\\end{document}\n"
    )
    done = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (tmp_path / "doc.log").read_text(errors="replace")
    errors = [line for line in log.splitlines() if line.startswith("!")]
    assert done.returncode == 0 and not errors, errors or done.stdout[-2000:]
    assert "Missing character" not in log  # a glyph the fonts lack
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_no_significance_from_too_few_seeds_or_zero_spread(fake_store, tmp_path):
    """Two seeds whose paired differences are identical once gave 'p < 0.001 **' (t = inf):
    now there is no p-value and no star, the table says 'n/a' and the notes say why."""
    from .conftest import FakeCell, fabricate

    rng = np.random.default_rng(5)
    base = {s: rng.random(200) < 0.5 for s in (0, 1)}
    shifted = {}
    for s in (0, 1):  # exactly 20 more correct samples on both seeds: equal differences
        fix = np.flatnonzero(~base[s])[:20]
        shifted[s] = base[s].copy()
        shifted[s][fix] = True
    cells = [
        FakeCell("random_random", {"spatial": "random", "temporal": "random"}, base),
        FakeCell("ldsm_hmtm", {"spatial": "LDSM", "temporal": "HMTM"}, shifted),
    ]
    uri = f"sqlite:///{tmp_path / 'two.db'}"
    fabricate(uri, tmp_path, "masking_pairs", cells)
    grid = GridSpec(
        name="masking_pairs", protocol="linear", baseline="random_random", references=[],
        cells=[CellSpec(name="ldsm_hmtm"), CellSpec(name="random_random")],
    )  # fmt: skip
    rep = build_grid_report(load_grid_runs(uri, "masking_pairs", grid))
    row = rep.table.loc["ldsm_hmtm"]
    assert row["delta"] == pytest.approx(10.0) and np.isnan(row["p_seeds"])
    assert row["sig"] == ""
    shown = display_rows(rep).iloc[0]  # grid order: ldsm_hmtm first
    assert shown["p (seeds)"] == "n/a" and shown["sig. (seeds)"] == ""
    assert any("p (seeds) n/a: fewer than 3 paired seeds" in n for n in rep.notes)


def test_power_note_states_the_minimum_detectable_difference(report):
    t = report.table
    row = t.loc["hdsm_lmtm"]
    assert row["pairs"] == 5
    assert 0 < row["mdd_low"] < row["mdd"] < row["mdd_high"]
    # one pooled figure for every compared cell; the references are not pooled in
    compared = t.drop(index=[c for c in t.index if c in ("random_init", "supervised")])
    assert compared["mdd"].nunique() == 1
    note = next(n for n in report.notes if n.startswith("Power:"))
    assert "80% power" in note and f"{row['mdd']:.3g} points" in note
    assert all(f"{k} point" in note for k in ("1", "2", "3"))


def test_runs_from_before_common_random_numbers_are_not_mixed_with_new_ones():
    """A unit run before ``rng`` existed has no such parameter; one cell with both kinds of
    run is refused, naming ``rng``, instead of averaged."""
    import pandas as pd

    from asma_bench.reports.results import _check_consistent

    df = pd.DataFrame({
        "cell": ["a", "a"], "seed": [0, 1], "status": ["FINISHED"] * 2,
        "dataset": ["ucla"] * 2, "params.rng": [None, "streams"],
        "params.seed": ["0", "1"],
    })  # fmt: skip
    with pytest.raises(ConfigError, match="differ in rng"):
        _check_consistent(df, "g")
    _check_consistent(df.assign(**{"params.rng": "streams"}), "g")  # one kind: fine


def test_reference_runs_set_up_like_the_first_cell_give_way_to_those_like_the_baseline():
    """A store from before reference rows followed the baseline holds teacher_kind's
    random_init set up like its first cell (a linear-probed teacher) beside the later one
    set up like its baseline (a fine-tuned teacher): the report keeps the latest kind and
    says so; a reference row of one configuration, and any other cell, is left as it is."""
    import pandas as pd

    from asma_bench.reports.results import _check_consistent, _latest_references

    spec = load_grid("teacher_kind")
    assert spec.reference_model == "finetune_teacher"
    rows = [  # cell, seed, status, distill.teacher, pretrain.epochs, start (the earlier
        # version also logged a parameter the later one does not: pretrain.pairing)
        ("linear_teacher", 0, "FINISHED", "linear", "25", 1),
        ("finetune_teacher", 0, "FINISHED", "finetune", "25", 2),
        ("random_init", 0, "FINISHED", "linear", "0", 3),  # the earlier version's
        ("random_init", 0, "FINISHED", "finetune", "0", 9),
        ("random_init", 1, "FAILED", "linear", "0", 4),
    ]
    df = pd.DataFrame(
        [{"cell": c, "seed": s, "status": st, "dataset": "ucla", "params.seed": str(s),
          "params.distill.teacher": t, "params.pretrain.epochs": e, "start_time": at,
          "params.pretrain.pairing": None if t == "finetune" else "ldsm_hmtm"}
         for c, s, st, t, e, at in rows]
    )  # fmt: skip
    with pytest.raises(ConfigError, match="cell 'random_init': finished runs differ in"):
        _check_consistent(df, "teacher_kind")
    kept, older = _latest_references(df, spec)
    assert older == ["random_init"]
    ref = kept[kept["cell"] == "random_init"]
    assert ref["params.distill.teacher"].tolist() == ["finetune"]
    assert len(kept[kept["cell"] != "random_init"]) == 2  # the other cells untouched
    _check_consistent(kept, "teacher_kind")
    two = pd.concat([df, df.assign(dataset="synthetic")], ignore_index=True)
    assert _latest_references(two, spec)[1] == ["random_init"]  # named once
    alone = df.drop(index=[3])  # only the earlier version's reference: nothing to choose
    kept, older = _latest_references(alone, spec)
    assert older == [] and len(kept) == len(alone)


def test_a_parameter_missing_in_two_ways_is_one_setting_a_logged_value_is_another():
    """A parameter a run did not log is missing whether the frame holds None or NaN: two
    runs missing it agree, and only a run that logged a value differs from them."""
    import pandas as pd

    from asma_bench.reports.results import _check_consistent

    df = pd.DataFrame(
        {"cell": "a", "seed": [0, 1], "status": "FINISHED", "dataset": "ucla",
         "params.seed": ["0", "1"],
         # as a store's runs of two versions come out: text, None and NaN in one column
         "params.pretrain.pairing": pd.Series([None, float("nan")], dtype=object)}
    )  # fmt: skip
    _check_consistent(df, "g")
    logged = pd.concat([df, df.iloc[:1].assign(seed=2, **{"params.pretrain.pairing": "x"})])
    with pytest.raises(ConfigError, match="differ in pretrain.pairing"):
        _check_consistent(logged, "g")
