import numpy as np
import pytest

from asma_bench.data.layouts import NTU25
from asma_bench.data.splits import NTU120_XSUB_TRAIN
from asma_bench.data.store import SkeletonDataset
from asma_bench.data.synthetic import (
    ACTIONS,
    DEFAULT_CLASSES,
    SYNTH_PRESETS,
    SynthConfig,
    generate,
)
from asma_bench.errors import ConfigError, DataFormatError

J = {name: i for i, name in enumerate(NTU25.joint_names)}
TINY = SYNTH_PRESETS["tiny"]
SMALL = {"subjects": 3, "replications": 1, "frames": (20, 48), "idle_frames": (2, 5), "fps": 15.0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SkeletonDataset:
    return SkeletonDataset(generate(tmp_path_factory.mktemp("synth") / "tiny", "tiny", seed=0))


def _valid_mask(ds: SkeletonDataset) -> np.ndarray:
    return np.arange(ds.data.shape[2])[None, :] < ds.lengths[:, None]  # (N, T)


def _step_sizes(ds: SkeletonDataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame joint displacement (N, T-1, V) of body 1 and where it is measurable
    (both frames valid and the joint tracked, i.e. not zeroed)."""
    x = np.asarray(ds.data[..., 0])  # (N, C, T, V)
    tracked = (x != 0).any(axis=1) & _valid_mask(ds)[:, :, None]
    ok = tracked[:, 1:] & tracked[:, :-1]
    return np.linalg.norm(np.diff(x, axis=2), axis=1), ok


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tiny, tmp_path):
    again = generate(tmp_path / "again", "tiny", seed=0)
    other = generate(tmp_path / "other", "tiny", seed=1)
    first = (tiny.root / "data.npy").read_bytes()
    assert (again / "data.npy").read_bytes() == first
    assert (again / "meta.csv").read_bytes() == (tiny.root / "meta.csv").read_bytes()
    assert (other / "data.npy").read_bytes() != first


def test_classes_labels_and_info(tiny):
    assert 12 <= len(DEFAULT_CLASSES) <= 16 and TINY.classes == DEFAULT_CLASSES
    assert tiny.num_classes == len(DEFAULT_CLASSES)
    assert tiny.info["class_names"] == list(DEFAULT_CLASSES)
    assert sorted(set(tiny.labels)) == list(range(len(DEFAULT_CLASSES)))
    assert tiny.info["source"] == "synthetic:tiny"
    assert tiny.info["synthetic"]["seed"] == 0
    assert tiny.info["synthetic"]["config"]["subjects"] == TINY.subjects
    assert len(tiny) == TINY.num_samples == len(DEFAULT_CLASSES) * 3 * 1 * 3
    assert tiny.layout is NTU25 and tiny.data.shape[1:] == (3, 48, 25, 2)


def test_metadata_and_bodies(tiny):
    meta = tiny.meta
    assert meta["name"].is_unique
    assert set(meta["subject"]) == {1, 2, 3} and set(meta["camera"]) == {1, 2, 3}
    assert set(meta["setup"]) == {1} and set(meta["replication"]) == {1}
    lo, hi = TINY.frames
    assert meta["length"].between(lo, hi).all()
    assert meta["length"].nunique() > 5  # variable length
    second = np.abs(np.asarray(tiny.data[..., 1])).sum(axis=(1, 2, 3)) > 0
    two_person = np.array([ACTIONS[DEFAULT_CLASSES[c]].persons == 2 for c in tiny.labels])
    assert np.array_equal(second, two_person)
    assert (meta["bodies"].to_numpy() == np.where(two_person, 2, 1)).all()
    # one performance, three cameras: same subject/class/length, different coordinates
    rows = meta[(meta.subject == 1) & (meta.label == 0)]
    assert len(rows) == 3 and rows["length"].nunique() == 1
    a, b = (tiny.sample(i) for i in rows.index[:2])
    assert not np.allclose(a, b)


def test_splits_are_disjoint_and_follow_the_rules(tiny):
    n = len(tiny)
    for name in ("xsub", "xview"):
        train, test = set(tiny.split(name, "train")), set(tiny.split(name, "test"))
        assert train and test and not train & test and train | test == set(range(n))
    subject, camera = tiny.meta["subject"].to_numpy(), tiny.meta["camera"].to_numpy()
    xsub_train = tiny.split("xsub", "train")
    assert set(subject[xsub_train]) == {1, 2} == set(NTU120_XSUB_TRAIN) & {1, 2, 3}
    assert set(subject[tiny.split("xsub", "test")]) == {3}
    assert set(camera[tiny.split("xview", "train")]) == {2, 3}
    assert set(camera[tiny.split("xview", "test")]) == {1}


def test_end_effectors_move_more_than_the_spine(tiny):
    step, ok = _step_sizes(tiny)
    mean = (step * ok).sum(axis=(0, 1)) / ok.sum(axis=(0, 1))
    leaves = np.flatnonzero(NTU25.degrees == 1)
    spine = np.array([1, 2, 21]) - 1
    assert set(leaves + 1) == {4, 16, 20, 22, 24}
    assert mean[leaves].mean() > 1.5 * mean[spine].mean()


def test_kinect_camera_space(tiny):
    single = np.array([ACTIONS[DEFAULT_CLASSES[c]].persons == 1 for c in tiny.labels])
    x = np.asarray(tiny.data[single, :, 0, :, 0])  # first frame, body 1: (N, C, V)
    tracked = (x != 0).any(axis=1)

    def mean(c: int, joint: str) -> float:
        v = J[joint]
        return float(x[tracked[:, v], c, v].mean())

    assert 2.0 < mean(2, "spine_base") < 4.5  # depth in metres
    assert mean(1, "head") > mean(1, "spine_base") > mean(1, "left_foot")  # y up
    assert 1.2 < mean(1, "head") - mean(1, "left_foot") < 2.0  # a standing person
    # camera 2, replication 1 films the performer from the front: their right is +x
    front = (tiny.meta["camera"].to_numpy()[single] == 2) & tracked[:, J["left_shoulder"]]
    front &= tracked[:, J["right_shoulder"]]
    dx = x[front, 0, J["right_shoulder"]] - x[front, 0, J["left_shoulder"]]
    assert (dx > 0.15).mean() > 0.9


def _hand_travel(ds: SkeletonDataset, label: int, joint: str) -> float:
    step, ok = _step_sizes(ds)
    rows = ds.labels == label
    v = J[joint]
    return float((step[rows, :, v] * ok[rows, :, v]).sum())


def test_handedness_mirrors_side_free_actions_only(tmp_path):
    common = dict(SMALL, classes=("wave_right_hand", "reach_forward"), fidget=0.0, noise_std_m=0.0)
    right = SkeletonDataset(generate(tmp_path / "r", TINY.replace(**common, left_handed_prob=0)))
    left = SkeletonDataset(generate(tmp_path / "l", TINY.replace(**common, left_handed_prob=1)))
    for ds in (right, left):  # the waving side is part of the label
        assert _hand_travel(ds, 0, "right_hand") > 3 * _hand_travel(ds, 0, "left_hand")
    assert _hand_travel(right, 1, "right_hand") > 3 * _hand_travel(right, 1, "left_hand")
    assert _hand_travel(left, 1, "left_hand") > 3 * _hand_travel(left, 1, "right_hand")


def test_noisy_preset_is_noisier_and_has_other_subjects(tiny, tmp_path):
    noisy = SkeletonDataset(
        generate(tmp_path / "n", SYNTH_PRESETS["noisy"].replace(**{**SMALL, "subjects": 6}))
    )
    assert noisy.info["source"] == "synthetic:noisy"
    assert not set(noisy.meta["subject"]) & set(tiny.meta["subject"])

    def zero_fraction(ds: SkeletonDataset) -> float:
        x = np.asarray(ds.data[..., 0])
        valid = _valid_mask(ds)
        return float(((x == 0).all(axis=1) & valid[:, :, None]).sum() / (valid.sum() * 25))

    def roughness(ds: SkeletonDataset) -> float:  # median |second difference| of tracked joints
        x = np.asarray(ds.data[..., 0])
        _, ok = _step_sizes(ds)
        acc = np.linalg.norm(x[:, :, 2:] - 2 * x[:, :, 1:-1] + x[:, :, :-2], axis=1)
        return float(np.median(acc[ok[:, 1:] & ok[:, :-1]]))

    assert zero_fraction(noisy) > 5 * zero_fraction(tiny)
    assert roughness(noisy) > 1.5 * roughness(tiny)


def test_config_errors_name_the_field(tmp_path):
    cases = {
        "subjects": dict(subjects=0),
        "classes": dict(classes=("wave_right_hand", "moonwalk")),
        "frames": dict(frames=(50, 40)),
        "noise_std_m": dict(noise_std_m=-1.0),
        "replications": dict(replications=3),
        "xsub_train_subjects": dict(xsub_train_subjects=(1, 2, 3), subjects=3),
        "colour": dict(colour="red"),
    }
    for field, bad in cases.items():
        with pytest.raises(ConfigError, match=field) as info:
            SynthConfig(**bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="unknown synthetic preset 'huge'"):
        generate(tmp_path / "x", "huge")


def test_existing_output_needs_overwrite(tiny, tmp_path):
    out = generate(tmp_path / "t", "tiny", seed=3)
    with pytest.raises(DataFormatError, match="already exists"):
        generate(out, "tiny", seed=3)
    generate(out, "tiny", seed=4, overwrite=True)
    assert SkeletonDataset(out).info["synthetic"]["seed"] == 4


def test_default_preset_size():
    default = SYNTH_PRESETS["default"]
    assert 2000 <= default.num_samples <= 4000
    assert default.frames == (40, 100) and default.camera_azimuths_deg == (0.0, -45.0, 45.0)
