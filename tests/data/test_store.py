import json

import numpy as np
import pytest

from asma_bench.data.splits import NTU60_XSUB_TRAIN, ntu_splits, ucla_splits
from asma_bench.data.store import DatasetWriter, SampleMeta, SkeletonDataset
from asma_bench.errors import DataFormatError


def _sample(t: int, value: float, bodies: int = 2) -> np.ndarray:
    x = np.full((3, t, 25, bodies), value, dtype=np.float32)
    x[..., 1:] = 0  # second body absent
    return x


def test_roundtrip_pads_and_keeps_lengths(tmp_path):
    out = tmp_path / "ds"
    with DatasetWriter(out, layout="ntu25", source="test", class_names=["a", "b"]) as w:
        w.add(_sample(4, 1.0), SampleMeta("s0", 0, subject=1, camera=2))
        w.add(_sample(7, 2.0), SampleMeta("s1", 1, subject=3, camera=1))
        w.set_splits({"xsub": {"train": [0], "test": [1]}})
    ds = SkeletonDataset(out)
    assert ds.data.shape == (2, 3, 7, 25, 2)
    assert isinstance(ds.data, np.memmap)
    assert ds.lengths.tolist() == [4, 7]
    assert ds.meta["bodies"].tolist() == [1, 1]
    assert np.all(ds.data[0, :, 4:] == 0) and np.all(ds.data[0, :, :4, :, 0] == 1.0)
    assert np.array_equal(ds.sample(1), _sample(7, 2.0))
    assert ds.split("xsub", "test").tolist() == [1]
    assert ds.info["class_names"] == ["a", "b"] and ds.num_classes == 2
    assert not list(tmp_path.glob(".ds.tmp-*"))


