"""Zero-filling and dropping masked joints / frames."""

from __future__ import annotations

import pytest
import torch

from asma_bench.data.layouts import NTU25
from asma_bench.errors import ConfigError
from asma_bench.strategies import apply_mask, create_masking


def batch(n: int = 4, t: int = 12, v: int = 25, m: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, t, v, m, generator=torch.Generator().manual_seed(0)) + 5.0


def test_zero_fills_masked_positions_in_every_channel_and_body() -> None:
    x = batch()
    mask = torch.rand(4, 12, 25, generator=torch.Generator().manual_seed(1)) < 0.3
    out, extra = apply_mask(x, mask, "zero")
    assert extra is None and out.shape == x.shape
    for i, t, v in torch.nonzero(mask).tolist():
        assert (out[i, :, t, v, :] == 0).all()
    for i, t, v in torch.nonzero(~mask).tolist()[:50]:
        assert torch.equal(out[i, :, t, v, :], x[i, :, t, v, :])
    assert int((out == 0).sum()) == int(mask.sum()) * 3 * 2


def test_drop_frames_keeps_the_rest_in_order() -> None:
    x = batch()
    mask = create_masking("random_frame", k=4)(x, generator=torch.Generator().manual_seed(2))
    out, kept = apply_mask(x, mask, "drop")
    assert kept is None and out.shape == (4, 3, 8, 25, 2)
    for i in range(4):
        frames = torch.nonzero(~mask[i, :, 0]).flatten()
        assert torch.equal(out[i], x[i][:, frames])


def test_drop_joints_returns_the_kept_joints_for_the_sub_graph() -> None:
    x = batch()
    mask = create_masking("hdsm", n=9)(x, generator=torch.Generator().manual_seed(3))
    out, kept = apply_mask(x, mask, "drop")
    assert out.shape == (4, 3, 12, 16, 2) and kept.shape == (4, 16) and kept.dtype == torch.long
    adjacency = torch.from_numpy(NTU25.adjacency)
    for i in range(4):
        joints = torch.nonzero(~mask[i, 0]).flatten()
        assert torch.equal(kept[i], joints)  # increasing order
        assert torch.equal(out[i], x[i][:, :, joints])
        sub = adjacency[kept[i]][:, kept[i]]
        assert sub.shape == (16, 16) and torch.equal(sub, adjacency[joints][:, joints])


def masked_mean_model(x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """A model that ignores masked inputs: per-sample mean over visible (frame, joint)."""
    w = visible[:, None, :, :, None].to(x.dtype)
    return (x * w).sum(dim=(2, 3)) / w.sum(dim=(2, 3))


@pytest.mark.parametrize("name", ["hdsm", "ldsm", "random_joint", "hmtm", "lmtm", "random_frame"])
def test_drop_and_zero_agree_for_a_model_that_ignores_masked_inputs(name: str) -> None:
    x = batch()
    mask = create_masking(name)(x, generator=torch.Generator().manual_seed(4))
    zeroed, _ = apply_mask(x, mask, "zero")
    dropped, _ = apply_mask(x, mask, "drop")
    from_zero = masked_mean_model(zeroed, ~mask)
    from_drop = dropped.mean(dim=(2, 3))
    assert torch.allclose(from_zero, from_drop, atol=1e-5)
    assert not torch.allclose(from_drop, x.mean(dim=(2, 3)), atol=1e-3)  # masking mattered


def test_all_false_mask_drops_nothing() -> None:
    x = batch()
    out, kept = apply_mask(x, torch.zeros(4, 12, 25, dtype=torch.bool), "drop")
    assert out is x and kept is None


def test_drop_refuses_masks_it_cannot_drop() -> None:
    x = batch()
    tube = create_masking("tube")(x, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ConfigError, match="purely spatial or purely temporal"):
        apply_mask(x, tube, "drop")
    uneven = torch.zeros(4, 12, 25, dtype=torch.bool)
    uneven[0, :, :3] = True
    uneven[1:, :, :2] = True
    with pytest.raises(ConfigError, match="same number of masked joints"):
        apply_mask(x, uneven, "drop")
    whole = torch.zeros(4, 12, 25, dtype=torch.bool)
    whole[0] = True
    with pytest.raises(ConfigError, match="every joint and frame"):
        apply_mask(x, whole, "drop")
    frames = create_masking("hmtm")(x)
    with pytest.raises(ConfigError, match="not purely spatial"):
        apply_mask(x, frames, "drop", kind="spatial")


def test_bad_arguments_are_config_errors() -> None:
    x = batch()
    mask = torch.zeros(4, 12, 25, dtype=torch.bool)
    with pytest.raises(ConfigError, match="mode='blur'"):
        apply_mask(x, mask, "blur")
    with pytest.raises(ConfigError, match="mask must be bool"):
        apply_mask(x, mask[:, :6], "zero")
    with pytest.raises(ConfigError, match="mask must be bool"):
        apply_mask(x, mask.int(), "zero")
