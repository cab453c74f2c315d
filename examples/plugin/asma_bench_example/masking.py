"""A spatial masking strategy and a pairing that uses it."""

from __future__ import annotations

import torch

from asma_bench.data.layouts import SkeletonLayout
from asma_bench.strategies import MASKINGS
from asma_bench.strategies.base import JointSamplingStrategy
from asma_bench.strategies.pairs import MaskingPairing, register_pairing


@MASKINGS.register("depth_weighted")
class DepthWeighted(JointSamplingStrategy):
    """n distinct joints per clip, p_v ∝ 1 + depth_v (depth: hops from the centre joint)."""

    def __init__(self, layout: str | SkeletonLayout = "ntu25", *, n: int | float = 9):
        super().__init__(layout, n=n)
        weight = torch.as_tensor(self.layout.depth, dtype=torch.float64) + 1.0
        self.set_law((weight / weight.sum()).log())


register_pairing(
    MaskingPairing(
        name="depth_hmtm",
        spatial="depth_weighted",
        temporal="hmtm",
        description="distal joints (by kinematic depth) + high-motion frames",
    )
)
