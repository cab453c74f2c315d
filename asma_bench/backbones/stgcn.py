"""ST-GCN as used by the SSL lineage (AimCLR, CrosSCLR, PSTL, ASMa).

Spatial temporal graph convolutional network (Yan et al., AAAI 2018). The lineage runs it
at a quarter of the standard width: 16 base channels, 10 blocks (3→16, 16, 16, 16, →32
stride 2, 32, 32, →64 stride 2, 64, →256), the 3-subset spatial partition, temporal
kernel 9, learnable edge importance, dropout 0.5 and residual connections; features are
averaged over frames, joints and bodies into 256 dimensions.

>>> model = STGCN("ntu25", base_channels=4, num_blocks=3, out_dim=8)
>>> model(torch.randn(2, 3, 16, 25, 2)).shape
torch.Size([2, 8])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from asma_bench.backbones.graph import (
    JointDataNorm,
    SkeletonBackbone,
    check_kernel,
    check_probability,
    gather_subgraph,
    normalize_partitions,
    partition_masks,
    resolve_channels,
    subgraph_adjacency,
)
from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.errors import ConfigError


class GraphConv(nn.Module):
    """Spatial graph convolution with K partition subsets (ST-GCN, Yan et al. 2018, eq. 10).

    ``out[i] = sum_k sum_j A[k, j, i] * (W_k x[j] + b_k)`` computed as one 1×1 convolution
    producing K·C' channels followed by a single einsum with the adjacency, which may be
    shared (K, V, V) or per sample (B, K, V', V').
    """

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int):
        super().__init__()
        self.num_subsets = num_subsets
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, num_subsets * out_channels, kernel_size=1)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        b, _, t, v = x.shape
        y = self.conv(x).view(b, self.num_subsets, self.out_channels, t, v)
        if adjacency.dim() == 3:
            return torch.einsum("nkctv,kvw->nctw", y, adjacency)
        return torch.einsum("nkctv,nkvw->nctw", y, adjacency)


class STGCNBlock(nn.Module):
    """One ST-GCN unit: graph conv → BN, ReLU, temporal conv (stride), BN, dropout → + residual
    → ReLU (ST-GCN, Yan et al. 2018, Sec. 3.7 "Implementing ST-GCN")."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_subsets: int,
        temporal_kernel: int = 9,
        stride: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
    ):
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, num_subsets)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(
                out_channels,
                out_channels,
                (temporal_kernel, 1),
                (stride, 1),
                ((temporal_kernel - 1) // 2, 0),
            ),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout),
        )
        if not residual:
            self.residual: nn.Module | None = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU()

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        y = self.tcn(self.gcn(x, adjacency))
        if self.residual is not None:
            y = y + self.residual(x)
        return self.relu(y)


class STGCN(SkeletonBackbone):
    """The SSL lineage's ST-GCN (16 base channels, 10 blocks, 256-d output by default).

    Blocks come from ``channels``/``strides`` when given, else from ``base_channels``,
    ``num_blocks`` and ``out_dim`` (see :func:`~asma_bench.backbones.graph.stage_channels`).
    As in the lineage, the first block has no residual and no dropout.

    ``data_norm``: the input BatchNorm (``joint`` = the lineage's C·V channels shared by the
    bodies; ``body_joint`` = C·V·M channels, needs ``num_bodies``; ``channel``; ``none``).
    ``renormalize_subgraph``: for drop-mode inputs, keep the full graph's normalisation on the
    kept joints (False, PSTL) or re-normalise each sample's sub-graph (True).
    ``normalization``: ``column`` (public ST-GCN code) or ``symmetric`` (ST-GCN eq. 9 style).
    Weights keep PyTorch's default initialisation.
    """

    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        in_channels: int = 3,
        *,
        base_channels: int = 16,
        out_dim: int | None = None,
        num_blocks: int = 10,
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
        super().__init__()
        self.layout = get_layout(layout)
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ConfigError(f"in_channels={in_channels!r} must be an integer >= 1")
        self.in_channels = in_channels
        self.channels, self.strides = resolve_channels(
            channels, strides, base_channels, out_dim, num_blocks, default_out_dim=256
        )
        self.out_dim = self.channels[-1]
        check_kernel(temporal_kernel)
        check_probability(dropout, "dropout")
        self.normalization = normalization
        self.renormalize_subgraph = bool(renormalize_subgraph)

        masks = torch.from_numpy(partition_masks(self.layout, partition, max_hop, dilation))
        self.register_buffer("partitions", masks, persistent=False)
        self.register_buffer("adjacency", normalize_partitions(masks, normalization))
        k, v = masks.shape[0], self.layout.num_joints
        self.data_norm = JointDataNorm(in_channels, v, data_norm, num_bodies)

        blocks = []
        widths = (in_channels, *self.channels)
        for i, (c_in, c_out, stride) in enumerate(
            zip(widths[:-1], widths[1:], self.strides, strict=True)
        ):
            first = i == 0
            blocks.append(
                STGCNBlock(
                    c_in,
                    c_out,
                    k,
                    temporal_kernel,
                    stride,
                    dropout=0.0 if first else dropout,
                    residual=residual and not first,
                )
            )
        self.blocks = nn.ModuleList(blocks)
        self.edge_importance = (
            nn.ParameterList([nn.Parameter(torch.ones(k, v, v)) for _ in blocks])
            if edge_importance
            else None
        )

    def forward_joint_features(self, x: Tensor, kept_joints: Tensor | None = None) -> Tensor:
        self.check_input(x, kept_joints)
        n, _, _, _, m = x.shape
        h = self.data_norm(x, kept_joints)
        if kept_joints is None:
            adjacency = self.adjacency
            kept = None
        else:
            kept = kept_joints.long().repeat_interleave(m, dim=0)  # rows are (sample, body)
            adjacency = subgraph_adjacency(
                self.adjacency,
                self.partitions,
                kept,
                self.renormalize_subgraph,
                self.normalization,
            )
        for i, block in enumerate(self.blocks):
            a = adjacency
            if self.edge_importance is not None:
                weight = self.edge_importance[i]
                a = a * (weight if kept is None else gather_subgraph(weight, kept))
            h = block(h, a)
        b, d, t, v = h.shape
        return h.view(n, m, d, t, v).permute(0, 2, 3, 4, 1)
