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
