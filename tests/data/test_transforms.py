import math

import numpy as np
import pytest
import torch

from asma_bench.data.layouts import KINECT20, NTU25
from asma_bench.data.streams import STREAMS, bone_stream, joint_stream, motion_stream, to_stream
from asma_bench.data.transforms import (
    Augment,
    flip,
    gaussian_noise,
    resize_frames,
    rotate,
    shear,
    temporal_crop_resize,
)
from asma_bench.errors import ConfigError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(n: int = 4, t: int = 12, v: int = 25, m: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, t, v, m, generator=_gen(seed), dtype=torch.float64)


def _repeated(n: int = 16, t: int = 12) -> torch.Tensor:
    """n identical samples: any difference in the output comes from per-sample parameters."""
    return _batch(1, t).expand(n, -1, -1, -1, -1).clone()


def _bone_lengths(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(bone_stream(x, NTU25), dim=1)


# ----------------------------------------------------------------------------- streams
def test_bone_stream_is_child_minus_parent_with_zero_root():
    x = _batch()
    bone = bone_stream(x, NTU25)
    parent = dict(NTU25.edges)
    for v in range(25):
        expect = (
            x[:, :, :, v] - x[:, :, :, parent[v]]
            if v in parent
            else torch.zeros_like(x[:, :, :, v])
        )
        assert torch.equal(bone[:, :, :, v], expect)
    assert torch.equal(bone[:, :, :, NTU25.center], torch.zeros_like(bone[:, :, :, 0]))
    # (22, 23) hand tip's parent is the thumb (1-based), per the layout
    assert torch.equal(bone[:, :, :, 21], x[:, :, :, 21] - x[:, :, :, 22])
    np.testing.assert_array_equal(bone_stream(x[0].numpy(), NTU25), bone[0].numpy())


def test_bone_stream_on_kinect20():
    x = _batch(v=20, m=1)
    bone = bone_stream(x, "kinect20")
    assert torch.equal(bone[:, :, :, 3], x[:, :, :, 3] - x[:, :, :, 2])  # head − shoulder centre
    assert torch.equal(bone[:, :, :, KINECT20.center], x[:, :, :, 1] - x[:, :, :, 2])
    assert torch.equal(bone[:, :, :, 2], torch.zeros_like(bone[:, :, :, 2]))  # the root
    with pytest.raises(ConfigError, match="20 joints"):
        bone_stream(x, NTU25)


def test_motion_stream_is_frame_difference_with_zero_last_frame():
    x = _batch()
    motion = motion_stream(x)
    assert torch.equal(motion[:, :, :-1], x[:, :, 1:] - x[:, :, :-1])
    assert torch.equal(motion[:, :, -1], torch.zeros_like(motion[:, :, -1]))
    np.testing.assert_array_equal(motion_stream(x[1].numpy()), motion[1].numpy())


def test_to_stream_dispatch():
    x = _batch()
    assert STREAMS == ("joint", "bone", "motion")
    assert to_stream(x, "joint") is joint_stream(x) is x
    assert torch.equal(to_stream(x, "bone", "ntu25"), bone_stream(x, NTU25))
    assert torch.equal(to_stream(x, "motion"), motion_stream(x))
    with pytest.raises(ConfigError, match="unknown stream 'accel'"):
        to_stream(x, "accel", NTU25)
    with pytest.raises(ConfigError, match="needs a layout"):
        to_stream(x, "bone")


# ----------------------------------------------------------------------------- spatial
def test_each_sample_draws_its_own_parameters():
    x = _repeated()
    outputs = {
        "shear": shear(x, 0.5, generator=_gen()),
        "rotate": rotate(x, 30.0, generator=_gen()),
        "crop": temporal_crop_resize(_repeated(16, 80), mode="ratio", generator=_gen()),
        "augment": Augment(NTU25, flip=0.0)(x, generator=_gen()),
    }
    for name, y in outputs.items():
        distinct = {tuple(y[i].flatten().tolist()) for i in range(len(y))}
        # crops are discrete (length, start) pairs, so a few may coincide by chance
        assert len(distinct) >= (12 if name == "crop" else len(y)), name
    flipped = flip(x, NTU25, 0.5, generator=_gen())
    changed = (flipped != x).flatten(1).any(1)
    assert 0 < changed.sum() < len(x)


def test_same_generator_seed_reproduces_and_other_seed_differs():
    x = _batch(8)
    aug = Augment(NTU25, crop="ratio", noise=0.01)
    assert torch.equal(aug(x, generator=_gen(5)), aug(x, generator=_gen(5)))
    assert not torch.allclose(aug(x, generator=_gen(5)), aug(x, generator=_gen(6)))
    for fn in (
        lambda g: shear(x, generator=g),
        lambda g: rotate(x, generator=g),
        lambda g: flip(x, NTU25, generator=g),
        lambda g: gaussian_noise(x, generator=g),
        lambda g: temporal_crop_resize(x, generator=g),
    ):
        assert torch.equal(fn(_gen(1)), fn(_gen(1)))


def test_rotation_preserves_bone_lengths_and_uses_one_axis_within_the_limit():
    x = _batch(64)
    y = rotate(x, 30.0, generator=_gen())
    torch.testing.assert_close(_bone_lengths(y), _bone_lengths(x))
    same = (y - x).abs().flatten(2).amax(dim=2) < 1e-12  # (N, C): the rotation axis is kept
    assert (same.sum(dim=1) == 1).all()
    assert set(same.int().argmax(dim=1).tolist()) == {0, 1, 2}
    cos = torch.nn.functional.cosine_similarity(x, y, dim=1)
    angle = torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))
    assert angle.max() <= 30.0 + 1e-6 and angle.max() > 20.0
    positive = rotate(x, 30.0, symmetric=False, generator=_gen())
    torch.testing.assert_close(_bone_lengths(positive), _bone_lengths(x))


