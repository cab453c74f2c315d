"""Skeleton2vec tubes and MAMP patches: structure, counts and motion-aware laws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from asma_bench.strategies import create_masking
from asma_bench.strategies.base import num_masked
from asma_bench.strategies.tube import patch_motion


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_walk(n: int, t: int, v: int = 25, m: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, t, v, m, generator=seeded(seed)).cumsum(dim=2)


def joint_speed_batch(speed: np.ndarray, t: int, draws: int) -> torch.Tensor:
    """Every joint v moves by speed[v] per frame in every channel: its eq. 3 motion is
    speed[v] in every frame."""
    ramp = torch.arange(t, dtype=torch.float32)[:, None] * torch.tensor(speed, dtype=torch.float32)
    x = ramp[None, None, :, :, None].expand(1, 3, t, len(speed), 1)
    return x.expand(draws, -1, -1, -1, -1)


def test_default_ratio_and_counts() -> None:
    assert num_masked(25, 0.9) == 23 and num_masked(1250, 0.9) == 1125
    assert num_masked(10, 0.9) == 9  # 10 * (1 - 0.9) is 0.9999999999999998 in binary
    assert num_masked(30, 0.9) == 27
    tube = create_masking("tube")
    assert tube.per_tube == 23 and tube.tube_frames(50) == 8 and tube.tube_frames(90) == 15


@pytest.mark.parametrize("alpha", [1, 5, 7, 20])
def test_joints_stay_masked_within_a_tube(alpha: int) -> None:
    strategy = create_masking("tube", alpha=alpha)
    mask = strategy(random_walk(4, 20), generator=seeded(0))
    assert (mask.sum(dim=2) == 23).all()  # 23 of 25 joints in every frame
    for start in range(0, 20, alpha):
        block = mask[:, start : start + alpha]
        assert torch.equal(block, block[:, :1].expand_as(block))
    tubes = math.ceil(20 / alpha)
    if tubes > 1:  # successive tubes draw again
        starts = mask[:, ::alpha]
        assert not torch.equal(starts, starts[:, :1].expand_as(starts))


def test_alpha_zero_is_random_cell_masking() -> None:
    strategy = create_masking("tube", alpha=0)
    mask = strategy(random_walk(4, 20), generator=seeded(0))
    assert (mask.sum(dim=(1, 2)) == num_masked(500, 0.9)).all()
    assert strategy.budget(20) == num_masked(500, 0.9)
    assert len(set(mask.sum(dim=2).flatten().tolist())) > 1  # no fixed count per frame


def test_fractional_alpha_and_a_shorter_last_tube() -> None:
    strategy = create_masking("tube")  # alpha = 1/6 of T
    mask = strategy(random_walk(3, 50), generator=seeded(1))
    for start in range(0, 50, 8):  # tubes of 8 frames, the last one of 2
        block = mask[:, start : start + 8]
        assert torch.equal(block, block[:, :1].expand_as(block))


def test_tube_law_is_softmax_of_normalised_joint_motion() -> None:
    draws, temperature = 20_000, 0.5
    speed = np.linspace(0.0, 2.0, 25)
    strategy = create_masking("tube", ratio=0.04, alpha=6, temperature=temperature)
    assert strategy.per_tube == 1
    mask = strategy(joint_speed_batch(speed, 6, draws), generator=seeded(0))
    freq = mask[:, 0].double().mean(dim=0).numpy()
    p = np.exp(speed / (speed.max() * temperature))
    p /= p.sum()
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / draws) + 1e-9)


def test_tube_additive_law_matches_a_direct_simulation() -> None:
    draws, weight = 20_000, 0.5
    speed = np.linspace(0.0, 2.0, 25)
    strategy = create_masking("tube", ratio=0.04, alpha=6, law="additive", motion_weight=weight)
    mask = strategy(joint_speed_batch(speed, 6, draws), generator=seeded(0))
    freq = mask[:, 0].double().mean(dim=0).numpy()
    rng = np.random.default_rng(0)
    keys = rng.random((200_000, 25)) + weight * speed / speed.max()
    p = np.bincount(keys.argmax(axis=1), minlength=25) / len(keys)
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / draws) + 0.003)
    assert freq[-1] > freq[0]


def loop_patch_motion(x: np.ndarray, u: int) -> np.ndarray:
    """MAMP's patch motion for one sample (C, T, V, M), patch by patch."""
    _, t, v, _ = x.shape
    p = math.ceil(t / u)
    out = np.zeros((p, v))
    for i in range(p):
        frames = range(i * u, min((i + 1) * u, t))
        for j in range(v):
            d = [np.abs(x[:, f, j] - x[:, f - u, j]).mean() if f >= u else 0.0 for f in frames]
            out[i, j] = np.mean(d)
    out[0] = out[1]
    return out


@pytest.mark.parametrize("t", [16, 18])
def test_mamp_patch_motion(t: int) -> None:
    x = random_walk(2, t, seed=4)
    got = patch_motion(x, 4).numpy()
    for i in range(2):
        assert np.allclose(got[i], loop_patch_motion(x[i].numpy(), 4), atol=1e-5)


def test_mamp_masks_whole_patches() -> None:
    strategy = create_masking("mamp")
    mask = strategy(random_walk(4, 48), generator=seeded(0))
    patches = mask.view(4, 12, 4, 25)
    assert torch.equal(patches, patches[:, :, :1].expand_as(patches))
    assert (patches[:, :, 0].sum(dim=(1, 2)) == num_masked(300, 0.9)).all()
    assert strategy.budget(48) == num_masked(300, 0.9) * 4


def test_mamp_law_is_softmax_of_normalised_patch_motion() -> None:
    draws, temperature = 20_000, 0.75
    x = random_walk(1, 8, seed=9)
    motion = patch_motion(x, 4)[0].flatten().double().numpy()  # 2 patches x 25 joints
    strategy = create_masking("mamp", ratio=0.02, temperature=temperature)  # 1 patch of 50
    mask = strategy(x.expand(draws, -1, -1, -1, -1), generator=seeded(0))
    assert (mask.sum(dim=(1, 2)) == 4).all()
    freq = mask[:, ::4].reshape(draws, 50).double().mean(dim=0).numpy()
    p = np.exp(motion / (motion.max() * temperature))
    p /= p.sum()
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / draws) + 1e-9)
