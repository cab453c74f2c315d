import pickle

import numpy as np
import pytest
import torch

from asma_bench.data.feeder import NORMALIZATIONS, SkeletonFeeder, normalize_sample
from asma_bench.data.layouts import KINECT20, NTU25, get_layout
from asma_bench.data.store import DatasetWriter, SampleMeta, SkeletonDataset
from asma_bench.data.streams import bone_stream, motion_stream
from asma_bench.errors import ConfigError

LENGTHS = [7, 12, 5, 9]
LABELS = [0, 1, 1, 0]
SHOULDERS = NTU25.joint_names.index("left_shoulder"), NTU25.joint_names.index("right_shoulder")


def _samples(v: int, m: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for length in LENGTHS:
        x = rng.normal(0.0, 0.3, (3, length, v, m)).astype(np.float32) + np.float32(3.0)
        if m > 1:
            x[..., 1] = 0  # second body absent
        out.append(x)
    out[1][:, 4, 5, 0] = 0  # one dropped joint
    return out


def _write(root, layout: str, v: int, m: int) -> SkeletonDataset:
    with DatasetWriter(root, layout=layout, source="test", class_names=["a", "b"], bodies=m) as w:
        for i, x in enumerate(_samples(v, m)):
            w.add(x, SampleMeta(f"s{i}", LABELS[i], subject=i + 1, camera=1 + i % 2))
        w.set_splits({"xsub": {"train": [0, 2, 3], "test": [1]}})
    return SkeletonDataset(root)


@pytest.fixture
def ntu(tmp_path) -> SkeletonDataset:
    return _write(tmp_path / "ntu", "ntu25", 25, 2)


def _resize_np(x: np.ndarray, start: int, length: int, frames: int) -> np.ndarray:
    """Independent linear interpolation of frames [start, start + length) to ``frames``."""
    pos = np.linspace(start, start + length - 1, frames)
    c, _, v, m = x.shape
    out = np.empty((c, frames, v, m))
    for ci in range(c):
        for vi in range(v):
            for mi in range(m):
                out[ci, :, vi, mi] = np.interp(pos, np.arange(x.shape[1]), x[ci, :, vi, mi])
    return out


def test_eval_item_matches_manual_centre_first_frame_and_resize(ntu):
    feeder = SkeletonFeeder(ntu, frames=10, normalize="center_first_frame")
    for i, raw in enumerate(_samples(25, 2)):
        x, label = feeder[i]
        assert x.dtype == torch.float32 and x.shape == (3, 10, 25, 2) and label == LABELS[i]
        present = (raw != 0).any(axis=0)
        centred = np.where(present, raw - raw[:, :1, NTU25.center : NTU25.center + 1, :1], 0)
        expect = _resize_np(centred, 0, LENGTHS[i], 10)
        np.testing.assert_allclose(x.numpy(), expect, atol=1e-5)
        assert torch.equal(x[..., 1], torch.zeros_like(x[..., 1]))  # absent body stays zero


def test_other_normalisations_against_manual(ntu):
    raw = _samples(25, 2)[0]
    present = (raw != 0).any(axis=0)
    per_frame = np.where(present, raw - raw[:, :, NTU25.center : NTU25.center + 1, :1], 0)
    np.testing.assert_allclose(
        normalize_sample(raw, NTU25, "center_every_frame"), per_frame, atol=1e-6
    )
    assert normalize_sample(raw, NTU25, "none") is raw
    rotated = normalize_sample(raw, NTU25, "center_every_frame_rotate")
    left, right = SHOULDERS
    d = rotated[:, 0, right, 0] - rotated[:, 0, left, 0]
    assert abs(d[2]) < 1e-5 and d[0] > 0  # shoulder line parallel to +x
    np.testing.assert_allclose(rotated[1], per_frame[1], atol=1e-6)  # about the vertical axis
    np.testing.assert_allclose(
        np.linalg.norm(rotated, axis=0), np.linalg.norm(per_frame, axis=0), atol=1e-5
    )
    # the first frame's centre and the same turn for every frame: the path is kept
    first = np.where(present, raw - raw[:, :1, NTU25.center : NTU25.center + 1, :1], 0)
    turned = normalize_sample(raw, NTU25, "center_first_frame_rotate")
    d = turned[:, 0, right, 0] - turned[:, 0, left, 0]
    assert abs(d[2]) < 1e-5 and d[0] > 0
    np.testing.assert_allclose(turned[1], first[1], atol=1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(turned, axis=0), np.linalg.norm(first, axis=0), atol=1e-5
    )
    centre = turned[:, :, NTU25.center, 0]
    assert np.abs(centre[:, 0]).max() < 1e-6 and np.abs(centre[[0, 2], 1:]).max() > 1e-3
    # seen from any camera about the vertical axis, the result is the same
    c, s = np.cos(1.1), np.sin(1.1)
    turn = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float32)
    elsewhere = np.einsum("ck,ktvm->ctvm", turn, raw).astype(np.float32)
    np.testing.assert_allclose(
        normalize_sample(elsewhere, NTU25, "center_first_frame_rotate"), turned, atol=1e-4
    )
    # a layout that cannot be turned: one line naming why and what to use instead
    flat = np.random.default_rng(0).normal(size=(3, 4, 17, 1)).astype(np.float32)
    with pytest.raises(ConfigError) as err:
        normalize_sample(flat, get_layout("coco17"), "center_first_frame_rotate")
    assert str(err.value) == (
        "normalize 'center_first_frame_rotate' cannot turn these skeletons (layout 'coco17' "
        "is 2-D); use 'center_first_frame'"
    )
    with pytest.raises(ConfigError, match="normalize 'zscore'"):
        SkeletonFeeder(ntu, normalize="zscore")
    assert NORMALIZATIONS[0] == "none"