def test_rotation_matches_a_manual_matrix():
    x = _batch(1)
    y = rotate(x, 30.0, generator=_gen(3))
    axis = int(((y - x).abs().flatten(2).amax(dim=2) < 1e-12).int().argmax())
    a, b = [c for c in range(3) if c != axis]
    # the angle that maps the first point's (a, b) coordinates onto the output's
    p, q = x[0, [a, b], 0, 0, 0], y[0, [a, b], 0, 0, 0]
    theta = math.atan2(p[0] * q[1] - p[1] * q[0], p[0] * q[0] + p[1] * q[1])
    c, s = math.cos(theta), math.sin(theta)
    expect = x.clone()
    expect[:, a] = c * x[:, a] - s * x[:, b]
    expect[:, b] = s * x[:, a] + c * x[:, b]
    torch.testing.assert_close(y, expect)


def test_flip_swaps_sides_negates_x_and_twice_is_identity():
    x = _batch(3)
    y = flip(x, NTU25, p=1.0)
    left, right = NTU25.joint_names.index("left_hand"), NTU25.joint_names.index("right_hand")
    assert torch.equal(y[:, 0, :, left], -x[:, 0, :, right])
    assert torch.equal(y[:, 1:, :, left], x[:, 1:, :, right])
    assert torch.equal(y[:, :, :, NTU25.center, :][:, 1:], x[:, 1:, :, NTU25.center])
    assert torch.equal(flip(y, NTU25, p=1.0), x)
    assert torch.equal(flip(x, NTU25, p=0.0), x)
    many = flip(_repeated(2000, 2), NTU25, p=0.5, generator=_gen())
    rate = (many[:, 0, 0, left, 0] != _repeated(1, 2)[0, 0, 0, left, 0]).double().mean()
    assert 0.45 < rate < 0.55


def test_shear_zero_is_identity_and_matrix_is_bounded():
    x = _batch(8)
    assert torch.equal(shear(x, 0.0, generator=_gen()), x)
    y = shear(x, 0.5, generator=_gen())
    for n in range(len(x)):  # recover each sample's 3×3 matrix: y = R x
        pts_x, pts_y = x[n].reshape(3, -1).T, y[n].reshape(3, -1).T
        r = torch.linalg.lstsq(pts_x, pts_y).solution.T
        torch.testing.assert_close(torch.diagonal(r), torch.ones(3, dtype=r.dtype))
        off = r[~torch.eye(3, dtype=torch.bool)]
        assert off.abs().max() <= 0.5 and off.abs().max() > 0


def test_gaussian_noise_keeps_absent_joints_zero():
    x = _batch(32)
    x[:, :, :, :, 1] = 0  # second body absent
    y = gaussian_noise(x, 0.1, generator=_gen())
    assert torch.equal(y[..., 1], x[..., 1])
    assert abs(float((y - x)[..., 0].std()) - 0.1) < 0.005


# ----------------------------------------------------------------------------- temporal
def _linear(n: int, t: int, lengths: list[int]) -> torch.Tensor:
    """x[n, c, t] = offset + slope·t on each sample's valid frames, zero after."""
    g = _gen(9)
    offset = torch.randn(n, 3, 1, 25, 2, generator=g, dtype=torch.float64)
    slope = torch.randn(n, 3, 1, 25, 2, generator=g, dtype=torch.float64)
    frames = torch.arange(t, dtype=torch.float64)[None, None, :, None, None]
    x = offset + slope * frames
    for i, length in enumerate(lengths):
        x[i, :, length:] = 0
    return x


