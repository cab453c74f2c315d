"""PYSKL's 2-D pickles (HRNet COCO-17 keypoints with ``keypoint_score``) convert onto the
coco17 layout, the score a third channel, and the converted set trains."""

import pickle

import numpy as np
import pytest

from asma_bench.data.readers import convert
from asma_bench.data.store import SkeletonDataset
from asma_bench.errors import ConfigError, DataFormatError

# x, y (pixels, y down) of a standing person's 17 COCO keypoints, as HRNet gives them
REST = np.array([
    [0, -290], [-12, -300], [12, -300], [-25, -295], [25, -295], [-60, -200], [60, -200],
    [-75, -90], [75, -90], [-80, 10], [80, 10], [-40, 10], [40, 10], [-42, 160], [42, 160],
    [-44, 300], [44, 300],
], dtype=np.float64)  # fmt: skip
RIGHT_WRIST = 10


def annotation(rng, name, label, frames, bodies=1):
    """One annotation as pyskl's documentation lays it out: (M, T, V, C) float16 keypoints
    and (M, T, V) scores; class 0 waves the right wrist sideways, class 1 lifts it."""
    t = np.arange(frames)[:, None]
    pose = np.repeat(REST[None], frames, axis=0) + np.array([960.0, 540.0])
    move = 40 * np.sin(t / 2)
    pose[:, RIGHT_WRIST] += np.c_[move, 0 * move] if label == 0 else np.c_[0 * move, move]
    noise = rng.normal(0, 1, (bodies, frames, 17, 2))
    kp = np.stack([pose + 50 * m for m in range(bodies)]) + noise
    score = np.broadcast_to(0.5 + np.arange(17) / 40, (bodies, frames, 17))  # per joint, fixed
    return dict(frame_dir=name, label=label, img_shape=(1080, 1920), original_shape=(1080, 1920),
                total_frames=frames, keypoint=kp.astype(np.float16),
                keypoint_score=score.astype(np.float16))  # fmt: skip


def write_pickle(path, anns, split):
    path.write_bytes(pickle.dumps(dict(split=split, annotations=anns), protocol=4))
    return path


@pytest.fixture
def hrnet(tmp_path):
    rng = np.random.default_rng(0)
    anns = [annotation(rng, f"S001C001P{p:03d}R001A{c + 1:03d}", c, 10 + p, bodies=1 + p % 2)
            for p in range(1, 5) for c in range(2)]  # fmt: skip
    # a known position: body 0, frame 3, right wrist at (612.5, 301.25), score 0.75
    anns[2]["keypoint"][0, 3, RIGHT_WRIST] = [612.5, 301.25]
    anns[2]["keypoint_score"][0, 3, RIGHT_WRIST] = 0.75
    names = [a["frame_dir"] for a in anns]
    split = dict(xsub_train=names[:6], xsub_val=names[6:], xview_train=names[::2],
                 xview_val=names[1::2])  # fmt: skip
    return write_pickle(tmp_path / "ntu60_hrnet.pkl", anns, split), anns


def test_hrnet_pickle_converts_to_coco17_with_the_score_as_third_channel(hrnet, tmp_path):
    path, anns = hrnet
    ds = SkeletonDataset(convert(path, tmp_path / "out"))  # format and layout from the file
    assert ds.layout.name == "coco17" and ds.layout.dims == 2
    assert ds.data.shape[1:] == (3, 14, 17, 2)  # x, y, score; longest clip; 2 bodies
    x = ds.sample(2)  # (C, T, V, M)
    assert x[:, 3, RIGHT_WRIST, 0].tolist() == [612.5, 301.25, 0.75]
    kp = anns[2]["keypoint"].astype(np.float32)
    np.testing.assert_array_equal(x[:2, :, :, 0], kp[0].transpose(2, 0, 1))
    np.testing.assert_array_equal(x[2, 0, :, 0], (0.5 + np.arange(17) / 40).astype(np.float16))
    assert not x[..., 1].any()  # one body: the second is zero, score included
    two = ds.sample(1)
    np.testing.assert_array_equal(two[2, :, :, 1], anns[1]["keypoint_score"][1].astype(np.float32))
    assert ds.labels.tolist() == [0, 1] * 4
    assert ds.meta["bodies"].tolist() == [2, 2, 1, 1, 2, 2, 1, 1]
    assert ds.split("xsub", "train").tolist() == [0, 1, 2, 3, 4, 5]
    assert ds.split("xsub", "test").tolist() == [6, 7]
    assert ds.split("xview", "test").tolist() == [1, 3, 5, 7]
    assert ds.info["name"] == "ntu60_hrnet"  # the report's name for it


