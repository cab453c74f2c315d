"""Preprocessed array formats: SSL-lineage .npy + label pickles, CTR-GCN .npz, PYSKL pickles."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from asma_bench.data.readers import convert, detect_format
from asma_bench.data.readers.ctrgcn_npz import split_name
from asma_bench.data.store import SkeletonDataset
from asma_bench.errors import DataFormatError, UnsafePickleError


class SystemPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def random_samples(rng, n: int, t: int, lengths, bodies: int = 2) -> np.ndarray:
    """(N, 3, T, 25, M) float32, zero after each sample's length; body 2 only in sample 0."""
    x = rng.standard_normal((n, 3, t, 25, bodies)).astype(np.float32)
    for i, length in enumerate(lengths):
        x[i, :, length:] = 0
        if i > 0:
            x[i, ..., 1:] = 0
    return x


# --------------------------------------------------------------------------- ssl-npy
def write_benchmark(folder: Path, rng, n_train=3, n_val=2, t=12, stem="data", tag="xsub"):
    folder.mkdir(parents=True)
    arrays = {}
    for part, n, first in (("train", n_train, 1), ("val", n_val, 30)):
        lengths = [t - i for i in range(n)]
        x = random_samples(rng, n, t, lengths)
        names = [f"S001C00{1 + i % 3}P{first + i:03d}R001A{10 + i:03d}.skeleton" for i in range(n)]
        labels = [int(v) for v in rng.integers(0, 60, n)]
        np.save(folder / f"{part}_{stem}.npy", x)
        with open(folder / f"{part}_label.pkl", "wb") as fh:
            pickle.dump((names, labels), fh)
        arrays[part] = (x, names, labels, lengths)
    return arrays


def check_benchmark(ds: SkeletonDataset, arrays, split: str) -> None:
    x_tr, names_tr, labels_tr, len_tr = arrays["train"]
    x_va, names_va, labels_va, len_va = arrays["val"]
    names = [n[: -len(".skeleton")] for n in names_tr + names_va]
    assert ds.meta["name"].tolist() == names
    assert ds.labels.tolist() == labels_tr + labels_va
    assert ds.lengths.tolist() == len_tr + len_va
    assert ds.meta["subject"].tolist() == [int(n[9:12]) for n in names]
    assert ds.meta["camera"].tolist() == [int(n[5:8]) for n in names]
    for i, (x, length) in enumerate(zip(list(x_tr) + list(x_va), len_tr + len_va, strict=True)):
        assert np.array_equal(ds.sample(i), x[:, :length])
    n = len(names_tr)
    assert ds.split_names == [split]
    assert ds.split(split, "train").tolist() == list(range(n))
    assert ds.split(split, "test").tolist() == list(range(n, n + len(names_va)))


def test_ssl_npy_root_with_two_benchmarks(tmp_path):
    rng = np.random.default_rng(0)
    xsub = write_benchmark(tmp_path / "src" / "xsub", rng)
    xview = write_benchmark(tmp_path / "src" / "xview", rng, stem="position", n_train=2)
    assert detect_format(tmp_path / "src") == "ssl-npy"
    out = convert(tmp_path / "src", tmp_path / "out")
    check_benchmark(SkeletonDataset(out / "xsub"), xsub, "xsub")
    check_benchmark(SkeletonDataset(out / "xview"), xview, "xview")
    assert sorted(p.name for p in out.iterdir()) == ["xsub", "xview"]
    assert not list(tmp_path.glob(".out.*"))


def test_ssl_npy_single_benchmark_folder(tmp_path):
    arrays = write_benchmark(tmp_path / "xsub", np.random.default_rng(1), stem="data_joint")
    ds = SkeletonDataset(convert(tmp_path / "xsub", tmp_path / "out", "ssl-npy"))
    check_benchmark(ds, arrays, "xsub")


def test_ssl_npy_label_count_mismatch_leaves_nothing(tmp_path):
    rng = np.random.default_rng(2)
    write_benchmark(tmp_path / "src" / "xsub", rng)
    write_benchmark(tmp_path / "src" / "xview", rng)
    label = tmp_path / "src" / "xview" / "val_label.pkl"
    label.write_bytes(pickle.dumps((["a", "b", "c"], [0, 1, 2])))
    out = tmp_path / "out"
    with pytest.raises(DataFormatError) as err:
        convert(tmp_path / "src", out)
    assert str(err.value) == f"{label}: 3 labels for the 2 samples of val_data.npy"
    assert_nothing_left(out)  # xsub was written fine, yet nothing is left


