"""One vocabulary of flags: ``--runs`` the runs folder and ``--out`` what a command writes in
every command (the old names still work, with one line saying the new form), seeds as a
count or a list on the command line and in the API, ``-h`` as ``--help``, plain usage
lines, the presets ``data synth`` accepts."""

import re

import pytest

from asma_bench.cli import main
from asma_bench.commands.run import parse_seeds
from asma_bench.errors import ConfigError


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def help_text(*path):
    from typer.testing import CliRunner

    from asma_bench import commands
    from asma_bench.cli import app

    commands.load_all()
    result = CliRunner().invoke(app, list(path), env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    return result.output


def test_run_takes_the_runs_folder_as_runs_and_still_as_out(tmp_path, capsys):
    args = ["run", "--grid", "masking_pairs", "--profile", "smoke", "--dry-run", "--no-estimate"]
    code, new_out, err = run(capsys, *args, "--runs", str(tmp_path / "new"))
    assert code == 0 and err == "", err
    code, old_out, err = run(capsys, *args, "--out", str(tmp_path / "old"))
    assert code == 0 and err == "--out is deprecated for `run`; use --runs\n"
    assert old_out == new_out and "units (dry run" in new_out
    code, _, err = run(capsys, *args, "--out", "a", "--runs", "b")
    assert code == 2 and err.splitlines()[-1] == (
        "error: --runs b and --out a: --out is --runs's old name; give --runs only"
    )


@pytest.mark.parametrize(
    "command, old, bad",
    [(["tune", "--space", "lambda"], "--out", ["--timeout", "-1"]),
     (["latency"], "--work", ["--cell", "x"])],
)  # fmt: skip
def test_old_folder_flags_are_read_and_errors_stay_one_line(
    tmp_path, capsys, monkeypatch, command, old, bad
):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *command, old, "a", "--runs", "b")
    message = f"--runs b and {old} a: {old} is --runs's old name; give --runs only"
    assert code == 2 and err == f"error: {message}\n"
    code, _, err = run(capsys, *command, old, "a", *bad)
    assert code == 2 and err.count("\n") == 1 and bad[0] in err  # its one error line only
    assert list(tmp_path.iterdir()) == []


def test_latency_reads_its_runs_folder_as_runs_and_still_as_work(tmp_path, capsys, monkeypatch):
    import pandas as pd

    from asma_bench.perf import latency as latency_module

    folders = []

    def fake_run_latency(opts, out, runs, progress=None):
        folders.append(runs)
        table = pd.DataFrame({"p50 (ms)": [2.0]}, index=["teacher"])
        return latency_module.LatencyResult(models=[], table=table, files={}, caption="cap")

    monkeypatch.setattr(latency_module, "run_latency", fake_run_latency)
    args = ["latency", "--profile", "smoke", "--out", str(tmp_path / "r"), "--no-progress"]
    code, out, err = run(capsys, *args, "--runs", str(tmp_path / "new"))
    assert code == 0 and err == "" and "cap" in out
    code, out, err = run(capsys, *args, "--work", str(tmp_path / "old"))
    assert code == 0 and err == "--work is deprecated for `latency`; use --runs\n"
    assert folders == [tmp_path / "new", tmp_path / "old"]


def test_every_command_names_the_runs_folder_runs():
    for path in (["run"], ["tune"], ["latency"], ["report"], ["results"], ["show"], ["rerun"]):
        text = help_text(*path, "--help")
        assert re.search(r"--runs\s+PATH", text), (path, text)
        assert not re.search(r"--work\b", text), (path, text)
    assert "--out " not in help_text("run", "--help")
    assert re.search(r"--out\s+PATH\s+Report folder", help_text("report", "--help"))
    assert re.search(r"--out\s+PATH\s+Report folder", help_text("latency", "--help"))


@pytest.mark.parametrize(
    "seeds, seed_list, expected",
    [("3", None, [0, 1, 2]), ("1", None, [0]), ("0,2,5", None, [0, 2, 5]), ("7,", None, [7]),
     (" 4 , 1 ", None, [4, 1]), ("3", "7", [7]), ("3", "0,2", [0, 2]), ("2", "5", [5])],
)  # fmt: skip
def test_seeds_are_a_count_or_a_list(seeds, seed_list, expected):
    assert parse_seeds(seeds, seed_list) == expected


@pytest.mark.parametrize(
    "seeds, seed_list, message",
    [("0", None, "--seeds must be >= 1"), ("x", None, "a count N or comma-separated"),
     ("0,0", None, "--seeds: seed 0 is given 2 times"), (",", None, "at least one seed"),
     ("3", "-1", "--seed-list: seed -1 is outside")],
)  # fmt: skip
def test_bad_seeds_are_one_error_naming_the_flag(seeds, seed_list, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_seeds(seeds, seed_list)


def test_a_seed_list_on_the_command_line_plans_those_seeds(capsys):
    code, out, err = run(capsys, "run", "--grid", "masking_pairs", "--profile", "smoke",
                         "--seeds", "0,5", "--dry-run", "--no-estimate")  # fmt: skip
    assert code == 0, err
    names = re.findall(r"\S+/seed(\d+)", out)
    assert names and sorted(set(names)) == ["0", "5"]


@pytest.mark.parametrize("seeds, expected", [(3, [0, 1, 2]), ([0, 2, 5], [0, 2, 5]), (1, [0])])
def test_the_api_takes_a_count_or_a_list_of_seeds(monkeypatch, tmp_path, seeds, expected):
    from asma_bench import api

    seen = []
    monkeypatch.setattr(api, "_run_grid", lambda spec, opts: seen.append(opts.seeds))
    api.run_grid("masking_pairs", profile="smoke", seeds=seeds, out=tmp_path)
    assert seen == [expected]


@pytest.mark.parametrize("seeds", [0, True, "0,1"])
def test_the_api_refuses_what_is_no_count_nor_list_of_seeds(tmp_path, seeds):
    from asma_bench import api

    with pytest.raises(ConfigError, match="seeds="):
        api.run_grid("masking_pairs", profile="smoke", seeds=seeds, out=tmp_path)


def test_h_is_help_everywhere():
    for path in ([], ["run"], ["data"], ["data", "convert"], ["rerun"], ["latency"]):
        assert help_text(*path, "-h") == help_text(*path, "--help"), path
    assert re.search(r"--help\s+-h\s+Show this message", help_text("run", "-h"))


def test_usage_lines_show_plain_argument_names():
    usage = {
        tuple(p): next(ln for ln in help_text(*p, "--help").splitlines() if "Usage:" in ln)
        for p in (["rerun"], ["show"], ["data", "convert"], ["data", "info"])
    }
    assert usage[("rerun",)].strip() == "Usage: asma-bench rerun [OPTIONS] RUN_ID"
    assert usage[("show",)].strip() == "Usage: asma-bench show [OPTIONS] RUN_ID"
    assert usage[("data", "convert")].strip() == (
        "Usage: asma-bench data convert [OPTIONS] SOURCE OUT"
    )
    assert usage[("data", "info")].strip() == "Usage: asma-bench data info [OPTIONS] PATH"


def test_synth_help_lists_exactly_the_presets_it_accepts():
    from asma_bench.data.synthetic import SYNTH_PRESETS

    text = help_text("data", "synth", "--help")
    listed = re.search(r"--preset\s+NAME\s+([\w |]+?)\s+\[default", text).group(1)
    assert listed.split(" | ") == list(SYNTH_PRESETS) and "small" in listed