def test_failure_leaves_nothing_behind(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(DataFormatError, match="s1: sample contains NaN"):
        with DatasetWriter(out, layout="ntu25", source="test") as w:
            w.add(_sample(4, 1.0), SampleMeta("s0", 0))
            w.add(_sample(4, np.nan), SampleMeta("s1", 0))
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "ds"
    with DatasetWriter(out, layout="ntu25", source="first") as w:
        w.add(_sample(3, 1.0), SampleMeta("a", 0))
    with pytest.raises(DataFormatError, match="already exists"):
        DatasetWriter(out, layout="ntu25", source="second")
    with DatasetWriter(out, layout="ntu25", source="second", overwrite=True) as w:
        w.add(_sample(5, 1.0), SampleMeta("b", 0))
    assert SkeletonDataset(out).info["source"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_wrong_shape_is_rejected(tmp_path):
    w = DatasetWriter(tmp_path / "ds", layout="kinect20", source="t", bodies=1)
    with pytest.raises(DataFormatError, match="does not match"):
        w.add(np.zeros((3, 5, 25, 1)), SampleMeta("x", 0))
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_reader_rejects_corrupt_folder(tmp_path):
    out = tmp_path / "ds"
    with DatasetWriter(out, layout="ntu25", source="t") as w:
        w.add(_sample(3, 1.0), SampleMeta("a", 0))
    info = json.loads((out / "info.json").read_text())
    info["layout"] = "kinect20"
    (out / "info.json").write_text(json.dumps(info))
    with pytest.raises(DataFormatError, match="does not match 1 samples of layout kinect20"):
        SkeletonDataset(out)
    (out / "meta.csv").unlink()
    with pytest.raises(DataFormatError, match="meta.csv: missing"):
        SkeletonDataset(out)


def test_ntu_split_rules():
    import pandas as pd

    meta = pd.DataFrame({
        "subject": [1, 3, 45, 106], "camera": [1, 2, 3, 1], "setup": [1, 2, 18, 32],
        "label": [0, 1, 70, 119],
    })  # fmt: skip
    s = ntu_splits(meta)
    assert s["xsub"]["train"] == [0, 2]  # 45 is an NTU-120 training performer
    assert s["xview"]["train"] == [1, 2]
    assert s["xset"]["train"] == [1, 2, 3]
    assert 3 not in NTU60_XSUB_TRAIN
    s60 = ntu_splits(meta.iloc[:2])
    assert "xset" not in s60 and s60["xsub"]["train"] == [0]
    assert ucla_splits(pd.DataFrame({"camera": [1, 2, 3]}))["xview"] == {
        "train": [0, 1],
        "test": [2],
    }


def test_check_samples_reports_each_bad_sample(tmp_path):
    from asma_bench.data.info import check_samples

    out = tmp_path / "ds"
    with DatasetWriter(out, layout="ntu25", source="t", class_names=["a", "b"]) as w:
        for i in range(5):
            w.add(_sample(4, 1.0), SampleMeta(f"s{i}", i % 2))
    ds = SkeletonDataset(out)
    assert check_samples(ds).empty
    data = np.load(out / "data.npy", mmap_mode="r+")
    data[1, 0, 0, 0, 0] = np.nan
    data[2] = 0
    data.flush()
    meta = ds.meta.copy()
    meta.loc[3, "length"] = 3  # frame 4 of sample 3 now lies in the padding, and is not zero
    meta.loc[4, "label"] = 7
    meta.to_csv(out / "meta.csv", index=False)
    problems = check_samples(SkeletonDataset(out, check_meta=False))
    got = {(r.name, r.problem.split()[0]) for r in problems.itertuples()}
    assert got == {("s1", "contains"), ("s2", "all"), ("s3", "non-zero"), ("s4", "label")}


@pytest.mark.parametrize(
    ("label", "values", "names", "message"),
    [
        (10**9, None, None, r"s0: label 1000000000 is outside 0\.\.9999"),
        (-1, None, None, "label -1 is outside"),
        (2, None, ["a", "b"], r"label 2 is outside 0\.\.1 \(2 class names\)"),
        ("3", None, None, "label '3' is not an integer"),
        (0, np.ones((3, 4, 25, 2), dtype=np.complex64), None, "complex64, not real numbers"),
        (0, np.full((3, 4, 25, 2), "1.0"), None, "not real numbers"),
    ],
)
def test_labels_and_values_are_checked_when_written(tmp_path, label, values, names, message):
    x = _sample(4, 1.0) if values is None else values
    with pytest.raises(DataFormatError, match=message):
        with DatasetWriter(tmp_path / "ds", layout="ntu25", source="t", class_names=names) as w:
            w.add(x, SampleMeta("s0", label))
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("label", "7", r"line 3: label '7' is not an integer in 0\.\.1"),
        ("label", "abc", "line 3: label 'abc'"),
        ("length", "2.5", r"line 3: length '2.5' is not an integer in 1\.\.7"),
        ("length", "99", "line 3: length '99'"),
    ],
)
def test_a_bad_meta_row_is_named_by_its_line_when_read(tmp_path, column, value, message):
    out = tmp_path / "ds"
    with DatasetWriter(out, layout="ntu25", source="test", class_names=["a", "b"]) as w:
        w.add(_sample(4, 1.0), SampleMeta("s0", 0))
        w.add(_sample(7, 2.0), SampleMeta("s1", 1))
    meta = (out / "meta.csv").read_text().splitlines()
    header = meta[0].split(",")
    row = meta[2].split(",")
    row[header.index(column)] = value
    meta[2] = ",".join(row)
    (out / "meta.csv").write_text("\n".join(meta) + "\n")
    with pytest.raises(DataFormatError, match=f"meta.csv: {message}"):
        SkeletonDataset(out)


def test_overwrite_never_replaces_a_file_or_a_foreign_folder(tmp_path):
    """``--overwrite`` replaces a dataset this package wrote; a file or a folder holding
    anything else is refused before a byte is written, and left as it was."""
    out = tmp_path / "ds"
    out.write_text("a user's file in the way")
    with pytest.raises(DataFormatError, match=r"ds: --overwrite replaces only .* is a file"):
        DatasetWriter(out, layout="ntu25", source="t", overwrite=True)
    assert out.read_text() == "a user's file in the way"
    out.unlink()
    with DatasetWriter(out, layout="ntu25", source="t") as w:
        w.add(_sample(4, 1.0), SampleMeta("s0", 0))
    (out / "notes.txt").write_text("mine")  # a dataset folder a user added to
    with pytest.raises(DataFormatError, match="holds 'notes.txt'"):
        DatasetWriter(out, layout="ntu25", source="t", overwrite=True)
    (out / "notes.txt").unlink()
    with DatasetWriter(out, layout="ntu25", source="t", overwrite=True) as w:
        w.add(_sample(4, 2.0), SampleMeta("s1", 0))
    assert [p.name for p in tmp_path.iterdir()] == ["ds"] and out.is_dir()


