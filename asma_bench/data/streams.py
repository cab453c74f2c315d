"""Joint, bone and motion input streams (the "3s" of 3s-ASMa and its lineage).

Work on torch tensors (N, C, T, V, M) or single samples (C, T, V, M), and on numpy arrays
of either shape; V is always the second-to-last axis and T the third-to-last.

* joint: the coordinates themselves.
* bone: x[..., v, :] − x[..., parent(v), :] over the layout's bone pairs; the root bone
  (e.g. NTU joint 21 to itself) is zero, keeping V channels as the SSL lineage does.
* motion: x[:, :, t+1] − x[:, :, t], with the last frame zero (lineage convention).

Channels beyond the layout's ``dims`` coordinates (a detector's confidence) are not
differenced: a bone's or a step's confidence is the mean of its two ends', as pyskl does
for 2-D keypoints with scores.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.errors import ConfigError

STREAMS = ("joint", "bone", "motion")

Array = TypeVar("Array", torch.Tensor, np.ndarray)


def _check(x: Array) -> None:
    if x.ndim not in (4, 5):
        raise ConfigError(
            f"stream input must be (N, C, T, V, M) or (C, T, V, M), got {tuple(x.shape)}"
        )


def joint_stream(x: Array) -> Array:
    """The joint stream: the coordinates, unchanged (returned as is, not copied)."""
    _check(x)
    return x


def bone_stream(x: Array, layout: SkeletonLayout | str) -> Array:
    """Bone vectors x_v − x_parent(v) for every joint v (zero at the root)."""
    _check(x)
    layout = get_layout(layout)
    if x.shape[-2] != layout.num_joints:
        raise ConfigError(
            f"bone stream: input has {x.shape[-2]} joints, layout "
            f"{layout.name!r} has {layout.num_joints}"
        )
    parents = [p for _, p in layout.bone_pairs]
    if isinstance(x, torch.Tensor):
        other = x[..., torch.as_tensor(parents, device=x.device), :]
    else:
        other = x[..., parents, :]
    return _combine(x, other, layout.dims)


def _combine(x: Array, other: Array, dims: int | None) -> Array:
    """x − other on the coordinate channels, (x + other) / 2 on any channel after them."""
    out = x - other
    if dims is not None and x.shape[-4] > dims:
        out[..., dims:, :, :, :] = (x[..., dims:, :, :, :] + other[..., dims:, :, :, :]) / 2
    return out


def motion_stream(x: Array, dims: int | None = None) -> Array:
    """Frame differences x_{t+1} − x_t; the last frame is zero. With ``dims``, channels
    after the first ``dims`` (confidence) are averaged over the two frames instead."""
    _check(x)
    out = torch.zeros_like(x) if isinstance(x, torch.Tensor) else np.zeros_like(x)
    out[..., :-1, :, :] = _combine(x[..., 1:, :, :], x[..., :-1, :, :], dims)
    return out


def to_stream(x: Array, name: str, layout: SkeletonLayout | str | None = None) -> Array:
    """The stream ``name`` ('joint', 'bone' or 'motion') of ``x``; bone needs ``layout``."""
    if name == "joint":
        return joint_stream(x)
    if name == "bone":
        if layout is None:
            raise ConfigError("stream 'bone' needs a layout")
        return bone_stream(x, layout)
    if name == "motion":
        return motion_stream(x, get_layout(layout).dims if layout is not None else None)
    raise ConfigError(f"unknown stream {name!r}; available: {', '.join(STREAMS)}")
