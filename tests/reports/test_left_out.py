"""A cell planning leaves out (another cell's experiment on this dataset's skeleton) is
explained in the report, not counted as a missing or failed unit."""

from asma_bench.cli import main


def test_report_says_why_a_cell_that_rounds_alike_is_empty(tmp_path, capsys, caplog):
    grid = tmp_path / "ratio.yaml"
    grid.write_text(
        "name: tiny_ratio\nprotocol: linear\nbaseline: n7\nreferences: []\n"
        "base: {pretrain: {objective: barlow_twins}}\ncells:\n"
        "  - {name: n7, labels: {n: 7}, overrides: {masking: {n: 0.28}}}\n"
        "  - {name: n8, labels: {n: 8}, overrides: {masking: {n: 0.32}}}\n"
        "  - {name: n10, labels: {n: 10}, overrides: {masking: {n: 0.40}}}\n"
    )
    out = tmp_path / "runs"
    # synthetic clips on Kinect v1's 20 joints: 0.28 and 0.32 of 20 both round to 6
    args = ["run", "--grid", str(grid), "--profile", "smoke", "--seeds", "1", "--out", str(out),
            "--no-progress", "--set", "data.layout=kinect20"]  # fmt: skip
    assert main(args) == 0
    assert "cell n8 masks the same 6 of 20 joints as cell n7" in caplog.text
    assert "n8/seed0" not in capsys.readouterr().err  # planned out, never started
    rep = tmp_path / "rep"
    assert main(["report", "--grid", str(grid), "--runs", str(out), "--out", str(rep)]) == 0
    text = " ".join((rep / "tiny_ratio" / "tiny_ratio.md").read_text().split())
    assert "not run (planning left them out" in text
    assert "n8 masks the same 6 of 20 joints as n7" in text
    assert "incomplete grid" not in text and "no finished run at all" not in text
