"""Per-sample skeleton augmentations on batched tensors (N, C, T, V, M), on their device.

Every sample draws its own parameters (one random crop, shear, rotation, flip per sample,
never one per batch) with no Python loop over samples; passing a ``torch.Generator`` makes
a call reproducible. Parameters are drawn on the generator's device and moved to the
tensor's, so a CPU generator also drives CUDA tensors.

The operations follow the SSL lineage the ASMa paper builds on (CrosSCLR / AimCLR / PSTL
``tools.py``; the ASMa paper, Section 3.3, names crop, shear, rotation and flip without
equations): temporal crop by mirror padding, shear with amplitude 0.5, rotation up to 30°
about one random axis, left–right flip with p = 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.errors import ConfigError

CROP_MODES = ("mirror", "ratio", "none")

Lengths = torch.Tensor | Sequence[int] | int | None


# ----------------------------------------------------------------------------- helpers
def _check(x: torch.Tensor, what: str, dims: int = 0) -> None:
    """A (N, C, T, V, M) tensor; with ``dims`` > 0, one whose first ``dims`` channels are
    coordinates (2 or 3; channels after them, e.g. a confidence, are left alone)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 5:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ConfigError(f"{what}: expected a tensor (N, C, T, V, M), got {shape}")
    if dims and dims not in (2, 3):
        raise ConfigError(f"{what}: dims must be 2 or 3, got {dims!r}")
    if dims and x.shape[1] < dims:
        raise ConfigError(f"{what}: needs C >= {dims} coordinates, got C = {x.shape[1]}")