def test_ssl_npy_unsafe_label_pickle(tmp_path):
    write_benchmark(tmp_path / "xsub", np.random.default_rng(3))
    marker = tmp_path / "pwned"
    label = tmp_path / "xsub" / "train_label.pkl"
    label.write_bytes(pickle.dumps((["a"] * 3, [SystemPayload(marker)] * 3)))
    out = tmp_path / "out"
    with pytest.raises(UnsafePickleError) as err:
        convert(tmp_path / "xsub", out)
    assert str(err.value).startswith(f"{label}: refusing to load")
    assert f"{os.system.__module__}.system" in str(err.value)
    assert not marker.exists()
    assert_nothing_left(out)


def test_ssl_npy_nan_sample(tmp_path):
    write_benchmark(tmp_path / "xsub", np.random.default_rng(4))
    data = tmp_path / "xsub" / "val_data.npy"
    x = np.load(data)
    x[1, 2, 3, 4, 0] = np.nan
    np.save(data, x)
    with pytest.raises(DataFormatError, match=r"val_data\.npy: sample 1 \(\S+\) contains NaN"):
        convert(tmp_path / "xsub", tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


# --------------------------------------------------------------------------- ctrgcn-npz
def ctrgcn_arrays(rng, n: int, t: int = 10, classes: int = 4):
    x = random_samples(rng, n, t, [t - 2 * i for i in range(n)])  # (N, 3, T, 25, 2)
    flat = x.transpose(0, 2, 4, 3, 1).reshape(n, t, 150)  # (N, T, body, joint, xyz)
    y = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]
    return x, flat, y


@pytest.mark.parametrize("compressed", [False, True])
def test_ctrgcn_npz_round_trip(compressed, tmp_path):
    rng = np.random.default_rng(5)
    x_tr, flat_tr, y_tr = ctrgcn_arrays(rng, 3)
    x_te, flat_te, y_te = ctrgcn_arrays(rng, 2)
    path = tmp_path / "NTU60_CS.npz"
    save = np.savez_compressed if compressed else np.savez
    save(path, x_train=flat_tr, y_train=y_tr, x_test=flat_te, y_test=y_te)
    ds = SkeletonDataset(convert(path, tmp_path / "out"))
    assert ds.labels.tolist() == y_tr.argmax(1).tolist() + y_te.argmax(1).tolist()
    assert ds.meta["name"].tolist() == ["train_000000", "train_000001", "train_000002",
                                        "test_000000", "test_000001"]  # fmt: skip
    pairs = zip(list(x_tr) + list(x_te), list(flat_tr) + list(flat_te), strict=True)
    for i, (x, flat) in enumerate(pairs):
        s = ds.sample(i)
        assert np.array_equal(s, x[:, : s.shape[1]])
        c, t, j, m = 2, s.shape[1] - 1, 24, 0  # the layout spelled out for one value
        assert s[c, t, j, m] == flat[t, m * 75 + j * 3 + c]
    assert ds.lengths.tolist() == [10, 8, 6, 10, 8]
    assert ds.split("xsub", "train").tolist() == [0, 1, 2]
    assert ds.split("xsub", "test").tolist() == [3, 4]


def test_ctrgcn_split_names():
    names = ["NTU60_CS", "NTU60_CV", "NTU120_CSub", "NTU120_CSet"]
    assert [split_name(Path(f"{n}.npz")) for n in names] == ["xsub", "xview", "xsub", "xset"]


