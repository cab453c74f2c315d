"""The command line: one clear line and a non-zero exit for bad input, no traceback."""

import pytest

from asma_bench.cli import main


def run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_synth_info_and_convert_errors(tmp_path, capsys):
    code, out, _ = run(capsys, "data", "synth", "--preset", "tiny", "--out", str(tmp_path / "d"))
    assert code == 0 and "135 samples" in out
    code, out, _ = run(capsys, "data", "info", str(tmp_path / "d"))
    assert code == 0 and "xsub" in out and "degree" in out
    for bad in ("-3", "0"):  # were numpy's "negative dimensions" error and RuntimeWarnings
        code, out, err = run(capsys, "data", "info", str(tmp_path / "d"), "--max-samples", bad)
        assert code == 2 and err.count("\n") == 1 and "--max-samples" in err and not out
    code, _, err = run(capsys, "data", "synth", "--preset", "tiny", "--out", str(tmp_path / "d"))
    assert code == 2 and err.count("\n") == 1 and "already exists" in err


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty"),
        ("2\n1\n", "unexpected end of file"),
        ("1\n1\n72057594037931101 0 1 1 1 1 0 0.1 0.2 2\n24\n", "25"),
    ],
)
def test_bad_skeleton_gives_one_line(tmp_path, capsys, content, message):
    src = tmp_path / "src"
    src.mkdir()
    (src / "S001C001P001R001A001.skeleton").write_text(content)
    code, _, err = run(capsys, "data", "convert", str(src), str(tmp_path / "out"))
    assert code == 2
    assert err.splitlines()[-1].startswith("error: ")
    assert "S001C001P001R001A001.skeleton" in err and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unknown_format_and_grid(tmp_path, capsys):
    (tmp_path / "x.bin").write_bytes(b"\0\1")
    code, _, err = run(capsys, "data", "convert", str(tmp_path / "x.bin"), str(tmp_path / "o"))
    assert code == 2 and "x.bin" in err and err.count("\n") == 1
    code, _, err = run(capsys, "run", "--grid", "nope", "--out", str(tmp_path / "r"))
    assert code == 2 and "unknown grid 'nope'" in err


def test_debug_shows_the_traceback(tmp_path):
    from asma_bench.errors import AsmaBenchError

    with pytest.raises(AsmaBenchError):
        main(["--debug", "data", "info", str(tmp_path)])


def test_listings(capsys):
    for cmd in (["grids"], ["profiles"], ["maskings"]):
        code, out, _ = run(capsys, *cmd)
        assert code == 0 and out.strip()
    _, grids, _ = run(capsys, "grids")
    assert grids.splitlines()[0].split() == ["grid", "cells", "protocol", "paper"]
    flat = " ".join(grids.split())  # every description whole, never cut mid-word
    assert "marginal means with 95% intervals and the smallest difference the seeds can" in flat
    _, profiles, _ = run(capsys, "profiles")
    assert "smoke  For tests: everything runs in seconds" in profiles
    code, out, _ = run(capsys, "models", "--frames", "8")
    assert code == 0 and "stgcn" in out and "student" in out


def test_skip_bad_converts_the_rest_and_lists_what_it_skipped(tmp_path, capsys, ntu_fixture_dir):
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    for f in sorted(ntu_fixture_dir.glob("*.skeleton"))[:2]:
        shutil.copy(f, src / f.name)
    (src / "S001C001P001R001A009.skeleton").write_text("3\n1\n")
    code, _, err = run(capsys, "data", "convert", str(src), str(tmp_path / "strict"))
    assert code == 2 and "A009.skeleton" in err and not (tmp_path / "strict").exists()
    code, out, _ = run(capsys, "data", "convert", str(src), str(tmp_path / "lenient"), "--skip-bad")
    assert code == 0 and "wrote 2 samples" in out
    assert "skipped 1 bad samples" in out and "A009.skeleton:" in out
    code, out, _ = run(capsys, "data", "info", str(tmp_path / "lenient"), "--check")
    assert code == 0 and "all 2 samples pass" in out


def one_line(err: str, *names: str) -> bool:
    """``err`` is exactly one line, no traceback nor internal error, naming every ``names``."""
    return (
        err.count("\n") == 1
        and "Traceback" not in err
        and "internal error" not in err
        and all(n in err for n in names)
    )


