"""Masked reconstruction (MAE family): predict what the mask hid.

References: docs/references.md#mae, #simmim, #mamp.

The encoder sees the zero-filled masked input (masked positions replaced, SimMIM-style,
rather than removed as in MAE, so graph backbones keep their graph); a light decoder
maps its per-joint features back to every frame and joint and predicts coordinates
(``target="coords"``) or motion (``target="motion"``, MAMP, Mao et al. ICCV 2023). The
loss is the mean squared error on masked positions only (MAE, He et al. CVPR 2022,
Sec. 3 "Reconstruction target").
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asma_bench.errors import ConfigError
from asma_bench.objectives.base import Objective, encoder_dim, resolve_strategy
from asma_bench.strategies.apply import apply_mask
from asma_bench.strategies.base import slot_generator

TARGETS = ("coords", "motion")


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``(pred − target)^2`` over masked (frame, joint) positions, all channels and
    bodies (MAE's loss on masked patches only). ``pred``/``target`` (N, C, T, V, M), ``mask``
    bool (N, T, V). An empty mask gives 0 (still connected to ``pred``'s graph)."""
    if pred.shape != target.shape or mask.shape != (pred.shape[0], *pred.shape[2:4]):
        raise ConfigError(
            f"masked_mse: pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} do not match (N, C, T, V, M) / (N, T, V)"
        )
    weight = mask[:, None, :, :, None].to(pred.dtype)
    squared = (pred - target).pow(2) * weight
    count = weight.sum() * pred.shape[1] * pred.shape[4]
    return squared.sum() / count.clamp_min(1)


def motion_target(x: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Per-frame motion ``x_{t+1} − x_t`` (ASMa eq. 3 without the absolute value; MAMP's
    motion target); the last valid frame of each sample gets 0, as the lineage's motion
    stream does."""
    motion = torch.zeros_like(x)
    motion[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    if lengths is not None:
        t = torch.arange(x.shape[2], device=x.device)
        last_valid = t[None, :] < (lengths.to(x.device)[:, None] - 1)
        motion = motion * last_valid[:, None, :, None, None].to(x.dtype)
    return motion


class JointDecoder(nn.Module):
    """Light decoder: per-joint features (N, D, T', V, M) → (N, C, T, V, M).

    Linear interpolation back to T frames, then 1×1 conv, ReLU, temporal conv (kernel 3),
    ReLU, 1×1 conv to C channels.
    """

    def __init__(self, in_dim: int, out_channels: int, hidden_dim: int = 64):
        super().__init__()
        if isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim < 1:
            raise ConfigError(f"decoder_dim={hidden_dim!r} must be an integer >= 1")
        self.net = nn.Sequential(
            nn.Conv2d(in_dim, hidden_dim, kernel_size=1),
            nn.ReLU(),
            nn.Conv2d(hidden_dim, hidden_dim, kernel_size=(3, 1), padding=(1, 0)),
            nn.ReLU(),
            nn.Conv2d(hidden_dim, out_channels, kernel_size=1),
        )

    def forward(self, features: Tensor, num_frames: int) -> Tensor:
        n, d, t, v, m = features.shape
        h = features.permute(0, 4, 1, 2, 3).reshape(n * m, d, t, v)
        if t != num_frames:
            h = F.interpolate(h, size=(num_frames, v), mode="bilinear", align_corners=False)
        y = self.net(h)
        return y.reshape(n, m, -1, num_frames, v).permute(0, 2, 3, 4, 1)


class MaskedReconstruction(Objective):
    """MAE-family objective (registered ``mae``): loss = MSE on masked positions only.

    ``spatial``/``temporal``: masking strategies (or names), either may be ``None``; the
    union of their masks is hidden (zero-filled) and reconstructed. ``encoder`` must provide
    ``forward_joint_features`` (every registered backbone does). With ``lengths``, padded
    frames (t >= length) are left out of the loss. Only ``mask_mode="zero"``: a dropped
    joint or frame leaves no position for the decoder to fill.
    """

    num_views = 1

    def __init__(
        self,
        encoder: nn.Module,
        spatial: Any = None,
        temporal: Any = None,
        target: str = "coords",
        decoder_dim: int = 64,
        mask_mode: str = "zero",
    ):
        super().__init__()
        if not callable(getattr(encoder, "forward_joint_features", None)):
            raise ConfigError(
                f"mae needs an encoder with forward_joint_features; "
                f"{type(encoder).__name__} has none"
            )
        if target not in TARGETS:
            raise ConfigError(f"target={target!r} is not one of {', '.join(TARGETS)}")
        if mask_mode != "zero":
            raise ConfigError(f"mae supports only mask_mode='zero', got {mask_mode!r}")
        if spatial is None and temporal is None:
            raise ConfigError("mae needs a masking strategy: give spatial and/or temporal")
        in_channels = getattr(encoder, "in_channels", None)
        if isinstance(in_channels, bool) or not isinstance(in_channels, int):
            raise ConfigError(f"encoder {type(encoder).__name__} has no integer in_channels")
        self.encoder = encoder
        self.spatial = None if spatial is None else resolve_strategy(spatial, encoder, "spatial")
        self.temporal = (
            None if temporal is None else resolve_strategy(temporal, encoder, "temporal")
        )
        self.target = target
        self.decoder = JointDecoder(encoder_dim(encoder), in_channels, decoder_dim)

    def forward(
        self,
        x: Tensor,
        generator: torch.Generator | None = None,
        lengths: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Loss, prediction (N, C, T, V, M) and the mask (N, T, V) used."""
        mask = torch.zeros(x.shape[0], x.shape[2], x.shape[3], dtype=torch.bool, device=x.device)
        for strategy in (self.spatial, self.temporal):
            slot = slot_generator(generator)  # drawn for an empty slot too (MaskStream)
            if strategy is not None:
                mask = mask | strategy(x, generator=slot, lengths=lengths).to(x.device)
        x_masked, _ = apply_mask(x, mask, "zero")
        pred = self.decoder(self.encoder.forward_joint_features(x_masked), x.shape[2])
        target = x if self.target == "coords" else motion_target(x, lengths)
        scored = mask
        if lengths is not None:
            t = torch.arange(x.shape[2], device=x.device)
            scored = mask & (t[None, :] < lengths.to(x.device)[:, None])[:, :, None]
        return {"loss": masked_mse(pred, target, scored), "pred": pred, "mask": mask}