def test_ratio_crop_of_a_linear_sequence_is_linear_and_within_the_valid_part():
    lengths = [30, 17, 9, 40]
    x = _linear(4, 40, lengths)
    y = temporal_crop_resize(x, lengths, mode="ratio", frames=25, generator=_gen())
    assert y.shape == (4, 3, 25, 25, 2)
    second = y[:, :, 2:] - 2 * y[:, :, 1:-1] + y[:, :, :-2]
    torch.testing.assert_close(second, torch.zeros_like(second), atol=1e-9, rtol=0)
    for i, length in enumerate(lengths):  # endpoints come from the valid frames
        lo = x[i, :, :length].amin(dim=1)
        hi = x[i, :, :length].amax(dim=1)
        assert (y[i] >= lo[:, None] - 1e-9).all() and (y[i] <= hi[:, None] + 1e-9).all()
    spans = (y[:, 0, -1, 0, 0] - y[:, 0, 0, 0, 0]) / (x[:, 0, 1, 0, 0] - x[:, 0, 0, 0, 0])
    # crops cover 50–100 % of the valid frames
    for span, length in zip(spans.tolist(), lengths, strict=True):
        assert 0.5 * length - 2 <= span <= length - 1 + 1e-9


def _lineage_windows(sample: np.ndarray, length: int, ratio: int = 6) -> list[np.ndarray]:
    """Every output the lineage's crop can give for one sample's valid frames (numpy)."""
    ref, pad = sample[:, :length], length // ratio
    padded = np.concatenate([ref[:, :pad][:, ::-1], ref, ref[:, length - pad :][:, ::-1]], 1)
    return [padded[:, s : s + length] for s in range(2 * pad + 1)]


def test_mirror_crop_matches_the_lineage_padding():
    t = 12
    x = _linear(1, t, [t]).expand(400, -1, -1, -1, -1).clone()
    y = temporal_crop_resize(x, mode="mirror", padding_ratio=6, generator=_gen())
    windows = _lineage_windows(x[0].numpy(), t)
    assert len(windows) == 5  # pad = 12 // 6 = 2 frames at each end
    starts = []
    for i in range(len(y)):
        hits = [s for s, w in enumerate(windows) if np.array_equal(y[i].numpy(), w)]
        assert len(hits) == 1
        starts.append(hits[0])
    assert set(starts) == set(range(5))


def test_mirror_crop_respects_valid_lengths():
    lengths = [20, 12, 6]
    x = _linear(3, 20, lengths).repeat(10, 1, 1, 1, 1)
    y = temporal_crop_resize(x, lengths * 10, mode="mirror", generator=_gen())
    for i in range(len(x)):
        length = lengths[i % 3]
        assert torch.equal(y[i, :, length:], x[i, :, length:])  # padding stays
        windows = _lineage_windows(x[i].numpy(), length)
        assert any(np.array_equal(y[i, :, :length].numpy(), w) for w in windows)
    with pytest.raises(ConfigError, match="unknown crop mode"):
        temporal_crop_resize(x, mode="warp")


def test_resize_frames_matches_manual_interpolation():
    lengths = [9, 4, 15]
    x = _batch(3, 15)
    y = resize_frames(x, lengths, 7)
    for i, length in enumerate(lengths):
        src = x[i, :, :length].numpy()
        pos = np.linspace(0, length - 1, 7)
        expect = (
            np.stack(
                [
                    np.interp(pos, np.arange(length), src[:, :, v, m][c])
                    for c in range(3)
                    for v in range(25)
                    for m in range(2)
                ]  # fmt: skip
            )
            .reshape(3, 25, 2, 7)
            .transpose(0, 3, 1, 2)
        )
        np.testing.assert_allclose(y[i].numpy(), expect, atol=1e-12)
    single = resize_frames(x[1], 4, 7)
    torch.testing.assert_close(single, y[1])
    for frames in (7, 40):  # cell-centre sampling equals F.interpolate(align_corners=False)
        flat = x.permute(0, 1, 3, 4, 2).reshape(3, -1, 15)
        ref = torch.nn.functional.interpolate(flat, size=frames, mode="linear")
        ref = ref.reshape(3, 3, 25, 2, frames).permute(0, 1, 4, 2, 3)
        torch.testing.assert_close(resize_frames(x, 15, frames, align_corners=False), ref)
    window = resize_frames(x, [5, 5, 5], 5, starts=[0, 3, 10])
    torch.testing.assert_close(window[1], x[1, :, 3:8])
    torch.testing.assert_close(window[2], x[2, :, 10:15])


def test_augment_config_and_validation():
    aug = Augment.from_config("ntu25", {"shear": 0.0, "rotate": 0.0, "flip": 0.0, "crop": "none"})
    x = _batch()
    assert torch.equal(aug(x, generator=_gen()), x)
    assert "shear=0.5" in repr(Augment(NTU25)) and "rotate=30.0" in repr(Augment(NTU25))
    with pytest.raises(ConfigError, match="unknown option 'blur'"):
        Augment.from_config(NTU25, {"blur": 1})
    with pytest.raises(ConfigError, match="flip"):
        Augment(NTU25, flip=2.0)
    with pytest.raises(ConfigError, match="crop_ratio"):
        Augment(NTU25, crop="ratio", crop_ratio=(0.9, 0.1))
    with pytest.raises(ConfigError, match="expected a tensor"):
        shear(x[0])