def test_ctrgcn_npz_bad_inputs(tmp_path):
    rng = np.random.default_rng(6)
    _, flat, y = ctrgcn_arrays(rng, 2)
    path = tmp_path / "NTU60_CV.npz"
    np.savez(path, x_train=flat, y_train=y * 2, x_test=flat, y_test=y)
    with pytest.raises(DataFormatError, match=r"NTU60_CV\.npz: y_train row 0 is not one-hot"):
        convert(path, tmp_path / "out")
    np.savez(path, x_train=flat, y_train=y, x_test=flat, y_test=y[:1])
    with pytest.raises(DataFormatError, match=r"NTU60_CV\.npz: y_test has 1 labels for 2"):
        convert(path, tmp_path / "out")
    objects = np.empty(2, dtype=object)
    np.savez(path, x_train=objects, y_train=y, x_test=flat, y_test=y)
    with pytest.raises(DataFormatError, match=r"x_train holds Python objects"):
        convert(path, tmp_path / "out")
    np.savez(path, x_train=flat, y_train=y, y_test=y)
    with pytest.raises(DataFormatError) as err:
        convert(path, tmp_path / "out")
    assert str(err.value) == f"{path}: missing x_test (has x_train, y_train, y_test)"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataFormatError, match=r"NTU60_CV\.npz: not a readable \.npz"):
        convert(path, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


def _lying_npy(shape) -> bytes:
    """A .npy header claiming ``shape`` (float32) and no data: 128 bytes."""
    import io

    buf = io.BytesIO()
    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def test_array_headers_claiming_more_than_the_file_holds_are_refused(tmp_path):
    """ssl-npy's arrays and ctrgcn-npz's members: the header's size is checked against
    the file (the zip directory's uncompressed size) before numpy maps or allocates."""
    import zipfile

    rng = np.random.default_rng(8)
    write_benchmark(tmp_path / "ssl" / "xsub", rng)
    liar = tmp_path / "ssl" / "xsub" / "val_data.npy"
    liar.write_bytes(_lying_npy((2, 10**9, 25, 3)))
    with pytest.raises(DataFormatError) as err:
        convert(tmp_path / "ssl" / "xsub", tmp_path / "out")
    assert str(err.value).startswith(f"{liar}: header claims shape (2, 1000000000, 25, 3)")

    _, flat, y = ctrgcn_arrays(rng, 2)
    path = tmp_path / "NTU60_CS.npz"
    np.savez(path, x_train=flat, x_test=flat, y_test=y)
    with zipfile.ZipFile(path, "a") as zf:  # y_train is loaded whole: the worst place to lie
        zf.writestr("y_train.npy", _lying_npy((10**9, 60)))
    with pytest.raises(DataFormatError) as err:
        convert(path, tmp_path / "out")
    assert str(err.value).startswith(f"{path}: y_train: header claims shape (1000000000, 60)")
    assert_nothing_left(tmp_path / "out")


# --------------------------------------------------------------------------- pyskl
def pyskl_annotations(rng):
    anns = []
    for i, bodies in enumerate([1, 2, 3]):
        kp = rng.standard_normal((bodies, 6 + i, 25, 3)).astype(np.float16)
        name = f"S00{i + 1}C002P00{i + 1}R001A00{i + 1}"
        anns.append(dict(frame_dir=name, label=i * 2, keypoint=kp, total_frames=6 + i))
    return anns


def test_pyskl_round_trip_pads_and_trims_bodies(tmp_path):
    anns = pyskl_annotations(np.random.default_rng(7))
    names = [a["frame_dir"] for a in anns]
    obj = dict(split=dict(xsub_train=names[:2], xsub_val=names[2:], xview_train=names[1:],
                          xview_val=names[:1]), annotations=anns)  # fmt: skip
    path = tmp_path / "ntu60_3danno.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    assert detect_format(path) == "pyskl"
    ds = SkeletonDataset(convert(path, tmp_path / "out"))
    assert ds.meta["name"].tolist() == names
    assert ds.labels.tolist() == [0, 2, 4]
    assert ds.meta["bodies"].tolist() == [1, 2, 2]
    assert ds.meta["setup"].tolist() == [1, 2, 3]
    for i, ann in enumerate(anns):
        kp = ann["keypoint"].astype(np.float32)  # (M, T, V, C)
        s = ds.sample(i)
        assert s.shape == (3, kp.shape[1], 25, 2)
        for m in range(2):
            want = kp[m].transpose(2, 0, 1) if m < len(kp) else 0
            assert np.array_equal(s[..., m], np.broadcast_to(want, s[..., m].shape))
    assert ds.split("xsub", "train").tolist() == [0, 1]
    assert ds.split("xsub", "test").tolist() == [2]
    assert ds.split("xview", "train").tolist() == [1, 2]
    assert ds.split("xview", "test").tolist() == [0]


def test_pyskl_bad_inputs(tmp_path):
    rng = np.random.default_rng(8)
    path = tmp_path / "anno.pkl"
    anns = pyskl_annotations(rng)
    anns[1]["keypoint"] = anns[1]["keypoint"][..., :2]
    path.write_bytes(pickle.dumps(dict(split={}, annotations=anns)))
    with pytest.raises(DataFormatError, match=r"anno\.pkl: annotations\[1\] \(\S+\): keypoint "
                       r"has C=2; only 3D"):  # fmt: skip
        convert(path, tmp_path / "out")
    anns = pyskl_annotations(rng)
    anns[2]["keypoint"][0, 1, 2, 0] = np.inf
    path.write_bytes(pickle.dumps(dict(split={}, annotations=anns)))
    with pytest.raises(DataFormatError, match=r"annotations\[2\] .*NaN or inf"):
        convert(path, tmp_path / "out")
    marker = tmp_path / "pwned"
    anns = pyskl_annotations(rng)
    anns[0]["label"] = SystemPayload(marker)
    path.write_bytes(pickle.dumps(dict(split={}, annotations=anns)))
    with pytest.raises(UnsafePickleError, match=r"anno\.pkl: refusing to load"):
        convert(path, tmp_path / "out")
    assert not marker.exists()
    assert_nothing_left(tmp_path / "out")


# --------------------------------------------------------------------------- --skip-bad
def skipped_names(ds: SkeletonDataset) -> list[str]:
    import pandas as pd

    return pd.read_csv(ds.root / "skipped.csv")["name"].tolist()


def test_ssl_npy_skip_bad_lists_bad_samples_and_keeps_splits_aligned(tmp_path):
    arrays = write_benchmark(tmp_path / "xsub", np.random.default_rng(9), n_train=4, n_val=3)
    train, val = tmp_path / "xsub" / "train_data.npy", tmp_path / "xsub" / "val_data.npy"
    x = np.load(train)
    x[1, 0, 0, 0, 0] = np.nan  # NaN
    np.save(train, x)
    x = np.load(val)
    x[0] = 0  # an all-zero sample
    np.save(val, x)
    ds = SkeletonDataset(convert(tmp_path / "xsub", tmp_path / "out", skip_bad=True))
    names_tr, names_va = arrays["train"][1], arrays["val"][1]
    kept = [names_tr[0], *names_tr[2:], *names_va[1:]]
    assert ds.meta["name"].tolist() == [n.removesuffix(".skeleton") for n in kept]
    assert ds.split("xsub", "train").tolist() == [0, 1, 2]  # the NaN sample is gone
    assert ds.split("xsub", "test").tolist() == [3, 4]
    assert skipped_names(ds) == [names_tr[1], names_va[0]]
    assert ds.info["skipped"] == 2
    assert np.array_equal(ds.sample(1), arrays["train"][0][2][:, : arrays["train"][3][2]])


def test_ctrgcn_skip_bad(tmp_path):
    rng = np.random.default_rng(10)
    x, flat, y = ctrgcn_arrays(rng, 4)
    flat[2, 0, 5] = np.inf
    xt, flat_t, yt = ctrgcn_arrays(rng, 2)
    flat_t[1] = 0
    path = tmp_path / "NTU60_CS.npz"
    np.savez(path, x_train=flat, y_train=y, x_test=flat_t, y_test=yt)
    with pytest.raises(DataFormatError, match="x_train sample 2 contains NaN or inf"):
        convert(path, tmp_path / "strict")
    ds = SkeletonDataset(convert(path, tmp_path / "out", skip_bad=True))
    assert ds.meta["name"].tolist() == ["train_000000", "train_000001", "train_000003",
                                        "test_000000"]  # fmt: skip
    assert ds.split("xsub", "train").tolist() == [0, 1, 2]
    assert ds.split("xsub", "test").tolist() == [3]
    assert skipped_names(ds) == ["train_000002", "test_000001"]
    assert ds.labels.tolist() == [*y[[0, 1, 3]].argmax(1), yt[0].argmax()]


def test_pyskl_skip_bad_drops_bad_annotations_from_every_split(tmp_path, caplog):
    anns = pyskl_annotations(np.random.default_rng(11))
    names = [a["frame_dir"] for a in anns]
    anns[0]["keypoint"] = anns[0]["keypoint"][:, :, :20]  # 20 joints where the rest have 25
    anns[0], anns[1] = anns[1], anns[0]  # the first good annotation sets the layout
    anns[2]["keypoint"][0, 0, 0, 0] = np.nan
    obj = dict(split=dict(xsub_train=names[:2], xsub_val=names[2:]), annotations=anns)
    path = tmp_path / "anno.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(DataFormatError, match=r"annotations\[1\] .* has 20 joints"):
        convert(path, tmp_path / "strict")
    ds = SkeletonDataset(convert(path, tmp_path / "out", skip_bad=True))
    assert ds.meta["name"].tolist() == [names[1]]
    assert ds.split("xsub", "train").tolist() == [0]
    assert ds.split("xsub", "test").tolist() == []
    assert skipped_names(ds) == [names[0], names[2]]
    assert "have no annotation" not in caplog.text  # skipped names are not "missing"
