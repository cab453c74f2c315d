"""Motion strategies against straightforward computations of ASMa eqs. 3–4 and of the
PSTL / HA-CM scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asma_bench.errors import ConfigError
from asma_bench.strategies import create_masking, frame_motion
from asma_bench.strategies.motion import global_attention, repeated_poses


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def profile_batch(steps: np.ndarray, v: int = 25, seed: int = 0) -> torch.Tensor:
    """x (N, 3, T, V, 1) with |x_{t+1} − x_t| = steps[:, t] in every channel and joint, so
    a_t (eq. 4) is exactly steps[:, t] for t < T − 1."""
    rng = np.random.default_rng(seed)
    n, t1 = steps.shape
    cum = np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1)  # (N, T)
    base = rng.normal(size=(n, 3, 1, v, 1))
    sign = rng.choice([-1.0, 1.0], size=(n, 3, 1, v, 1))
    return torch.tensor(base + sign * cum[:, None, :, None, None], dtype=torch.float32)


def distinct_steps(n: int, t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(t - 1) + 1.0 for _ in range(n)]) / 10


def masked_frames(mask: torch.Tensor) -> list[set[int]]:
    return [set(torch.nonzero(row[:, 0]).flatten().tolist()) for row in mask]


def loop_frame_motion(x: np.ndarray, length: int, last: str) -> np.ndarray:
    """Eqs. 3–4 for one sample (C, T, V, M), frame by frame."""
    a = np.zeros(x.shape[1])
    for t in range(length):
        if t + 1 < length:
            a[t] = np.abs(x[:, t + 1] - x[:, t]).mean()
        elif last == "backward" and t >= 1:
            a[t] = np.abs(x[:, t] - x[:, t - 1]).mean()
    return a


def random_walk(n: int, t: int, v: int = 25, m: int = 2, seed: int = 0) -> torch.Tensor:
    g = seeded(seed)
    return torch.randn(n, 3, t, v, m, generator=g).mul(0.3).cumsum(dim=2)


@pytest.mark.parametrize("last", ["backward", "zero", "exclude"])
def test_frame_motion_is_eqs_3_and_4(last: str) -> None:
    x = random_walk(3, 9, m=2)
    lengths = torch.tensor([9, 6, 1])
    got = frame_motion(x, lengths, last).numpy()
    for i, length in enumerate(lengths.tolist()):
        expected = loop_frame_motion(x[i].numpy(), length, last)
        assert np.allclose(got[i], expected, atol=1e-6)


def test_hmtm_masks_exactly_the_k_highest_motion_frames() -> None:
    steps = distinct_steps(8, 20)
    mask = create_masking("hmtm", k=6, last="exclude")(profile_batch(steps))
    for frames, s in zip(masked_frames(mask), steps, strict=True):
        assert frames == set(np.argsort(s)[-6:].tolist())


def test_lmtm_masks_exactly_the_k_lowest_motion_frames() -> None:
    steps = distinct_steps(8, 20, seed=1)
    mask = create_masking("lmtm", k=6, last="exclude")(profile_batch(steps))
    for frames, s in zip(masked_frames(mask), steps, strict=True):
        assert frames == set(np.argsort(s)[:6].tolist())


def test_last_frame_uses_the_backward_difference() -> None:
    steps = np.array([[0.1, 0.2, 0.3, 0.9]])  # the last step is the largest
    x = profile_batch(steps)
    assert np.allclose(frame_motion(x)[0].numpy(), [0.1, 0.2, 0.3, 0.9, 0.9], atol=1e-5)
    assert masked_frames(create_masking("hmtm", k=2)(x)) == [{3, 4}]
    assert masked_frames(create_masking("hmtm", k=1, last="exclude")(x)) == [{3}]
    assert masked_frames(create_masking("lmtm", k=1, last="zero")(x)) == [{4}]


@pytest.mark.parametrize("name", ["lmtm", "hmtm", "random_frame", "matm", "attention"])
def test_padded_frames_are_never_selected(name: str) -> None:
    strategy = create_masking(name, k=5)
    x = random_walk(4, 30, seed=3)
    lengths = torch.tensor([30, 20, 12, 8])
    padded = x * (torch.arange(30)[None, :] < lengths[:, None])[:, None, :, None, None]
    mask = strategy(padded, generator=seeded(0), lengths=lengths)
    for i, length in enumerate(lengths.tolist()):
        assert not mask[i, length:].any()
        assert int(mask[i, :, 0].sum()) == 5
        if not strategy.stochastic:  # same frames as on the unpadded sequence
            alone = strategy(x[i : i + 1, :, :length])
            assert torch.equal(mask[i, :length], alone[0])


def test_without_lengths_only_skipping_copies_keeps_lmtm_off_the_padding() -> None:
    x = random_walk(1, 30)
    x[:, :, 20:] = 0  # zero padding of a 20-frame clip, lengths not given
    assert create_masking("lmtm", k=5, copies="keep")(x)[0, 20:].any()
    # frames 21-29 repeat frame 20; frame 20 differs from frame 19: a large motion
    assert not create_masking("lmtm", k=5)(x)[0, 20:].any()
    assert not create_masking("lmtm", k=5)(x, lengths=[20])[0, 20:].any()


def mirror_padded_view(seed: int = 0) -> torch.Tensor:
    """A 12-frame crop of a clip as the lineage's mirror padding makes it: real frames
    0..8 preceded by the mirrored frames 2, 1, 0 (frame 0 doubled: ``symmetric``)."""
    clip = random_walk(1, 9, seed=seed)
    order = [2, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    return clip[:, :, order]


def test_repeated_poses_finds_the_repeated_poses_of_a_mirror_padded_crop() -> None:
    x = mirror_padded_view()
    assert torch.nonzero(repeated_poses(x)[0]).flatten().tolist() == [0, 1, 2, 3, 4, 5]
    short = repeated_poses(x, lengths=torch.tensor([4]))[0]  # frames 4.. are padding
    assert torch.nonzero(short).flatten().tolist() == [2, 3]


@pytest.mark.parametrize("name", ["lmtm", "hmtm", "matm"])
def test_motion_masks_never_take_a_repeated_pose(name: str) -> None:
    x = mirror_padded_view().expand(500, -1, -1, -1, -1)
    strategy = create_masking(name, k=4)
    mask = strategy(x, generator=seeded(1))[:, :, 0]
    assert not mask[:, :6].any()  # frames 2, 1, 0 and their copies
    assert bool((mask.sum(dim=1) == 4).all())
    if name == "lmtm":  # the old rule spends a frame on the doubled edge (a_t = 0 exactly)
        old = create_masking(name, k=4, copies="keep")(x[:1])[0, :, 0]
        assert bool(old[2])


def test_skipping_copies_differences_against_the_next_distinct_pose() -> None:
    steps = np.array([[0.1, 0.0, 0.2, 0.0, 0.0, 0.3]])  # frames 2 and 4, 5 repeat
    x = profile_batch(steps)
    a = frame_motion(x, copies="skip")[0].numpy()
    # 0→1: .1; 1→(2 is a copy)→3: .2; 3→(4, 5 copies)→6: .3; last: backward to 5's pose
    assert np.allclose(a[[0, 1, 3, 6]], [0.1, 0.2, 0.3, 0.3], atol=1e-5)
    assert np.allclose(frame_motion(x, copies="keep")[0].numpy()[[1, 3, 4]], 0.0)


def test_central_difference_gives_the_last_frame_a_score_of_its_own() -> None:
    steps = np.array([[0.1, 0.2, 0.3, 0.9]])
    x = profile_batch(steps)
    a = frame_motion(x, difference="central")[0].numpy()
    assert np.allclose(a, [0.1, 0.15, 0.25, 0.6, 0.9], atol=1e-5)
    assert masked_frames(create_masking("hmtm", k=1, difference="central")(x)) == [{4}]
    assert masked_frames(create_masking("lmtm", k=1, difference="central")(x)) == [{0}]


def test_motion_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="copies"):
        create_masking("hmtm", copies="drop")
    with pytest.raises(ConfigError, match="difference"):
        create_masking("lmtm", difference="backward")


def test_samples_shorter_than_k_keep_a_visible_frame() -> None:
    x = random_walk(2, 30)
    lengths = torch.tensor([30, 5])
    mask = create_masking("lmtm", k=10)(x, lengths=lengths)
    assert mask[:, :, 0].sum(dim=1).tolist() == [10, 4]
    assert not mask[1, 5:].any()
    with pytest.raises(ConfigError, match="k=10"):
        create_masking("lmtm", k=10, short="error")(x, lengths=lengths)


def test_matm_draws_frames_with_softmax_of_normalised_motion() -> None:
    draws, temperature = 20_000, 0.5
    steps = np.array([[0.05, 0.4, 0.1, 0.3, 0.2]])
    x = profile_batch(steps, v=20).expand(draws, -1, -1, -1, -1)
    strategy = create_masking("matm", layout="kinect20", k=1, temperature=temperature)
    freq = strategy(x, generator=seeded(0))[:, :, 0].double().mean(dim=0).numpy()
    a = np.append(steps[0], steps[0, -1])  # backward difference for the last frame
    p = np.exp(a / (a.max() * temperature))
    p /= p.sum()
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / draws))


def test_matm_deterministic_is_top_k_and_random_extra_adds_frames() -> None:
    steps = distinct_steps(6, 16, seed=2)
    x = profile_batch(steps)
    top = create_masking("matm", k=4, deterministic=True)(x)
    assert torch.equal(top, create_masking("hmtm", k=4)(x))
    extra = create_masking("matm", k=4, deterministic=True, random_extra=3)
    assert extra.budget(16) == 7
    mask = extra(x.repeat(4, 1, 1, 1, 1), generator=seeded(0))
    assert (mask[:, :, 0].sum(dim=1) == 7).all()
    assert (mask & top.repeat(4, 1, 1) == top.repeat(4, 1, 1)).all()  # top-k always dropped
    assert len({tuple(r.flatten().tolist()) for r in mask[::6]}) > 1  # extras vary per draw
    with pytest.raises(ConfigError, match="random_extra"):
        create_masking("matm", k=10, random_extra=6)(x)


def test_matm_squared_ranks_by_mean_squared_difference() -> None:
    x = random_walk(5, 12, seed=7)
    x[:, 0] *= 5  # channels of different scale make |Δ| and Δ² rank differently
    mask = create_masking("matm", k=3, deterministic=True, squared=True, last="exclude")(x)
    for i, frames in enumerate(masked_frames(mask)):
        sq = ((x[i, :, 1:] - x[i, :, :-1]) ** 2).mean(dim=(0, 2, 3)).numpy()
        assert frames == set(np.argsort(sq)[-3:].tolist())


def loop_attention(x: np.ndarray, length: int, temperature: float) -> np.ndarray:
    """Attention received per frame, joint by joint and query by query."""
    c, t, v, m = x.shape
    received = np.zeros(t)
    for j in range(v):
        f = x[:, :length, j, :].transpose(1, 0, 2).reshape(length, c * m)
        f = f - f.mean(axis=0)
        for q in range(length):
            s = np.array([f[q] @ f[u] for u in range(length)]) / (math.sqrt(c * m) * temperature)
            w = np.exp(s - s.max())
            received[:length] += w / w.sum()
    return received


def test_attention_scores_and_selection() -> None:
    x = random_walk(3, 10, v=25, m=2, seed=5)
    lengths = torch.tensor([10, 10, 7])
    valid = torch.arange(10)[None, :] < lengths[:, None]
    got = global_attention(x, valid, temperature=2.0).numpy()
    for i, length in enumerate(lengths.tolist()):
        expected = loop_attention(x[i].double().numpy(), length, 2.0)
        assert np.allclose(got[i], expected, rtol=1e-4, atol=1e-4)
    top = create_masking("attention", k=3, temperature=2.0)(x[:2])
    bottom = create_masking("attention", k=3, temperature=2.0, select="bottom")(x[:2])
    for i in range(2):
        order = np.argsort(got[i])
        assert masked_frames(top)[i] == set(order[-3:].tolist())
        assert masked_frames(bottom)[i] == set(order[:3].tolist())


def test_attention_cross_grouping_masks_even_frames() -> None:
    x = random_walk(4, 11, seed=6)
    strategy = create_masking("attention", k=4, cross_grouping=True)
    mask = strategy(x)
    assert (mask[:, :, 0].sum(dim=1) == 4).all()
    assert not mask[:, 1::2].any()
    scores = global_attention(x, torch.ones(4, 11, dtype=torch.bool)).numpy()
    for i, frames in enumerate(masked_frames(mask)):
        even = np.arange(0, 11, 2)
        assert frames == set(even[np.argsort(scores[i, even])[-4:]].tolist())
    with pytest.raises(ConfigError, match="k=6"):
        create_masking("attention", k=6, cross_grouping=True)(x)  # 6 even frames of 11
