"""Motion strategies against straightforward computations of ASMa eqs. 3–4 and of the
PSTL / HA-CM scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asma_bench.errors import ConfigError
from asma_bench.strategies import create_masking, frame_motion
from asma_bench.strategies.motion import global_attention


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


def test_without_lengths_lmtm_would_take_the_padding() -> None:
    x = random_walk(1, 30)
    x[:, :, 20:] = 0
    assert create_masking("lmtm", k=5)(x)[0, 20:].any()
    assert not create_masking("lmtm", k=5)(x, lengths=[20])[0, 20:].any()


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
