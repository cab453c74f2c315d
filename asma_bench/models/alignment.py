"""ASMa's feature alignment module (Section 3.4, eqs. 10–12).

Two encoders' per-frame features h^θ, h^ϕ ∈ R^{B×N×D} attend to each other in both
directions with multi-head attention (4 heads):

    h_aligned = MHA(Q=h^θ, K=V=h^ϕ) + MHA(Q=h^ϕ, K=V=h^θ)          (eqs. 10–11)
    ŷ = W · pool(h_aligned) + b                                     (eq. 12)

The paper does not say how the sequence is pooled before the classifier; we average over
frames (``pool="mean"``), the lineage's readout, with ``"max"`` as the alternative.
"""

from __future__ import annotations

import torch
from torch import nn

from asma_bench.errors import ConfigError


class FeatureAlignment(nn.Module):
    """Bi-directional cross-attention fusion of two feature sequences plus a linear head.

    >>> m = FeatureAlignment(dim=16, num_classes=5, heads=4)
    >>> m(torch.randn(2, 7, 16), torch.randn(2, 7, 16)).shape
    torch.Size([2, 5])
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        heads: int = 4,
        dropout: float = 0.0,
        pool: str = "mean",
    ):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"alignment heads={heads} must divide the feature dim {dim}")
        if pool not in ("mean", "max"):
            raise ConfigError(f"alignment pool must be 'mean' or 'max', got {pool!r}")
        self.theta_to_phi = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.phi_to_theta = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.head = nn.Linear(dim, num_classes)
        self.pool = pool

    def align(self, h_theta: torch.Tensor, h_phi: torch.Tensor) -> torch.Tensor:
        """Eqs. 10–11: the aligned sequence (B, N, D)."""
        a, _ = self.theta_to_phi(h_theta, h_phi, h_phi, need_weights=False)
        b, _ = self.phi_to_theta(h_phi, h_theta, h_theta, need_weights=False)
        return a + b

    def features(self, h_theta: torch.Tensor, h_phi: torch.Tensor) -> torch.Tensor:
        h = self.align(h_theta, h_phi)
        return h.mean(dim=1) if self.pool == "mean" else h.amax(dim=1)

    def forward(self, h_theta: torch.Tensor, h_phi: torch.Tensor) -> torch.Tensor:
        """Eq. 12: class logits (B, num_classes)."""
        return self.head(self.features(h_theta, h_phi))
