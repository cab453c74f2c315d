"""NW-UCLA JSON reader: values, metadata, cross-view split, bad JSON with line numbers."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from asma_bench.data.readers import convert, detect_format
from asma_bench.data.store import SkeletonDataset
from asma_bench.errors import DataFormatError

SAMPLES = [("a01_s01_e00_v01", 1, 5), ("a08_s02_e01_v02", 7, 3), ("a12_s10_e04_v03", 10, 4)]


def write_samples(folder: Path, rng) -> dict[str, list]:
    folder.mkdir(parents=True, exist_ok=True)
    skeletons = {}
    for name, label, frames in SAMPLES:
        sk = np.round(rng.standard_normal((frames, 20, 3)), 7).tolist()
        (folder / f"{name}.json").write_text(
            json.dumps({"file_name": name, "skeletons": sk, "label": label}, indent=1)
        )
        skeletons[name] = sk
    return skeletons


def assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_ucla_round_trip(tmp_path):
    skeletons = write_samples(tmp_path / "src", np.random.default_rng(0))
    assert detect_format(tmp_path / "src") == "ucla"
    ds = SkeletonDataset(convert(tmp_path / "src", tmp_path / "out"))
    assert ds.layout.name == "kinect20" and ds.data.shape == (3, 3, 5, 20, 1)
    assert ds.meta["name"].tolist() == [s[0] for s in SAMPLES]
    assert ds.labels.tolist() == [0, 6, 9]
    assert ds.meta["subject"].tolist() == [1, 2, 10]
    assert ds.meta["replication"].tolist() == [0, 1, 4]
    assert ds.meta["camera"].tolist() == [1, 2, 3]
    assert ds.lengths.tolist() == [5, 3, 4]
    for i, (name, _, frames) in enumerate(SAMPLES):
        s = ds.sample(i)
        for t in range(frames):
            for j in range(20):
                assert s[:, t, j, 0].tolist() == np.float32(skeletons[name][t][j]).tolist()
    assert ds.split("xview", "train").tolist() == [0, 1]
    assert ds.split("xview", "test").tolist() == [2]
    assert ds.split_names == ["xview"]


def test_ucla_class_names_in_label_order(tmp_path):
    write_samples(tmp_path / "src", np.random.default_rng(0))
    ds = SkeletonDataset(convert(tmp_path / "src", tmp_path / "out"))
    assert ds.info["class_names"] == [
        "pick up with one hand",
        "pick up with two hands",
        "drop trash",
        "walk around",
        "sit down",
        "stand up",
        "donning",
        "doffing",
        "throw",
        "carry",
    ]
    assert ds.num_classes == 10  # all ten, whichever labels the files have
    names = [ds.info["class_names"][y] for y in ds.labels]
    assert names == ["pick up with one hand", "donning", "carry"]  # file labels 1, 7, 10


def test_ucla_truncated_and_empty_json(tmp_path):
    write_samples(tmp_path / "src", np.random.default_rng(1))
    bad = tmp_path / "src" / "a12_s10_e04_v03.json"
    text = bad.read_text()
    cut = text[: len(text) // 2].rstrip()
    bad.write_text(cut)
    with pytest.raises(DataFormatError) as err:
        convert(tmp_path / "src", tmp_path / "out")
    assert re.fullmatch(rf"{re.escape(str(bad))}:{cut.count(chr(10)) + 1}: invalid JSON: .+",
                        str(err.value)), str(err.value)  # fmt: skip
    assert_nothing_left(tmp_path / "out")
    bad.write_text("  \n")
    with pytest.raises(DataFormatError) as err:
        convert(tmp_path / "src", tmp_path / "out")
    assert str(err.value) == f"{bad}: empty file"
    assert_nothing_left(tmp_path / "out")


def test_ucla_nan_names_its_line(tmp_path):
    write_samples(tmp_path / "src", np.random.default_rng(2))
    bad = tmp_path / "src" / "a08_s02_e01_v02.json"
    lines = bad.read_text().split("\n")
    number_line = next(i for i, line in enumerate(lines) if line.strip().rstrip(",")
                       .replace(".", "").replace("-", "").isdigit())  # fmt: skip
    lines[number_line] = lines[number_line].replace(lines[number_line].strip().rstrip(","), "NaN")
    bad.write_text("\n".join(lines))
    with pytest.raises(DataFormatError) as err:
        convert(tmp_path / "src", tmp_path / "out")
    assert str(err.value) == f"{bad}:{number_line + 1}: NaN is not a finite number"
    assert_nothing_left(tmp_path / "out")


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"skeletons": [[[0.0] * 3] * 19], "label": 1}, "shape (1, 19, 3)"),
        ({"skeletons": [[[0.0, "x", 1.0]] * 20], "label": 1}, "array of numbers"),
        ({"skeletons": [[[0.0] * 3] * 20], "label": 0}, "label 0 is not an integer >= 1"),
        ({"skeletons": [[[0.0] * 3] * 20], "label": 11}, "label 11 is above 10"),
        ({"skeletons": [], "label": 1}, "expected (T>0, 20, 3)"),
        ({"label": 1}, "expected {"),
    ],
)
def test_ucla_bad_content(obj, message, tmp_path):
    path = tmp_path / "a01_s01_e00_v01.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(DataFormatError) as err:
        convert(path, tmp_path / "out")
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_ucla_bad_file_name(tmp_path):
    path = tmp_path / "sample.json"
    path.write_text("{}")
    with pytest.raises(DataFormatError, match=r"sample\.json: file name does not follow"):
        convert(path, tmp_path / "out")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"skeletons": [], "label": ' + "9" * 10_000 + "}", "invalid JSON value"),
    ],
)
def test_ucla_hostile_json_is_one_line(text, message, tmp_path):
    path = tmp_path / "a01_s01_e00_v01.json"
    path.write_text(text)
    with pytest.raises(DataFormatError) as err:
        convert(path, tmp_path / "out")
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert len(str(err.value)) < 300
