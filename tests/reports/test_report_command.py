"""`asma-bench report` on a real smoke-profile masking_pairs store: table, heatmap, page."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.image import imread

from asma_bench.cli import main
from asma_bench.reports.html import build_index, write_manifest


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("href", "src") and not v.startswith("#")]


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_report_writes_tables_heatmap_and_page(smoke_runs, tmp_path, capsys):
    out = tmp_path / "reports"
    code, stdout, err = run(
        capsys,
        "report",
        "--grid",
        "masking_pairs",
        "--runs",
        str(smoke_runs),
        "--out",
        str(out),
        "--classes",
        "0,1,2",
    )
    assert code == 0, err
    folder = out / "masking_pairs"
    # the table: one row per cell of the grid, numbers equal the store's seeds
    seeds = pd.read_csv(folder / "masking_pairs_seeds.csv")
    table = pd.read_csv(folder / "masking_pairs.csv", index_col="cell")
    assert list(table[table["seeds"] > 0].index) == ["ldsm_hmtm", "random_random"]
    assert len(table) == 7 and (table["expected"] == 2).all()
    # the cells the smoke run left out are named, on stderr and under the table
    assert "no run in the store for hdsm_lmtm (every seed: 0, 1)" in err
    assert "no finished run at all (row shows 'no result' or 'failed'): hdsm_lmtm" in err
    finished = seeds[seeds["status"] == "FINISHED"]
    assert set(seeds[seeds["status"] == "MISSING"]["cell"]) == set(table.index) - set(
        finished["cell"]
    )
    for cell, rows in finished.groupby("cell"):
        assert table.loc[cell, "mean"] == rows["value"].mean()
        assert table.loc[cell, "seeds"] == 2
    delta = (
        seeds.set_index(["cell", "seed"])["value"]["ldsm_hmtm"]
        - seeds.set_index(["cell", "seed"])["value"]["random_random"]
    ).mean()
    assert abs(table.loc["ldsm_hmtm", "delta"] - delta) < 1e-9
    md = (folder / "masking_pairs.md").read_text()
    assert "| LDSM | HMTM |" in md and "profile smoke" in md and "synthetic (tiny preset)" in md
    knn = " – |" if "knn_mean" in table else ""  # runs that log k-NN beside the probe
    assert f"| HDSM | LMTM | no result |{knn} 0/2 |" in md and "- warning: incomplete grid" in md
    if knn:
        for cell, rows in finished.groupby("cell"):
            assert table.loc[cell, "knn_mean"] == pytest.approx(rows["knn_value"].mean())
    assert (folder / "masking_pairs.tex").read_text().count(r"\begin{table}") == 1
    assert "masking_pairs (Table 9 / Fig. 3)" in stdout
    # figures: heatmap, embeddings, the dataset's degree/motion, each PNG + SVG; no curves,
    # since a 1-epoch smoke store has no per-epoch history, and the report says so
    figs = folder / "figures"
    assert not (figs / "masking_pairs_curves.png").exists()
    assert "figure not drawn: training curves" in stdout
    for name in (
        "masking_pairs_heatmap",
        "masking_pairs_embeddings",
        "dataset_degree_motion",
    ):
        assert imread(figs / f"{name}.png").shape[0] > 100, name
        assert "<svg" in (figs / f"{name}.svg").read_text()
    # the page: every relative link resolves, every figure is shown with its caption
    page = (out / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    assert parser.links and all((out / link).is_file() for link in parser.links)
    assert "masking_pairs/figures/masking_pairs_heatmap.png" in parser.links
    manifest = json.loads((folder / "manifest.json").read_text())
    for fig in manifest["figures"]:
        assert fig["caption"] in page.replace("&#x27;", "'").replace("&amp;", "&")
    heat = next(f for f in manifest["figures"] if f["name"] == "masking_pairs_heatmap")
    assert "spatial × temporal" in heat["caption"] and "Fig. 3" in heat["caption"]
    assert re.search(r"<table", page)


def test_report_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(capsys, "report", "--grid", "masking_pairs", "--runs", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "no MLflow store" in err
    code, _, err = run(
        capsys,
        "report",
        "--grid",
        "masking_pairs",
        "--runs",
        str(tmp_path),
        "--correction",
        "bonferroni",
    )
    assert code == 2 and err.count("\n") == 1 and "--correction" in err
    code, _, err = run(
        capsys,
        "report",
        "--grid",
        "masking_pairs",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'none.db'}",
    )
    assert code == 2 and err.count("\n") == 1 and "--store: no MLflow store" in err


def test_index_gathers_every_report_of_the_folder(tmp_path):
    for name in ("b_grid", "a_grid"):
        (tmp_path / name / "figures").mkdir(parents=True)
        (tmp_path / name / "figures" / "x.png").write_bytes(b"")
        write_manifest(tmp_path / name, {
            "title": f"Grid {name} <&>", "tables": [{"caption": "cap", "html": "<table></table>",
                                                   "files": {"CSV": "t.csv"}}],
            "figures": [{"caption": f"fig of {name}", "png": "figures/x.png",
                         "svg": "figures/x.svg"}],
            "notes": ["a note"],
        })  # fmt: skip
    page = build_index(tmp_path).read_text()
    assert page.index("Grid a_grid") < page.index("Grid b_grid")
    assert "Grid a_grid &lt;&amp;&gt;" in page  # text is escaped
    assert "src='a_grid/figures/x.png'" in page and "href='b_grid/t.csv'" in page
    assert Path(tmp_path / "index.html").is_file()
