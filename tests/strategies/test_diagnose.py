"""Masking diagnostics measure what each strategy masks: degree laws, motion ranks,
padding, overlap — checked against constructions with known answers."""

from __future__ import annotations

import torch

from asma_bench.data.layouts import get_layout
from asma_bench.strategies.diagnose import (
    cell_copies,
    diagnose,
    motion_percentile,
    repeated_frames,
    strategies_for,
    to_markdown,
    wasted_cells,
)


def _clips(n: int = 64, t: int = 20, seed: int = 0) -> torch.Tensor:
    """Random walks (N, 3, T, 25, 2): every frame moves, by a clip-specific amount."""
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(n, 3, t, 25, 2, generator=g) * torch.rand(n, 1, t, 1, 1, generator=g)
    return steps.cumsum(dim=2)


def test_masked_cells_that_hide_nothing_are_found():
    x = _clips(2, 8)
    x[0, :, 3] = x[0, :, 2]  # a repeated frame (mirror padding repeats the edge frame)
    x[1, :, 6:] = 0.0  # two frames of zero padding
    assert repeated_frames(x)[0].tolist() == [False, False, True, True] + [False] * 4
    assert repeated_frames(x)[1].tolist() == [False] * 6 + [True, True]
    mask = torch.zeros(2, 8, 25, dtype=torch.bool)
    mask[0, 2] = True  # frame 2 masked while its copy (frame 3) stays visible: wasted
    mask[0, 5, :4] = True  # ordinary cells: not wasted
    mask[1, 7, 0] = True  # a padded cell: wasted
    copies = cell_copies(x)
    wasted = wasted_cells(mask, *copies)
    assert wasted[0, 2].all() and not wasted[0, 5].any() and wasted[1, 7, 0]
    assert int(wasted.sum()) == 25 + 1
    mask[0, 3] = True  # both copies masked: the pair's content is hidden, nothing wasted
    assert not wasted_cells(mask, *copies)[0, 2:4].any()


def test_motion_percentile_ranks_frames_by_eq4():
    x = torch.zeros(1, 3, 5, 25, 1)
    # motion a_t = |x_{t+1} - x_t|: steps of 1, 4, 2, 3 between frames; last frame backward
    x[0, 0, :, :, 0] = torch.tensor([0.0, 1.0, 5.0, 7.0, 10.0])[:, None]
    pct = motion_percentile(x)[0]
    # a = (1, 4, 2, 3, 3): ranks 0, 4, 1, 2.5, 2.5 of 4
    torch.testing.assert_close(pct, torch.tensor([0.0, 100.0, 25.0, 62.5, 62.5]).double())


def test_degree_laws_and_motion_rankings_as_measured():
    layout = get_layout("ntu25")
    strategies = strategies_for(layout, n=9, k=0.2)
    d = diagnose(_clips(), layout, strategies, draws=3000, batch_size=500)
    s = d.summary
    # eq. 2's LDSM is within a few percent of uniform; the inverse-degree law is not
    assert s.loc["ldsm", "TV from uniform"] < 0.03
    assert s.loc["ldsm:inverse_degree", "TV from uniform"] > 0.08
    assert abs(s.loc["ldsm", "mean degree"] - s.loc["random_joint", "mean degree"]) < 0.05
    assert s.loc["hdsm", "mean degree"] > s.loc["random_joint", "mean degree"] + 0.1
    assert s.loc["ldsm:inverse_degree", "mean degree"] < s.loc["ldsm", "mean degree"] - 0.1
    # HMTM takes the most moving frames, LMTM the stillest, random frames neither
    assert s.loc["hmtm", "motion percentile"] > 85
    assert s.loc["lmtm", "motion percentile"] < 15
    assert 40 < s.loc["random_frame", "motion percentile"] < 60
    # spatial masks cover n of V joints in every frame
    assert abs(s.loc["hdsm", "masked share"] - 9 / 25) < 1e-9
    # per-joint shares sit next to the law; overlap is symmetric with ones on the diagonal
    assert "hdsm law" in d.joints and abs(d.joints["hdsm"].sum() - 9) < 1e-9
    hubs = d.joints["degree"] >= 3  # hubs get more than the uniform 9/25 under HDSM
    assert (d.joints.loc[hubs, "hdsm"] > 9 / 25).all()
    assert (d.overlap.to_numpy().diagonal() == 1.0).all()
    torch.testing.assert_close(
        torch.tensor(d.overlap.to_numpy()), torch.tensor(d.overlap.to_numpy().T)
    )
    assert d.overlap.loc["hmtm", "lmtm"] < 0.05  # top-k and bottom-k frames barely meet
    assert "| ldsm |" in to_markdown(d)
