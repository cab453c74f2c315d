"""Baselines: uniform joint masking, uniform frame masking, and no masking.

References: docs/references.md#asma.

ASMa's ablation (Table 9) pairs ``random_joint`` with ``random_frame`` as the
random/random baseline; ``none`` gives the unmasked anchor view.
"""

from __future__ import annotations

import torch
from torch import Tensor

from asma_bench.data.layouts import SkeletonLayout
from asma_bench.strategies.base import (
    MASKINGS,
    FrameSelectingStrategy,
    JointSamplingStrategy,
    MaskingStrategy,
    uniform,
)


@MASKINGS.register("random_joint")
class RandomJoint(JointSamplingStrategy):
    """n distinct joints per sample, uniformly at random (ASMa's random spatial baseline)."""

    def __init__(self, layout: str | SkeletonLayout = "ntu25", *, n: int | float = 9):
        super().__init__(layout, n=n)
        self.set_law(torch.zeros(self.layout.num_joints))


@MASKINGS.register("random_frame")
class RandomFrame(FrameSelectingStrategy):
    """k distinct real frames per sample, uniformly at random (ASMa's random temporal
    baseline)."""

    def __init__(
        self, layout: str | SkeletonLayout = "ntu25", *, k: int | float = 10, short: str = "clamp"
    ):
        super().__init__(layout, k=k, short=short)

    def frame_scores(
        self, x: Tensor, generator: torch.Generator | None, lengths: Tensor, valid: Tensor
    ) -> tuple[Tensor, Tensor]:
        return uniform(valid.shape, generator, x.device), valid


@MASKINGS.register("none")
class NoMasking(MaskingStrategy):
    """Masks nothing: the all-False mask."""

    kind = "none"
    stochastic = False

    def __init__(self, layout: str | SkeletonLayout = "ntu25"):
        super().__init__(layout)

    def budget(self, num_frames: int) -> int:
        return 0

    def draw(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor) -> Tensor:
        n, _, t, v, _ = x.shape
        return torch.zeros(n, t, v, dtype=torch.bool, device=x.device)
