"""The distillation student: a shallow ST-GCN (ASMa, Sec. 3.5 and 5.4).

ASMa distils its two encoders and alignment module into "5 ST-GCN layers with spatial
kernel 3 and temporal kernel 9" (0.54 M parameters); the paper gives no channel widths.
The default here — 5 blocks 32, 32, 64 (stride 2), 128 (stride 2), 128 — has about
0.46 M parameters on NTU-25; every width, the depth and the output size are parameters.

>>> import torch
>>> student = Student("ntu25", base_channels=4, num_blocks=2, out_dim=8)
>>> student(torch.randn(2, 3, 16, 25, 1)).shape
torch.Size([2, 8])
"""

from __future__ import annotations

from collections.abc import Sequence

from asma_bench.backbones.stgcn import STGCN
from asma_bench.data.layouts import SkeletonLayout


class Student(STGCN):
    """ST-GCN with a student's defaults: 5 blocks, spatial kernel 3 (the 3 partition
    subsets), temporal kernel 9, 32 base channels, 128-d output (``out_dim=None``)."""

    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        in_channels: int = 3,
        *,
        base_channels: int = 32,
        out_dim: int | None = None,
        num_blocks: int = 5,
        channels: Sequence[int] | None = None,
        strides: Sequence[int] | None = None,
        temporal_kernel: int = 9,
        partition: str = "spatial",
        max_hop: int = 1,
        dilation: int = 1,
        normalization: str = "column",
        edge_importance: bool = True,
        dropout: float = 0.5,
        residual: bool = True,
        data_norm: str = "joint",
        num_bodies: int = 2,
        renormalize_subgraph: bool = False,
    ):
        if out_dim is None and channels is None:
            out_dim = 128  # an explicit channel list decides the output size itself
        super().__init__(
            layout,
            in_channels,
            base_channels=base_channels,
            out_dim=out_dim,
            num_blocks=num_blocks,
            channels=channels,
            strides=strides,
            temporal_kernel=temporal_kernel,
            partition=partition,
            max_hop=max_hop,
            dilation=dilation,
            normalization=normalization,
            edge_importance=edge_importance,
            dropout=dropout,
            residual=residual,
            data_norm=data_norm,
            num_bodies=num_bodies,
            renormalize_subgraph=renormalize_subgraph,
        )
