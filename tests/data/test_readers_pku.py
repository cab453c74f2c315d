"""PKU-MMD reader: the real Part II fixture cut by label files, whole-file mode, bad input."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from asma_bench.data.readers import convert, detect_format
from asma_bench.data.readers.pku import read_split_file
from asma_bench.data.store import SkeletonDataset
from asma_bench.errors import ConfigError, DataFormatError

LABELS = "5,10,20,1\n12, 300, 400, 2\n"  # two actions: frames 10..20 and 300..400


def plain_rows(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


def expected_sample(rows: list[list[float]]) -> np.ndarray:
    """(3, T, 25, 2) written out index by index from 150-value rows."""
    x = np.zeros((3, len(rows), 25, 2), dtype=np.float32)
    for t, row in enumerate(rows):
        for b in range(2):
            for j in range(25):
                for c in range(3):
                    x[c, t, j, b] = row[b * 75 + j * 3 + c]
    return x


def assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def layout_folder(tmp_path: Path, pku_fixture_file: Path, labels: str = LABELS) -> Path:
    root = tmp_path / "PKU"
    (root / "skeleton").mkdir(parents=True)
    (root / "label").mkdir()
    shutil.copy(pku_fixture_file, root / "skeleton" / pku_fixture_file.name)
    (root / "label" / pku_fixture_file.name).write_text(labels)
    return root


def test_label_intervals_cut_exact_rows(pku_fixture_file, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text(LABELS)
    ds = SkeletonDataset(convert(pku_fixture_file, tmp_path / "pku", "pku", labels=labels))
    rows = plain_rows(pku_fixture_file)
    assert len(rows) == 1040 and {len(r) for r in rows} == {150}
    assert ds.meta["name"].tolist() == ["A10N08-L_0", "A10N08-L_1"]
    assert ds.labels.tolist() == [4, 11]
    assert ds.lengths.tolist() == [11, 101]
    assert ds.meta["camera"].tolist() == [1, 1] and ds.meta["subject"].tolist() == [-1, -1]
    assert np.array_equal(ds.sample(0), expected_sample(rows[10:21]))
    assert np.array_equal(ds.sample(1), expected_sample(rows[300:401]))
    # the L view is cross-view test
    assert ds.split("xview", "test").tolist() == [0, 1]


def test_whole_file_mode_keeps_every_frame(pku_fixture_file, tmp_path):
    ds = SkeletonDataset(convert(pku_fixture_file, tmp_path / "pku", whole_file=True))
    rows = plain_rows(pku_fixture_file)
    assert ds.meta["name"].tolist() == ["A10N08-L"] and ds.labels.tolist() == [0]
    assert ds.lengths.tolist() == [1040] and ds.meta["bodies"].tolist() == [2]
    x = ds.sample(0)
    assert np.array_equal(x[:, 0], expected_sample(rows[:1])[:, 0])
    assert np.array_equal(x[:, -1], expected_sample(rows[-1:])[:, 0])
    second_present = int(np.any(x[..., 1] != 0, axis=(0, 2)).sum())
    assert second_present == sum(any(v != 0 for v in r[75:]) for r in rows) == 728


def test_folder_layout_crlf_and_split_file(pku_fixture_file, tmp_path):
    root = layout_folder(tmp_path, pku_fixture_file)
    skel = root / "skeleton" / pku_fixture_file.name
    skel.write_bytes(skel.read_bytes().replace(b"\n", b"\r\n"))  # CRLF copy
    split = tmp_path / "cross-subject.txt"
    split.write_text("Training videos: \nA01N01-M, A10N08-L, A03N02-R\n"
                     "Validataion videos: \nA02N01-L, A04N02-M\n")  # fmt: skip
    assert read_split_file(split) == (["A01N01-M", "A10N08-L", "A03N02-R"],
                                      ["A02N01-L", "A04N02-M"])  # fmt: skip
    assert detect_format(root) == "pku"
    ds = SkeletonDataset(convert(root, tmp_path / "pku", split_file=split))
    rows = plain_rows(pku_fixture_file)
    assert np.array_equal(ds.sample(0), expected_sample(rows[10:21]))
    assert np.array_equal(ds.sample(1), expected_sample(rows[300:401]))
    assert ds.split("xsub", "train").tolist() == [0, 1]
    assert ds.split("xsub", "test").tolist() == []


def test_one_based_labels(pku_fixture_file, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("2,1,5,1\n")
    ds = SkeletonDataset(convert(pku_fixture_file, tmp_path / "pku", labels=labels,
                                 first_frame=1))  # fmt: skip
    assert np.array_equal(ds.sample(0), expected_sample(plain_rows(pku_fixture_file)[0:5]))
    with pytest.raises(ConfigError, match="first_frame"):
        convert(pku_fixture_file, tmp_path / "x", labels=labels, first_frame=2)


def test_bad_skeleton_lines_name_file_and_line(pku_fixture_file, tmp_path):
    lines = pku_fixture_file.read_text().split("\n")
    cases = {
        37: (lines[36].split()[:3] + ["abc"] + lines[36].split()[4:], "field 4 is not a number"),
        500: (lines[499].split()[:149], "expected 150 numbers, found 149 fields"),
        1040: (["nan"] + lines[1039].split()[1:], "field 1 is 'nan', not a finite number"),
    }
    for line_no, (fields, message) in cases.items():
        bad = list(lines)
        bad[line_no - 1] = " ".join(fields)
        root = layout_folder(tmp_path / str(line_no), pku_fixture_file)
        skel = root / "skeleton" / pku_fixture_file.name
        skel.write_text("\n".join(bad))
        out = tmp_path / str(line_no) / "out"
        with pytest.raises(DataFormatError) as err:
            convert(root, out)
        assert str(err.value).startswith(f"{skel}:{line_no}: "), str(err.value)
        assert message in str(err.value)
        assert_nothing_left(out)


@pytest.mark.parametrize(
    ("labels", "line", "message"),
    [
        ("5,10,20,1\n5,abc,20,1\n", 2, "non-numeric field"),
        ("5,10,20,1\n\n3,2000,2100,1\n", 3, "start frame 2000 is beyond the 1040 frames"),
        ("0,10,20,1\n", 1, "action_id 0 is not >= 1"),
        ("5,30,20,1\n", 1, "bad frame range 30..20"),
        ("5;10;20;1\n", 1, "found 1 fields"),
    ],
)
def test_bad_label_rows_name_file_and_line(labels, line, message, pku_fixture_file, tmp_path):
    root = layout_folder(tmp_path, pku_fixture_file, labels)
    out = tmp_path / "out"
    with pytest.raises(DataFormatError) as err:
        convert(root, out)
    label_file = root / "label" / pku_fixture_file.name
    assert re.match(rf"{re.escape(str(label_file))}:{line}: .*{re.escape(message)}",
                    str(err.value)), str(err.value)  # fmt: skip
    assert_nothing_left(out)


def test_empty_files_and_missing_labels(pku_fixture_file, tmp_path):
    root = layout_folder(tmp_path, pku_fixture_file, "")
    with pytest.raises(DataFormatError, match=r"label.A10N08-L\.txt: empty file"):
        convert(root, tmp_path / "out")
    (root / "skeleton" / pku_fixture_file.name).write_text("\n\n")
    with pytest.raises(DataFormatError, match=r"skeleton.A10N08-L\.txt: empty file"):
        convert(root, tmp_path / "out", whole_file=True)
    with pytest.raises(DataFormatError, match="no label files found"):
        convert(pku_fixture_file, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


def test_end_frame_beyond_file_is_cut(pku_fixture_file, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("7,1000,1100,1\n")
    ds = SkeletonDataset(convert(pku_fixture_file, tmp_path / "pku", labels=labels))
    assert ds.lengths.tolist() == [40]
    assert np.array_equal(ds.sample(0), expected_sample(plain_rows(pku_fixture_file)[1000:]))