def test_a_full_disk_while_writing_the_array_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """Faked ENOSPC where the memory-mapped array is reserved (a real full disk would kill
    the writer with SIGBUS at the first page written)."""
    import errno
    import os

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    out = tmp_path / "ds"
    with pytest.raises(DataFormatError, match=r"ds: no space left on the device .* GiB needed"):
        with DatasetWriter(out, layout="ntu25", source="t") as w:
            w.add(_sample(4, 1.0), SampleMeta("s0", 0))
    assert list(tmp_path.iterdir()) == []


def _two_sample_dataset(tmp_path):
    out = tmp_path / "ds"
    with DatasetWriter(out, layout="ntu25", source="test", class_names=["a", "b"]) as w:
        w.add(_sample(4, 1.0), SampleMeta("s0", 0))
        w.add(_sample(7, 2.0), SampleMeta("s1", 1))
        w.set_splits({"xsub": {"train": [0], "test": [1]}})
    return out


def _edit_info(out, **changes):
    info = json.loads((out / "info.json").read_text())
    info.update(changes)
    (out / "info.json").write_text(json.dumps(info))


@pytest.mark.parametrize(
    ("train", "bad"),
    [([0, 999999], "999999"), ([-1], "-1"), ([0.0], "0.0"), ([True], "True"), (["1"], "'1'"),
     ([2**70], str(2**70))],
)  # fmt: skip
def test_a_split_index_outside_the_dataset_is_named_when_it_is_opened(tmp_path, train, bad):
    out = _two_sample_dataset(tmp_path)
    _edit_info(out, splits={"xsub": {"train": train, "test": [1]}})
    with pytest.raises(DataFormatError) as err:
        SkeletonDataset(out)
    assert str(err.value) == (
        f"{out / 'info.json'}: split 'xsub' part 'train': index {bad} is not a sample index "
        "(an integer in 0..1, 2 samples)"
    )
    _edit_info(out, splits={"xsub": {"train": 3, "test": [1]}})
    with pytest.raises(DataFormatError, match="part 'train' is not a list of sample indices"):
        SkeletonDataset(out)


def test_info_and_meta_are_utf8_with_a_bom_accepted_and_other_encodings_named(tmp_path):
    out = _two_sample_dataset(tmp_path)
    _edit_info(out, class_names=["Händeschütteln", "Winken"])
    for name in ("info.json", "meta.csv"):
        path = out / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    ds = SkeletonDataset(out)
    assert ds.info["class_names"][0] == "Händeschütteln"
    assert ds.meta["name"].tolist() == ["s0", "s1"]
    meta = out / "meta.csv"
    meta.write_bytes(meta.read_bytes()[3:].replace(b"s1", "s\xfc".encode("latin-1")))
    offset = meta.read_bytes().index(b"\xfc")
    with pytest.raises(DataFormatError) as err:
        SkeletonDataset(out)
    assert str(err.value) == (
        f"{meta}:3: not UTF-8 text: byte {offset} (0xfc) cannot be decoded; save the file as UTF-8"
    )


def test_a_lying_data_header_and_a_bad_stored_layout_name_their_file(tmp_path):
    out = _two_sample_dataset(tmp_path)
    _edit_info(out, layout={"name": "big", "joints": [f"j{i}" for i in range(5000)],
                            "edges": [], "center": 0})  # fmt: skip
    with pytest.raises(DataFormatError) as err:
        SkeletonDataset(out)
    assert str(err.value).startswith(f"{out / 'info.json'}: layout: layout definition: 5000 joints")
    _edit_info(out, layout="ntu25")
    data = out / "data.npy"
    raw = data.read_bytes()
    data.write_bytes(raw[:-100])  # truncated: numpy would map past the end or allocate
    for mmap in (True, False):
        with pytest.raises(DataFormatError, match="header claims shape \\(2, 3, 7, 25, 2\\)"):
            SkeletonDataset(out, mmap=mmap)
