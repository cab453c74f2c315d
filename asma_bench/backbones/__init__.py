"""Skeleton backbones by name, and their size and cost.

Every backbone maps a batch (N, C, T, V, M) to clip features (N, D) (``forward``) or
per-frame features (N, T', D) (``forward_features``), accepts ``kept_joints`` (N, V') for
drop-mode spatial masks, and exposes ``out_dim``.

>>> model = create_backbone("stgcn", layout="ntu25", base_channels=4, num_blocks=3, out_dim=8)
>>> count_parameters(model) > 0
True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from asma_bench.backbones.dgcnn import DGCNN
from asma_bench.backbones.gin import GIN
from asma_bench.backbones.graph import SkeletonBackbone, graph_adjacency, partition_masks
from asma_bench.backbones.stgcn import STGCN
from asma_bench.backbones.student import Student
from asma_bench.data.layouts import SkeletonLayout
from asma_bench.registry import Registry

BACKBONES: Registry[Any] = Registry("backbone", context=("layout", "in_channels"))
BACKBONES.register("stgcn")(STGCN)
BACKBONES.register("gin")(GIN)
BACKBONES.register("dgcnn")(DGCNN)
BACKBONES.register("student")(Student)


def create_backbone(
    name: str, layout: str | SkeletonLayout = "ntu25", in_channels: int = 3, **params: Any
) -> nn.Module:
    """Build the registered backbone ``name``; unknown names or parameters raise ConfigError."""
    context = {"layout": layout, "in_channels": in_channels}
    return BACKBONES.create(name, context=context, **params)


def list_backbones(pattern: str = "*") -> list[str]:
    """Registered backbone names matching an fnmatch ``pattern``."""
    return BACKBONES.list(pattern)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, x: Tensor, **kwargs: Any) -> int:
    """Floating-point operations of one forward pass on ``x``, as counted by
    ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts as 2).

    Runs in eval mode without gradients, so BatchNorm statistics are left untouched; the
    model's mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x, **kwargs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


__all__ = [
    "BACKBONES",
    "DGCNN",
    "GIN",
    "STGCN",
    "SkeletonBackbone",
    "Student",
    "count_flops",
    "count_parameters",
    "create_backbone",
    "graph_adjacency",
    "list_backbones",
    "partition_masks",
]
