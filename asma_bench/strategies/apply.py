"""Applying a mask to a batch: zero-filling, or dropping joints / frames as PSTL does.

References: docs/references.md#pstl.

>>> x = torch.ones(2, 3, 4, 5, 1)
>>> mask = torch.zeros(2, 4, 5, dtype=torch.bool)
>>> mask[:, 1] = True  # frame 1 of every sample
>>> apply_mask(x, mask, "drop")[0].shape
torch.Size([2, 3, 3, 5, 1])
"""

from __future__ import annotations

import torch
from torch import Tensor

from asma_bench.errors import ConfigError

MODES = ("zero", "drop")


def apply_mask(
    x: Tensor, mask: Tensor, mode: str = "zero", kind: str | None = None
) -> tuple[Tensor, Tensor | None]:
    """Apply a bool mask (N, T, V), True = masked, to a batch x (N, C, T, V, M).

    ``mode="zero"``: masked (frame, joint) positions are set to 0 in every channel and body;
    returns ``(x_masked, None)``.

    ``mode="drop"`` (PSTL: masked joints leave the graph, masked frames leave the sequence)
    needs a purely temporal or purely spatial mask with the same count in every sample:

    - temporal (the same frames for every joint): the kept frames, in order →
      ``(x of shape (N, C, T − k, V, M), None)``;
    - spatial (the same joints in every frame): the kept joints, in order →
      ``(x of shape (N, C, T, V − n, M), kept_joints)`` with ``kept_joints`` (N, V − n) long,
      from which a graph backbone takes each sample's sub-graph ``A[kept][:, kept]``.

    The kind is inferred from the mask, or forced with ``kind="spatial"|"temporal"``. An
    all-False mask drops nothing and returns ``(x, None)``. Anything else raises ConfigError.
    """
    if mode not in MODES:
        raise ConfigError(f"apply_mask: mode={mode!r} is not one of {', '.join(MODES)}")
    if kind not in (None, "spatial", "temporal"):
        raise ConfigError(f"apply_mask: kind={kind!r} is not one of spatial, temporal")
    if x.dim() != 5:
        raise ConfigError(f"apply_mask: x must be (N, C, T, V, M), got {tuple(x.shape)}")
    n, c, t, v, m = x.shape
    if mask.dtype != torch.bool or tuple(mask.shape) != (n, t, v):
        raise ConfigError(
            f"apply_mask: mask must be bool of shape {(n, t, v)}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    mask = mask.to(x.device)
    if mode == "zero":
        return x.masked_fill(mask[:, None, :, :, None], 0), None

    if not bool(mask.any()):
        return x, None
    spatial = bool((mask == mask[:, :1, :]).all())
    temporal = bool((mask == mask[:, :, :1]).all())
    if spatial and temporal:
        raise ConfigError("apply_mask: mode='drop' cannot drop a sample's every joint and frame")
    if kind is None:
        if not (spatial or temporal):
            raise ConfigError(
                "apply_mask: mode='drop' needs a purely spatial or purely temporal mask; "
                "this one varies over both frames and joints (use mode='zero')"
            )
        kind = "spatial" if spatial else "temporal"
    elif not {"spatial": spatial, "temporal": temporal}[kind]:
        raise ConfigError(f"apply_mask: kind='{kind}' but the mask is not purely {kind}")

    if kind == "temporal":
        dropped = mask[:, :, 0]  # (N, T)
        what, size = "frames", t
    else:
        dropped = mask[:, 0, :]  # (N, V)
        what, size = "joints", v
    counts = dropped.sum(dim=1)
    lo, hi = int(counts.min()), int(counts.max())
    if lo != hi:
        raise ConfigError(
            f"apply_mask: mode='drop' needs the same number of masked {what} in every sample, "
            f"got {lo} to {hi} (use mode='zero')"
        )
    keep = size - lo
    # A stable sort on the 0/1 flags lists the kept indices first, in their original order.
    kept = torch.sort(dropped.to(torch.uint8), dim=1, stable=True).indices[:, :keep]
    if kind == "temporal":
        index = kept[:, None, :, None, None].expand(n, c, keep, v, m)
        return x.gather(2, index), None
    index = kept[:, None, None, :, None].expand(n, c, t, keep, m)
    return x.gather(3, index), kept