def test_layout_option_is_taken_and_checked(hrnet, tmp_path):
    path, _ = hrnet
    ds = SkeletonDataset(convert(path, tmp_path / "given", "pyskl", layout="coco17"))
    assert ds.layout.name == "coco17" and ds.data.shape[1] == 3
    with pytest.raises(DataFormatError, match=r"has 17 joints; layout 'ntu25' has 25$"):
        convert(path, tmp_path / "wrong", "pyskl", layout="ntu25")
    with pytest.raises(ConfigError, match="unknown layout 'coco18'"):
        convert(path, tmp_path / "unknown", "pyskl", layout="coco18")
    assert not (tmp_path / "wrong").exists() and not (tmp_path / "unknown").exists()


def test_scores_inside_the_keypoint_and_bare_split_names(tmp_path):
    """Kinetics-style keypoints (C=3: x, y, score) as they are; GYM's train/val lists make
    the split ``default``, UCF101's train1/test1 ``split1``."""
    rng = np.random.default_rng(1)
    anns = [annotation(rng, f"v_{i}", i % 2, 8) for i in range(4)]
    for a in anns:
        a["keypoint"] = np.concatenate([a["keypoint"], a.pop("keypoint_score")[..., None]], -1)
    names = [a["frame_dir"] for a in anns]
    split = dict(train=names[:3], val=names[3:], train1=names[1:], test1=names[:1])
    ds = SkeletonDataset(convert(write_pickle(tmp_path / "gym.pkl", anns, split), tmp_path / "o"))
    assert ds.layout.name == "coco17" and ds.data.shape[1] == 3
    assert ds.sample(0)[2, 0, 4, 0] == np.float16(0.5 + 4 / 40)
    assert ds.split("default", "train").tolist() == [0, 1, 2]
    assert ds.split("default", "test").tolist() == [3]
    assert ds.split("split1", "train").tolist() == [1, 2, 3]
    assert ds.split("split1", "test").tolist() == [0]


def test_an_annotation_without_scores_is_named_or_skipped(tmp_path):
    rng = np.random.default_rng(2)
    anns = [annotation(rng, f"clip{i}", i % 2, 8) for i in range(4)]
    del anns[2]["keypoint_score"]
    anns[3]["keypoint_score"] = anns[3]["keypoint_score"][:, :5]
    path = write_pickle(tmp_path / "a.pkl", anns, dict(train=["clip0", "clip1", "clip2"]))
    with pytest.raises(DataFormatError, match=r"annotations\[2\] \(clip2\): 2 channels \(x, y\), "
                       r"annotations\[0\] 3 \(x, y, score\)"):  # fmt: skip
        convert(path, tmp_path / "strict")
    ds = SkeletonDataset(convert(path, tmp_path / "out", skip_bad=True))
    assert ds.meta["name"].tolist() == ["clip0", "clip1"]
    assert ds.split("default", "train").tolist() == [0, 1]
    reasons = (ds.root / "skipped.csv").read_text()
    assert "keypoint_score must be a real (M, T, V) = (1, 8, 17) array" in reasons


def test_a_converted_2d_set_trains_one_linear_unit(tmp_path):
    """Smoke profile, one linear unit on a tiny 2-D set: it finishes, the clips it trains on
    keep the score channel, and the probe beats chance on a motion this clear."""
    from asma_bench.config import build_config
    from asma_bench.protocols import UnitContext, run_protocol
    from asma_bench.training.data import prepare_data

    rng = np.random.default_rng(3)
    anns = [annotation(rng, f"S001C001P{p:03d}R{r:03d}A{c + 1:03d}", c, 12, bodies=1)
            for p in range(1, 5) for r in range(1, 6) for c in range(2)]  # fmt: skip
    names = [a["frame_dir"] for a in anns]
    split = dict(xsub_train=names[:30], xsub_val=names[30:])
    src = convert(write_pickle(tmp_path / "tiny.pkl", anns, split), tmp_path / "tiny")
    cfg = build_config("smoke", [f"data.source={src}"])
    ctx = UnitContext(data_root=tmp_path / "data", ckpt_dir=tmp_path / "ckpt")
    data = prepare_data(cfg.data, cfg.seed, ctx.data_root)
    assert data.layout.name == "coco17" and data.channels == 3
    # centred on the first frame's nose, the coordinates move; the score stays the detector's
    x = data.train.x[..., 0].numpy()  # (N, C, T, V), the one body
    assert not x[:, :2, 0, 0].any() and np.abs(x[:, :2]).max() > 100
    want = np.broadcast_to((0.5 + np.arange(17) / 40).astype(np.float16), x[:, 2].shape)
    np.testing.assert_allclose(x[:, 2], want, atol=1e-6)
    result = run_protocol("linear", cfg, ctx)
    assert len(result.predictions["test"].labels) == 10
    assert 50.0 < result.metrics["test_top1"] <= 100.0
