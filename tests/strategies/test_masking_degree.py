"""Degree and hierarchy laws: frequencies over many draws match the exact probabilities of
drawing n joints sequentially without replacement."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from asma_bench.data.layouts import NTU25, SkeletonLayout
from asma_bench.errors import ConfigError
from asma_bench.strategies import create_masking
from asma_bench.strategies.degree import hdsm_probs, ldsm_probs

# A star: one hub of degree 5 and five leaves of degree 1 — sharp contrasts between laws.
STAR = SkeletonLayout(
    name="star6",
    joint_names=("hub", "a", "b", "c", "d", "e"),
    edges=((1, 0), (2, 0), (3, 0), (4, 0), (5, 0)),
    center=0,
)
PAPER_NTU_DEGREES = [3, 2, 2, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 1, 4, 1, 2, 1, 2]


def exact_inclusion(p: np.ndarray, n: int) -> np.ndarray:
    """P(joint v among n draws without replacement, each ∝ p over the joints left),
    by enumerating every ordered sequence of draws."""
    incl = np.zeros(len(p))
    for seq in itertools.permutations(range(len(p)), n):
        prob, left = 1.0, 1.0
        for j in seq:
            prob *= p[j] / left
            left -= p[j]
        incl[list(seq)] += prob
    return incl


def frequencies(name: str, layout, draws: int, seed: int = 0, **params) -> np.ndarray:
    strategy = create_masking(name, layout=layout, **params)
    v = strategy.layout.num_joints
    x = torch.zeros(draws, 3, 1, v, 1)
    mask = strategy(x, generator=torch.Generator().manual_seed(seed))
    return mask[:, 0, :].double().mean(dim=0).numpy()


def assert_close_to(freq: np.ndarray, prob: np.ndarray, draws: int) -> None:
    # 5 standard errors of a Bernoulli frequency: fails by chance with p < 1e-5 per joint.
    tol = 5 * np.sqrt(prob * (1 - prob) / draws) + 1e-9
    assert np.all(np.abs(freq - prob) <= tol), np.abs(freq - prob) / tol


def test_ntu_degrees_and_eq1() -> None:
    assert NTU25.degrees.tolist() == PAPER_NTU_DEGREES
    p = hdsm_probs(torch.from_numpy(NTU25.degrees)).numpy()
    assert np.allclose(p, np.array(PAPER_NTU_DEGREES) / 48)


def test_eq2_and_inverse_degree_laws() -> None:
    d = torch.tensor([5.0, 1, 1, 1, 1, 1])
    assert np.allclose(ldsm_probs(d, "eq2").numpy(), np.array([0.5, 0.9, 0.9, 0.9, 0.9, 0.9]) / 5)
    assert np.allclose(
        ldsm_probs(d, "inverse_degree").numpy(), np.array([0.2, 1, 1, 1, 1, 1]) / 5.2
    )


def test_hdsm_frequencies_follow_sequential_sampling_on_ntu() -> None:
    draws = 40_000
    p = np.array(PAPER_NTU_DEGREES) / 48
    exact = exact_inclusion(p, 3)
    freq = frequencies("hdsm", "ntu25", draws, n=3)
    assert_close_to(freq, exact, draws)
    # Hubs more often than extremities: spine-shoulder (21) beats every degree-1 joint.
    degree_one = [i for i, d in enumerate(PAPER_NTU_DEGREES) if d == 1]
    assert freq[20] > 1.5 * freq[degree_one].max()


@pytest.mark.parametrize(
    ("name", "params", "weights"),
    [
        ("hdsm", {}, [5, 1, 1, 1, 1, 1]),
        ("ldsm", {}, [0.5, 0.9, 0.9, 0.9, 0.9, 0.9]),
        ("ldsm", {"law": "inverse_degree"}, [0.2, 1, 1, 1, 1, 1]),
        ("csm", {}, [5, 1, 1, 1, 1, 1]),
        ("random_joint", {}, [1, 1, 1, 1, 1, 1]),
    ],
)
def test_frequencies_match_the_exact_law_on_a_star(name: str, params: dict, weights) -> None:
    draws = 40_000
    p = np.array(weights, dtype=float) / sum(weights)
    exact = exact_inclusion(p, 2)
    assert_close_to(frequencies(name, STAR, draws, n=2, **params), exact, draws)


def test_ldsm_masks_extremities_more_and_the_laws_differ() -> None:
    draws = 40_000
    eq2 = frequencies("ldsm", STAR, draws, n=2)
    inverse = frequencies("ldsm", STAR, draws, n=2, law="inverse_degree")
    hdsm = frequencies("hdsm", STAR, draws, n=2)
    assert hdsm[0] > hdsm[1:].max()  # HDSM: the hub most
    assert eq2[0] < eq2[1:].min() and inverse[0] < eq2[0]  # LDSM: the hub least, sharper law
    # The two LDSM laws are told apart by these frequencies (guards the test above).
    assert abs(eq2[0] - inverse[0]) > 0.1


def test_ldsm_on_ntu_is_nearly_uniform_but_still_favours_extremities() -> None:
    draws = 40_000
    freq = frequencies("ldsm", "ntu25", draws, n=3, seed=4)
    w = 1 - np.array(PAPER_NTU_DEGREES) / 48
    assert_close_to(freq, exact_inclusion(w / w.sum(), 3), draws)
    degree_one = [i for i, d in enumerate(PAPER_NTU_DEGREES) if d == 1]
    assert freq[degree_one].mean() > freq[20]


def test_csm_replacement_reproduces_pstls_pool() -> None:
    draws, n = 40_000, 9
    strategy = create_masking("csm", n=n, replacement=True)
    mask = strategy(torch.zeros(draws, 3, 1, 25, 1), generator=torch.Generator().manual_seed(1))
    joints = mask[:, 0, :]
    counts = joints.sum(dim=1)
    assert (counts <= n).all() and (counts < n).any()  # a joint can be drawn twice
    # n tokens from a pool of 48 where joint v owns d_v tokens: P(v missed) is hypergeometric.
    d = np.array(PAPER_NTU_DEGREES)
    exact = 1 - np.array([math.comb(48 - dv, n) / math.comb(48, n) for dv in d])
    assert_close_to(joints.double().mean(dim=0).numpy(), exact, draws)


def test_hierarchy_law_increases_with_depth() -> None:
    draws = 40_000
    depth = NTU25.depth.astype(float)
    for temperature in (0.5, 2.0):
        p = np.exp(depth / (depth.max() * temperature))
        p /= p.sum()
        freq = frequencies("hierarchy", "ntu25", draws, n=1, temperature=temperature)
        assert_close_to(freq, p, draws)
    deepest, centre = int(np.argmax(depth)), NTU25.center
    assert freq[deepest] > freq[centre]


def test_hierarchy_cross_grouping_masks_odd_frames_only() -> None:
    strategy = create_masking("hierarchy", cross_grouping=True)
    assert strategy.kind == "spatiotemporal"
    mask = strategy(torch.zeros(8, 3, 11, 25, 1), generator=torch.Generator().manual_seed(0))
    assert not mask[:, 0::2].any()
    odd = mask[:, 1::2]
    assert torch.equal(odd, odd[:, :1].expand_as(odd))  # the same joints on every odd frame
    assert (odd[:, 0].sum(dim=1) == 9).all()
    assert int(mask.sum(dim=(1, 2)).max()) == strategy.budget(11) == 9 * 5


def test_joint_law_needs_enough_joints() -> None:
    isolated = SkeletonLayout(
        name="isolated", joint_names=("a", "b", "c", "d"), edges=((1, 0),), center=0
    )
    with pytest.raises(ConfigError, match="n=3"):
        create_masking("hdsm", layout=isolated, n=3)  # only 2 joints have a degree
    with pytest.raises(ConfigError, match="inverse_degree"):
        create_masking("ldsm", layout=isolated, n=1, law="inverse_degree")
