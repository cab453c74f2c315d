"""Classifiers built from pretrained encoders: one encoder + linear head, two encoders
concatenated + linear head, or ASMa's two encoders fused by the alignment module."""

from __future__ import annotations

import torch
from torch import nn

from asma_bench.errors import ConfigError
from asma_bench.models.alignment import FeatureAlignment
from asma_bench.models.heads import StandardizedHead

FEATURE_MODES = ("single", "theta", "phi", "concat", "aligned")


def resolve_features(mode: str, encoder_names: tuple[str, ...]) -> str:
    """``auto`` → ``aligned`` for two encoders, ``single`` for one; validate the rest."""
    two = set(encoder_names) == {"theta", "phi"}
    if mode == "auto":
        return "aligned" if two else "single"
    if mode not in FEATURE_MODES:
        raise ConfigError(f"linear.features must be one of {FEATURE_MODES}, got {mode!r}")
    if (mode != "single") != two:
        raise ConfigError(
            f"linear.features={mode!r} does not fit encoders {encoder_names} "
            "(theta/phi/concat/aligned need the two-encoder 'asma' objective)"
        )
    return mode


def make_head(
    mode: str, dim: int, num_classes: int, heads: int = 4, standardize: bool = True
) -> nn.Module:
    """The head a feature ``mode`` needs: ASMa's alignment module (eqs. 10–12) for
    ``aligned``, else a linear layer; behind a :class:`StandardizedHead` when
    ``standardize`` (statistics fitted by the probe on the training split)."""
    if mode == "aligned":
        head: nn.Module = FeatureAlignment(dim, num_classes, heads=heads)
        inputs, width = 2, dim
    else:
        width = 2 * dim if mode == "concat" else dim
        head, inputs = nn.Linear(width, num_classes), 1
    return StandardizedHead(head, inputs, width) if standardize else head


class EncoderClassifier(nn.Module):
    """Encoder(s) + head; ``forward(x)`` maps (N, C, T, V, M) clips to class logits."""

    def __init__(self, encoders: dict[str, nn.Module], head: nn.Module, mode: str):
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.head = head
        self.mode = mode

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the head sees: pooled (N, D) / (N, 2D), or stacked sequences (N, 2, T', D)."""
        return encoder_features(self.encoders, x, self.mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_head(self.head, self.features(x), self.mode)


def encoder_features(encoders: nn.ModuleDict | dict, x: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "aligned":
        h_theta = encoders["theta"].forward_features(x)
        h_phi = encoders["phi"].forward_features(x)
        return torch.stack([h_theta, h_phi], dim=1)
    if mode == "concat":
        return torch.cat([encoders["theta"](x), encoders["phi"](x)], dim=1)
    name = "encoder" if mode == "single" else mode
    return encoders[name](x)


def apply_head(head: nn.Module, feats: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "aligned":
        return head(feats[:, 0], feats[:, 1])
    return head(feats)
