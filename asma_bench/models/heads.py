"""Linear heads behind fixed feature standardisation: what a linear probe trains and what
is exported with the encoders."""

from __future__ import annotations

import torch
from torch import nn

#: Standard deviations below this fraction of the largest one count as constant features.
RELATIVE_STD_FLOOR = 1e-6


class FeatureStandardizer(nn.Module):
    """Per-dimension standardisation of one or more feature tensors with fixed statistics.

    Each input ``x_i`` (…, D) is mapped to ``(x_i − μ_i) / σ_i`` with μ_i, σ_i (D,) from
    :meth:`fit` (training split). σ is floored at ``1e-6 · max σ_i``, a floor relative to
    the features' own scale, so the map is invariant to rescaling the features (an absolute
    ε, like BatchNorm's 1e-5 on the variance, is not: it swamps features whose spread is
    10⁻³). Statistics are buffers: they travel with the state dict and the ONNX export.
    """

    def __init__(self, num_inputs: int, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_inputs, dim))
        self.register_buffer("std", torch.ones(num_inputs, dim))

    @torch.no_grad()
    def fit(self, *xs: torch.Tensor) -> FeatureStandardizer:
        for i, x in enumerate(xs):
            flat = x.reshape(-1, x.shape[-1]).double()
            mean = flat.mean(dim=0)
            std = flat.std(dim=0, unbiased=False)
            floor = max(float(std.max()) * RELATIVE_STD_FLOOR, torch.finfo(x.dtype).tiny)
            self.mean[i] = mean.to(self.mean.dtype)
            self.std[i] = std.clamp_min(floor).to(self.std.dtype)
        return self

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple((x - self.mean[i]) / self.std[i] for i, x in enumerate(xs))


class StandardizedHead(nn.Module):
    """A head behind a :class:`FeatureStandardizer`: ``head(*standardize(*features))``."""

    def __init__(self, head: nn.Module, num_inputs: int, dim: int):
        super().__init__()
        self.norm = FeatureStandardizer(num_inputs, dim)
        self.head = head

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.head(*self.norm(*xs))

    def features(self, *xs: torch.Tensor) -> torch.Tensor:
        """The wrapped head's penultimate features (the alignment module's pooled output)."""
        return self.head.features(*self.norm(*xs))
