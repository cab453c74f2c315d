"""An objective: the triplet Barlow Twins loss with its two terms weighted."""

from __future__ import annotations

from typing import Any

from asma_bench.errors import ConfigError
from asma_bench.objectives import OBJECTIVES, TripletBarlowTwins


@OBJECTIVES.register("weighted_triplet")
class WeightedTriplet(TripletBarlowTwins):
    """L = α L1 + (1 − α) L2 with L1, L2 the anchor–spatial and anchor–temporal Barlow
    Twins terms. It inherits what it needs from its parent class (one encoder, a pairing,
    the projector), so ``masking.pairing``, ``projector_dim`` and ``lambd`` apply, and
    ``pretrain.params={alpha: 0.7}`` sets α."""

    def __init__(self, *args: Any, alpha: float = 0.5, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"weighted_triplet: alpha={alpha!r} must lie in [0, 1]")
        self.alpha = float(alpha)

    def forward(self, *views: Any, **kwargs: Any) -> dict[str, Any]:
        out = super().forward(*views, **kwargs)
        out["loss"] = self.alpha * out["l1"] + (1.0 - self.alpha) * out["l2"]
        return out