def test_streams_are_computed_after_resize(ntu):
    joint = SkeletonFeeder(ntu, frames=8)[1][0]
    bone = SkeletonFeeder(ntu, frames=8, stream="bone")[1][0]
    motion = SkeletonFeeder(ntu, frames=8, stream="motion")[1][0]
    torch.testing.assert_close(bone, bone_stream(joint, NTU25))
    torch.testing.assert_close(motion, motion_stream(joint))
    assert torch.equal(motion[:, -1], torch.zeros_like(motion[:, -1]))


def test_eval_is_deterministic_and_train_crops_are_seeded(ntu):
    a = SkeletonFeeder(ntu, frames=6)
    assert all(torch.equal(a[i][0], a[i][0]) for i in range(len(a)))
    assert a.window(1) == (0, 12)
    half = SkeletonFeeder(ntu, frames=6, eval_crop_ratio=0.5)
    assert half.window(1) == (3, 6)  # centre crop
    raw = normalize_sample(_samples(25, 2)[1], NTU25, "center_first_frame")
    np.testing.assert_allclose(half[1][0].numpy(), _resize_np(raw, 3, 6, 6), atol=1e-5)

    train = SkeletonFeeder(ntu, frames=6, train=True, seed=1)
    again = SkeletonFeeder(ntu, frames=6, train=True, seed=1)
    assert all(torch.equal(train[i][0], again[i][0]) for i in range(len(train)))
    windows = set()
    for epoch in range(12):
        train.set_epoch(epoch)
        start, length = train.window(1)
        assert 6 <= length <= 12 and 0 <= start <= 12 - length  # 50–100 % of 12 frames
        windows.add((start, length))
        np.testing.assert_allclose(
            train[1][0].numpy(), _resize_np(raw, start, length, 6), atol=1e-5
        )
    assert len(windows) > 3


def test_split_indices_and_subset(ntu):
    train = SkeletonFeeder(ntu, "xsub", "train")
    assert train.indices.tolist() == [0, 2, 3] and train.labels.tolist() == [0, 1, 0]
    test = SkeletonFeeder(ntu, "xsub", "test")
    assert len(test) == 1 and test[0][1] == 1
    chosen = SkeletonFeeder(ntu, indices=[3, 1])
    assert torch.equal(chosen[0][0], SkeletonFeeder(ntu)[3][0])
    sub = train.subset([2, 0])
    assert sub.indices.tolist() == [3, 0] and len(train) == 3
    assert torch.equal(sub[0][0], train[2][0]) and sub[0][1] == 0
    with pytest.raises(ConfigError, match="not both"):
        SkeletonFeeder(ntu, "xsub", indices=[0])
    with pytest.raises(ConfigError, match="indices"):
        SkeletonFeeder(ntu, indices=[4])
    with pytest.raises(ConfigError, match="stream"):
        SkeletonFeeder(ntu, stream="velocity")
    with pytest.raises(IndexError):
        train[3]


def test_reads_one_sample_at_a_time(ntu):
    feeder = SkeletonFeeder(ntu)
    seen = []

    class Spy:
        def __init__(self, data):
            self.data = data
            self.shape = data.shape

        def __getitem__(self, key):
            seen.append(key)
            return self.data[key]

    feeder.dataset.data = Spy(feeder.dataset.data)
    feeder[2]
    assert len(seen) == 1 and seen[0][0] == 2 and seen[0][2] == slice(None, LENGTHS[2])


def test_pickles_without_the_array_and_works_with_workers(ntu):
    feeder = SkeletonFeeder(ntu, frames=5, stream="bone")
    blob = pickle.dumps(feeder)
    assert len(blob) < 5_000  # the memmap is not copied into the pickle
    clone = pickle.loads(blob)
    assert torch.equal(clone[1][0], feeder[1][0])
    loader = torch.utils.data.DataLoader(feeder, batch_size=2, num_workers=2)
    xs, ys = zip(*loader, strict=True)
    assert torch.equal(torch.cat(xs), torch.stack([feeder[i][0] for i in range(len(feeder))]))
    assert torch.cat(ys).tolist() == LABELS


def test_kinect20_single_body(tmp_path):
    ds = _write(tmp_path / "ucla", "kinect20", 20, 1)
    for mode in NORMALIZATIONS:
        x, _ = SkeletonFeeder(ds, frames=9, normalize=mode)[0]
        assert x.shape == (3, 9, 20, 1)
    feeder = SkeletonFeeder(ds, frames=9, normalize="center_every_frame", stream="bone")
    joint = SkeletonFeeder(ds, frames=9, normalize="center_every_frame")[0][0]
    torch.testing.assert_close(feeder[0][0], bone_stream(joint, KINECT20))
    assert feeder.layout is KINECT20 and feeder.shape == (3, 9, 20, 1)
    # the centre joint (spine) sits at the origin of every frame
    assert torch.equal(joint[:, :, KINECT20.center], torch.zeros_like(joint[:, :, 0]))