@pytest.mark.parametrize(
    "args, name",
    [
        (["run"], "--grid"),
        (["run", "--grid", "x", "--seeds", "abc"], "--seeds"),
        (["nosuchcmd"], "nosuchcmd"),
        (["run", "--verboze"], "--verboze"),  # (--verbose is global, accepted anywhere)
        (["data", "nosuch"], "nosuch"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, args, name):
    code, _, err = run(capsys, *args)
    assert code == 2 and one_line(err, name), err


@pytest.mark.parametrize("args", [[], ["data"]])
def test_no_arguments_shows_the_help(capsys, args):
    code, out, err = run(capsys, *args)
    assert code in (0, 2) and "internal error" not in err
    assert "Usage" in out + err and "Commands" in out + err


def test_version_and_help_exit_0(capsys):
    code, out, err = run(capsys, "--version")
    assert code == 0 and out.startswith("asma-bench ") and not err
    code, out, err = run(capsys, "run", "--help")
    assert code == 0 and "--grid" in out and not err


@pytest.mark.parametrize(
    "args, name",
    [
        (["run", "--grid", "masking_pairs", "--seed-list=-1"], "--seed-list"),
        (["run", "--grid", "masking_pairs", "--seed-list=0,-2"], "--seed-list"),
        (["data", "synth", "--seed", "-5"], "--seed"),
        (["latency", "--seed", "-1"], "--seed"),
        (["tune", "--space", "lambda", "--seed", "-1"], "--seed"),
        (["models", "--frames", "0"], "--frames"),
        (["models", "--frames", "-1"], "--frames"),
        (["models", "--frames", "3"], "--frames"),
        (["models", "--bodies", "0"], "--bodies"),
        (["run", "--grid", "masking_pairs", "--device", "tpu"], "device"),
        (["bench", "--device", "tpu"], "device"),
        (["tune", "--space", "lambda", "--device", "tpu"], "device"),
        (["run", "--grid", "masking_pairs", "--set", "seed=5"], "--seeds 0,1,2"),
        (["tune", "--space", "lambda", "--set", "seed=5"], "--seed"),
        (["latency", "--set", "seed=5"], "--seed"),
        (["tune", "--space", "lambda", "--timeout", "-1"], "--timeout"),
        (["tune", "--space", "lambda", "--timeout", "0"], "--timeout"),
    ],
)
def test_bad_parameters_exit_2_with_one_line(tmp_path, capsys, args, name):
    out = ["--out", str(tmp_path / "out")] if args[0] in ("run", "tune", "latency", "data") else []
    code, _, err = run(capsys, *args, *out)
    assert code == 2 and one_line(err, name), err
    assert not (tmp_path / "out").exists()


def test_outputs_that_cannot_be_written_fail_before_the_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "bench", "--out", str(blocker / "bench.json"))
    assert code == 2 and one_line(err, "--out", str(blocker)), err
    code, _, err = run(
        capsys, "tune", "--space", "lambda", "--out", str(tmp_path / "t"),
        "--save-profile", str(blocker / "best.yaml"),
    )  # fmt: skip
    assert code == 2 and one_line(err, "--save-profile", str(blocker)), err
    assert not (tmp_path / "t").exists()


def test_empty_grid_and_bad_profile_files_are_named(tmp_path, capsys):
    grid = tmp_path / "empty.yaml"
    grid.write_text("name: empty\ncells: []\n")
    code, _, err = run(capsys, "run", "--grid", str(grid), "--out", str(tmp_path / "r"))
    assert code == 2 and one_line(err, str(grid), "cells"), err
    bad = tmp_path / "bad.yaml"
    bad.write_text("foo: 1\n")
    for profile, words in [(bad, ("foo",)), (tmp_path / "missing.yaml", ("not found",))]:
        code, _, err = run(capsys, "run", "--grid", "masking_pairs", "--profile", str(profile),
                           "--out", str(tmp_path / "r"))  # fmt: skip
        assert code == 2 and one_line(err, str(profile), *words), err


def test_pku_without_labels_names_the_whole_file_option(tmp_path, capsys):
    src = tmp_path / "pku"
    src.mkdir()
    (src / "A01N01-L.txt").write_text(" ".join(["0.1"] * 150) + "\n")
    code, _, err = run(capsys, "data", "convert", str(src), str(tmp_path / "o"), "--format", "pku")
    assert code == 2 and one_line(err, "--whole-file"), err


def test_maskings_diagnose_prints_and_writes_the_tables(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written here: the data goes under --out
    code, out, _ = run(capsys, "maskings", "--diagnose", "--profile", "smoke", "--draws", "300",
                       "--out", str(tmp_path / "diag"))  # fmt: skip
    assert code == 0
    assert "| ldsm:inverse_degree | spatial |" in out and "Jaccard" in out
    written = sorted(p.name for p in (tmp_path / "diag").iterdir())
    assert written == [
        "data", "maskings.csv", "maskings.md", "maskings_joints.csv", "maskings_joints.png",
        "maskings_joints.svg", "maskings_motion.png", "maskings_motion.svg",
        "maskings_overlap.csv",
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diag"]


def _command_paths(command, path=()):
    """Every command and group of the CLI, as the words that run it."""
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


def test_every_help_shows_plain_placeholders():
    import re

    import typer
    from typer.testing import CliRunner

    from asma_bench import commands
    from asma_bench.cli import app

    commands.load_all()
    paths = list(_command_paths(typer.main.get_command(app)))
    assert {(), ("tune",), ("check",), ("latency",), ("data", "convert")} <= set(paths)
    for path in paths:
        result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "160"})
        assert result.exit_code == 0, (path, result.output)
        usage = next(line for line in result.output.splitlines() if "Usage:" in line)
        assert "{" not in usage, (path, usage)  # ``RUN_ID``, not typer's ``{RUN_ID}``
        # options: ours; arguments: typer shows their type beside the name (``<path>``)
        options = result.output.partition("─ Options ─")[2]
        for typed in ("<bool>", "<str>", "<int", "<float", "<list", "<path>"):
            assert typed not in options, (path, typed, result.output)
    tune = CliRunner().invoke(app, ["tune", "--help"], env={"COLUMNS": "160"}).output
    for option, shown in [("--set", "KEY=VALUE"), ("--trials", "N"), ("--runs", "PATH"),
                          ("--profile", "NAME"), ("--timeout", "SECONDS")]:  # fmt: skip
        assert re.search(rf"{option}\s+{shown}\s", tune), (option, tune)
    assert re.search(r"--progress\s+--no-progress\s+Progress bar", tune)  # a flag: no value
    convert = CliRunner().invoke(app, ["data", "convert", "--help"], env={"COLUMNS": "160"})
    assert re.search(r"SOURCE\s+(<path>\s+)?File or folder", convert.output)  # typer's type


def test_help_paragraphs_wrap_at_the_terminal_not_where_the_source_did():
    from asma_bench.commands.app import _unwrap

    text = "First line\n    goes on.\n\n    Second paragraph\n    ends here.\n\n\bkept\nas is"
    assert _unwrap(text) == "First line goes on.\n\nSecond paragraph ends here.\n\n\bkept\nas is"


def test_latency_prints_one_line_per_step_without_a_terminal(tmp_path, monkeypatch):
    import pandas as pd
    from typer.testing import CliRunner

    from asma_bench import commands
    from asma_bench.cli import app
    from asma_bench.perf import latency as latency_module

    steps = [f"timing {m} on 1 thread(s)" for m in ("teacher (fp32)", "student (fp32)")]

    def fake_run_latency(opts, out, work, progress=None):  # reports each step as it starts
        for step in steps:
            if progress is not None:
                progress(step)
        table = pd.DataFrame({"p50 (ms)": [2.0, 1.0]}, index=["teacher", "student"])
        return latency_module.LatencyResult(models=[], table=table, files={}, caption="cap")

    monkeypatch.setattr(latency_module, "run_latency", fake_run_latency)
    commands.load_all()
    args = ["latency", "--profile", "smoke", "--out", str(tmp_path / "r"), "--work", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert [line.rsplit(" (", 1)[0] for line in lines] == [f"latency: {s}" for s in steps]
    assert all(line.endswith(" s)") for line in lines) and "cap" in result.stdout
    quiet = CliRunner().invoke(app, [*args, "--no-progress"])
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.output


def test_a_folder_that_is_no_dataset_is_refused_before_the_store_exists(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for data, words in [("empty", "not an asma-bench dataset folder"), ("nowhere", "no such")]:
        args = ["--data", str(tmp_path / data), "--out", str(tmp_path / "r")]
        code, _, err = run(capsys, "run", "--grid", "masking_pairs", "--profile", "smoke", *args)
        assert code == 2 and one_line(err, words), err
        assert not (tmp_path / "r").exists()  # no store, no FAILED runs


def test_spaces_listing_has_a_header_and_whole_descriptions(capsys):
    from asma_bench.harness.tuning import list_spaces, load_space

    code, out, _ = run(capsys, "spaces")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["space", "protocol", "tuned"]
    flat = " ".join(out.split())
    for name in list_spaces():  # every word of every description, none cut
        assert " ".join(load_space(name).description.split()) in flat
