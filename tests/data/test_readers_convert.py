"""The format registry, auto-detection and the ``convert`` entry point."""

import shutil

import numpy as np
import pytest

from asma_bench.data.readers import FORMATS, convert, detect_format
from asma_bench.data.store import SkeletonDataset
from asma_bench.errors import ConfigError, DataFormatError

KNOWN = ["ctrgcn-npz", "generic", "ntu-raw", "pku", "pyskl", "ssl-npy", "ucla"]


def test_registry_lists_the_seven_formats():
    assert FORMATS.list() == KNOWN
    assert FORMATS.kind == "data format"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["S001C001P001R001A001.skeleton"], "ntu-raw"),
        (["xsub/train_data.npy"], "ssl-npy"),
        (["train_position.npy"], "ssl-npy"),
        (["NTU60_CS.npz"], "ctrgcn-npz"),
        (["ntu60_3danno.pkl"], "pyskl"),
        (["0002-L.txt"], "pku"),
        (["PKU_Skeleton_Renew/0002-L.txt", "Train_Label_PKU_final/0002-L.txt"], "pku"),
        (["a01_s01_e00_v01.json"], "ucla"),
    ],
)
def test_detect_format(files, expected, tmp_path):
    root = tmp_path / "src"
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(b"")
    assert detect_format(root) == expected
    if len(files) == 1 and "/" not in files[0]:
        assert detect_format(root / files[0]) == expected


def test_unknown_format_is_one_line_listing_formats(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data.csv").write_text("1,2\n")
    with pytest.raises(DataFormatError) as err:
        convert(tmp_path / "src", tmp_path / "out")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'src'}: ")
    assert all(name in message for name in KNOWN)
    with pytest.raises(DataFormatError) as err:
        convert(tmp_path / "src", tmp_path / "out", "kinetics")
    assert "unknown data format 'kinetics'" in str(err.value)
    assert all(name in str(err.value) for name in KNOWN)
    with pytest.raises(DataFormatError, match="does not exist"):
        convert(tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_options_must_apply_to_the_format(ntu_fixture_dir, tmp_path):
    with pytest.raises(ConfigError, match="option 'whole_file' does not apply to the ntu-raw"):
        convert(ntu_fixture_dir, tmp_path / "out", whole_file=True)
    with pytest.raises(ConfigError, match="labels does not apply to the ntu-raw format"):
        convert(ntu_fixture_dir, tmp_path / "out", labels=tmp_path)
    with pytest.raises(ConfigError, match="missing does not apply to the pku format"):
        convert(tmp_path, tmp_path / "out", "pku", missing=tmp_path / "m.txt")


def test_overwrite_and_progress(ntu_fixture_dir, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ntu_fixture_dir / "S001C001P001R001A005.skeleton", src)
    out = convert(src, tmp_path / "out")
    with pytest.raises(DataFormatError, match="already exists"):
        convert(src, out)
    shutil.copy(ntu_fixture_dir / "S001C001P001R001A001.skeleton", src)
    convert(src, out, overwrite=True, progress=True)
    ds = SkeletonDataset(out)
    assert ds.meta["name"].tolist() == ["S001C001P001R001A001", "S001C001P001R001A005"]
    assert "ntu-raw" in capsys.readouterr().err  # the tqdm bar
    convert(src, tmp_path / "quiet")
    assert capsys.readouterr().err == ""
    # a failed overwrite keeps the old dataset
    (src / "S001C001P001R001A009.skeleton").write_text("2\n")
    with pytest.raises(DataFormatError):
        convert(src, out, overwrite=True)
    assert np.array_equal(SkeletonDataset(out).data, ds.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "quiet", "src"]


@pytest.mark.parametrize("where", ["same", "parent", "labels_inside"])
def test_an_output_folder_holding_the_input_is_refused_and_nothing_is_lost(
    ntu_fixture_dir, tmp_path, where
):
    src = tmp_path / "raw" / "ntu"
    src.mkdir(parents=True)
    shutil.copy(ntu_fixture_dir / "S001C001P001R001A005.skeleton", src)
    before = sorted(p.name for p in src.iterdir())
    out = {"same": src, "parent": tmp_path / "raw", "labels_inside": tmp_path / "out"}[where]
    missing = None
    if where == "labels_inside":
        out.mkdir()
        missing = out / "missing.txt"
        missing.write_text("S001C001P001R001A001\n")
    with pytest.raises(ConfigError, match=r"^output folder .* (is|contains) the "):
        convert(src, out, "ntu-raw", missing=missing, overwrite=True)
    assert sorted(p.name for p in src.iterdir()) == before  # the raw files are all there
    if missing is not None:
        assert missing.read_text() == "S001C001P001R001A001\n"


def test_cli_refuses_converting_a_folder_onto_itself_with_one_line(
    ntu_fixture_dir, tmp_path, capsys
):
    from asma_bench.cli import main

    src = tmp_path / "ntu"
    src.mkdir()
    shutil.copy(ntu_fixture_dir / "S001C001P001R001A005.skeleton", src)
    code = main(["data", "convert", str(src), str(src), "--format", "ntu-raw", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2
    assert "is the source" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert (src / "S001C001P001R001A005.skeleton").is_file()