def _rand(n: int, x: torch.Tensor, generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    """Uniform [0, 1) draws (n, *shape) on the generator's device, returned on x's."""
    device = generator.device if generator is not None else x.device
    u = torch.rand((n, *shape), generator=generator, device=device, dtype=torch.float64)
    return u.to(x.device)


def _lengths(lengths: Lengths, x: torch.Tensor) -> torch.Tensor:
    """Valid lengths (N,) as int64 on x's device, clamped to [1, T]; None means all T."""
    n, t = x.shape[0], x.shape[2]
    if lengths is None:
        return torch.full((n,), t, dtype=torch.long, device=x.device)
    out = torch.as_tensor(lengths, dtype=torch.long, device=x.device).reshape(-1)
    if out.numel() == 1 and n != 1:
        out = out.expand(n)
    if out.numel() != n:
        raise ConfigError(f"lengths: expected {n} values, got {out.numel()}")
    return out.clamp(1, t)


def _gather_frames(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[n, :, index[n, i]] for index (N, T_out)."""
    n, c, _, v, m = x.shape
    idx = index[:, None, :, None, None].expand(n, c, index.shape[1], v, m)
    return torch.gather(x, 2, idx)


def _resample(
    x: torch.Tensor,
    start: torch.Tensor,
    length: torch.Tensor,
    frames: int,
    align_corners: bool = True,
) -> torch.Tensor:
    """Linear interpolation of each sample's window [start, start + length) to ``frames``.

    ``align_corners=True`` maps the window's first and last frames onto the output's first
    and last (a linearly moving sequence stays exactly linear); ``False`` samples cell
    centres like ``F.interpolate(..., align_corners=False)`` in CTR-GCN's
    ``valid_crop_resize``, which repeats the end frames when upsampling.
    """
    start, length = start.to(torch.float64), length.to(torch.float64)
    i = torch.arange(frames, dtype=torch.float64, device=x.device)[None, :]
    if align_corners:
        step = (length - 1) / max(frames - 1, 1)
        pos = start[:, None] + i * step[:, None]
        if frames == 1:
            pos = start[:, None] + (length[:, None] - 1) / 2
    else:
        pos = start[:, None] + ((i + 0.5) * (length / frames)[:, None] - 0.5)
    last = (start + length - 1)[:, None]
    pos = torch.minimum(torch.maximum(pos, start[:, None]), last)
    lo = pos.floor()
    w = (pos - lo).to(x.dtype)[:, None, :, None, None]
    lo = lo.long().clamp(0, x.shape[2] - 1)
    hi = torch.minimum(lo + 1, last.long()).clamp(0, x.shape[2] - 1)
    return _gather_frames(x, lo) * (1 - w) + _gather_frames(x, hi) * w


# ----------------------------------------------------------------------------- temporal
def resize_frames(
    x: torch.Tensor,
    lengths: Lengths,
    frames: int,
    *,
    starts: Lengths = None,
    align_corners: bool = True,
) -> torch.Tensor:
    """Deterministically resize each sample's valid frames [start, start + length) to
    ``frames`` by linear interpolation (the SSL lineage's 50-frame inputs).

    ``x`` is (N, C, T, V, M) or one sample (C, T, V, M); ``lengths`` / ``starts`` are per
    sample (``starts`` defaults to 0). See :func:`_resample` for ``align_corners``.
    """
    single = isinstance(x, torch.Tensor) and x.ndim == 4
    if single:
        x = x[None]
    _check(x, "resize_frames")
    if frames < 1:
        raise ConfigError(f"resize_frames: frames must be >= 1, got {frames}")
    length = _lengths(lengths, x)
    if starts is None:
        start = torch.zeros_like(length)
    else:
        start = torch.as_tensor(starts, dtype=torch.long, device=x.device).reshape(-1)
        if start.numel() == 1:
            start = start.expand(len(length))
        if start.numel() != len(length):
            raise ConfigError(f"starts: expected {len(length)} values, got {start.numel()}")
        start = start.clamp(0, x.shape[2] - 1)
    length = torch.minimum(length, x.shape[2] - start)
    out = _resample(x, start, length, frames, align_corners)
    return out[0] if single else out


def temporal_crop_resize(
    x: torch.Tensor,
    lengths: Lengths = None,
    *,
    mode: str = "mirror",
    padding_ratio: int = 6,
    crop_ratio: tuple[float, float] = (0.5, 1.0),
    frames: int | None = None,
    min_frames: int = 2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random temporal crop, one window per sample.

    ``mode="mirror"`` (SSL lineage ``temperal_crop``, the default): pad P = L // ``padding_ratio``
    frames at each end by mirroring (edge frame repeated, numpy "symmetric"), then take a
    random window of L frames, start ∈ [0, 2P]. L is the sample's valid length (all T when
    ``lengths`` is None); frames past L are left as they are. ``frames`` must be None.

    ``mode="ratio"`` (crop-resize, as CTR-GCN's ``valid_crop_resize`` without its 64-frame
    floor): crop a random fraction p ~ U(``crop_ratio``) of the valid length (at least
    ``min_frames``) at a random offset and resize it to ``frames`` (default T) by linear
    interpolation; every output frame is then valid.
    """
    _check(x, "temporal_crop_resize")
    n, t = x.shape[0], x.shape[2]
    length = _lengths(lengths, x)
    if mode == "none":
        return x
    if mode == "mirror":
        if frames is not None and frames != t:
            raise ConfigError("temporal_crop_resize: mode 'mirror' keeps T; use mode 'ratio'")
        if padding_ratio < 1:
            raise ConfigError(f"padding_ratio must be >= 1, got {padding_ratio}")
        pad = length // padding_ratio
        start = (_rand(n, x, generator) * (2 * pad + 1).to(torch.float64)).long()
        start = torch.minimum(start, 2 * pad)
        i = torch.arange(t, device=x.device)[None, :]
        j = start[:, None] + i - pad[:, None]
        L = length[:, None]
        j = torch.where(j < 0, -j - 1, j)
        j = torch.where(j >= L, 2 * L - j - 1, j)
        j = torch.where(i < L, j.clamp(0, t - 1), i)  # frames past the valid length stay
        return _gather_frames(x, j)
    if mode == "ratio":
        lo, hi = crop_ratio
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"crop_ratio must satisfy 0 < low <= high <= 1, got {crop_ratio}")
        p = lo + (hi - lo) * _rand(n, x, generator)
        crop = torch.floor(length * p).long()
        crop = torch.maximum(crop, torch.clamp(length, max=max(min_frames, 1))).clamp(max=length)
        start = (_rand(n, x, generator) * (length - crop + 1)).long()
        start = torch.minimum(start, length - crop)
        return _resample(x, start, crop, frames or t)
    raise ConfigError(f"unknown crop mode {mode!r}; available: {', '.join(CROP_MODES)}")


# ----------------------------------------------------------------------------- spatial
def _apply_matrices(x: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """x'_c = Σ_k R[n, c, k] x_k for per-sample matrices R (N, d, d) acting on the first d
    (coordinate) channels; any further channels pass through unchanged."""
    d = rot.shape[-1]
    out = torch.einsum("nck,nktvm->nctvm", rot.to(x.dtype), x[:, :d])
    return out if x.shape[1] == d else torch.cat([out, x[:, d:]], dim=1)


def shear(
    x: torch.Tensor,
    amplitude: float = 0.5,
    *,
    dims: int = 3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random shear x' = R x with R = I plus off-diagonal entries ~ U(−a, a), per sample
    (lineage ``shear``, a = 0.5; amplitude 0 is the identity), on the ``dims`` coordinate
    channels (a 2×2 shear of the image plane for 2-D skeletons)."""
    _check(x, "shear", dims=dims)
    if amplitude < 0:
        raise ConfigError(f"shear amplitude must be >= 0, got {amplitude}")
    n = x.shape[0]
    off = (2 * _rand(n, x, generator, dims, dims) - 1) * amplitude
    eye = torch.eye(dims, dtype=off.dtype, device=off.device)
    return _apply_matrices(x, eye + off * (1 - eye))


def rotation_matrices(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) by ``angle`` (radians) about coordinate ``axis`` (0, 1, 2)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(c), torch.zeros_like(c)
    rx = torch.stack([one, zero, zero, zero, c, -s, zero, s, c], -1)
    ry = torch.stack([c, zero, s, zero, one, zero, -s, zero, c], -1)
    rz = torch.stack([c, -s, zero, s, c, zero, zero, zero, one], -1)
    rot = torch.where((axis == 0)[:, None], rx, torch.where((axis == 1)[:, None], ry, rz))
    return rot.reshape(-1, 3, 3)


def rotate(
    x: torch.Tensor,
    max_degrees: float = 30.0,
    *,
    symmetric: bool = True,
    dims: int = 3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rotate each sample about one random coordinate axis by a random angle.

    The lineage (AimCLR ``random_rotate``) draws the main-axis angle in [0, 30°] and adds
    ≤ 1° about the other two axes; here the angle is U(−max, max) by default (the sign of a
    view change is arbitrary) and ``symmetric=False`` gives U(0, max). Rotation preserves
    bone lengths. A 2-D skeleton (``dims=2``) turns in the image plane (about z).
    """
    _check(x, "rotate", dims=dims)
    if max_degrees < 0:
        raise ConfigError(f"rotate max_degrees must be >= 0, got {max_degrees}")
    n = x.shape[0]
    u = _rand(n, x, generator, 2)
    axis = torch.clamp((u[:, 0] * 3).long(), max=2) if dims == 3 else torch.full_like(u[:, 0], 2)
    frac = 2 * u[:, 1] - 1 if symmetric else u[:, 1]
    rot = rotation_matrices(axis.long(), frac * math.radians(max_degrees))
    return _apply_matrices(x, rot[:, :dims, :dims])


def flip(
    x: torch.Tensor,
    layout: SkeletonLayout | str,
    p: float = 0.5,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Left–right flip with probability ``p`` per sample: swap left/right joints with the
    layout's flip permutation and negate x. Flipping twice is the identity."""
    _check(x, "flip")
    layout = get_layout(layout)
    if not 0 <= p <= 1:
        raise ConfigError(f"flip p must be in [0, 1], got {p}")
    if x.shape[3] != layout.num_joints:
        raise ConfigError(
            f"flip: input has {x.shape[3]} joints, layout {layout.name!r} has {layout.num_joints}"
        )
    perm = torch.as_tensor(layout.flip_permutation, device=x.device)
    sign = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    sign[0] = -1
    flipped = x[:, :, :, perm] * sign[None, :, None, None, None]
    hit = _rand(x.shape[0], x, generator) < p
    return torch.where(hit[:, None, None, None, None], flipped, x)


def gaussian_noise(
    x: torch.Tensor,
    std: float = 0.01,
    *,
    skip_zeros: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Add N(0, std²) noise to every coordinate. With ``skip_zeros`` joints that are exactly
    zero (absent bodies, padding, dropped joints) stay zero."""
    _check(x, "gaussian_noise")
    if std < 0:
        raise ConfigError(f"noise std must be >= 0, got {std}")
    device = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=x.dtype).to(x.device)
    out = x + std * noise
    if skip_zeros:
        present = (x != 0).any(dim=1, keepdim=True)
        out = torch.where(present, out, x)
    return out


# ----------------------------------------------------------------------------- composition
class Augment(nn.Module):
    """Crop → shear → rotate → flip → noise, each sample with its own parameters.

    Defaults are the lineage's (see the module docstring): ``crop="mirror"`` with
    ``padding_ratio=6``, ``shear=0.5``, ``rotate=30`` degrees, ``flip=0.5``, ``noise=0``.
    A zero (or ``crop="none"``) switches that step off.

    >>> aug = Augment("ntu25")
    >>> y = aug(torch.randn(4, 3, 50, 25, 2), generator=torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        layout: SkeletonLayout | str,
        *,
        crop: str = "mirror",
        padding_ratio: int = 6,
        crop_ratio: tuple[float, float] = (0.5, 1.0),
        shear: float = 0.5,
        rotate: float = 30.0,
        flip: float = 0.5,
        noise: float = 0.0,
    ):
        super().__init__()
        self.layout = get_layout(layout)
        if crop not in CROP_MODES:
            raise ConfigError(f"augment crop {crop!r}; available: {', '.join(CROP_MODES)}")
        if padding_ratio < 1:
            raise ConfigError(f"augment padding_ratio must be >= 1, got {padding_ratio}")
        lo, hi = crop_ratio
        if not 0 < lo <= hi <= 1:
            raise ConfigError(
                f"augment crop_ratio must satisfy 0 < low <= high <= 1, got {crop_ratio}"
            )
        for name, value in (("shear", shear), ("rotate", rotate), ("noise", noise)):
            if value < 0:
                raise ConfigError(f"augment {name} must be >= 0, got {value}")
        if not 0 <= flip <= 1:
            raise ConfigError(f"augment flip must be in [0, 1], got {flip}")
        self.crop, self.padding_ratio, self.crop_ratio = crop, int(padding_ratio), (lo, hi)
        self.shear, self.rotate, self.flip, self.noise = shear, rotate, flip, noise

    @classmethod
    def from_config(cls, layout: SkeletonLayout | str, config: Mapping[str, Any]) -> Augment:
        """Build from a mapping of the constructor's keyword arguments."""
        allowed = {"crop", "padding_ratio", "crop_ratio", "shear", "rotate", "flip", "noise"}
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ConfigError(
                f"augment: unknown option {unknown[0]!r}; available: {', '.join(sorted(allowed))}"
            )
        kwargs = dict(config)
        if "crop_ratio" in kwargs:
            kwargs["crop_ratio"] = tuple(kwargs["crop_ratio"])
        return cls(layout, **kwargs)

    def forward(
        self, x: torch.Tensor, lengths: Lengths = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.crop != "none":
            x = temporal_crop_resize(
                x,
                lengths,
                mode=self.crop,
                padding_ratio=self.padding_ratio,
                crop_ratio=self.crop_ratio,
                generator=generator,
            )
        dims = self.layout.dims
        if self.shear > 0:
            x = shear(x, self.shear, dims=dims, generator=generator)
        if self.rotate > 0:
            x = rotate(x, self.rotate, dims=dims, generator=generator)
        if self.flip > 0:
            x = flip(x, self.layout, self.flip, generator=generator)
        if self.noise > 0:
            x = gaussian_noise(x, self.noise, generator=generator)
        return x

    def extra_repr(self) -> str:
        return (
            f"crop={self.crop!r}, padding_ratio={self.padding_ratio}, "
            f"crop_ratio={self.crop_ratio}, shear={self.shear}, rotate={self.rotate}, "
            f"flip={self.flip}, noise={self.noise}"
        )
