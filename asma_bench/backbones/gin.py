"""Graph isomorphism network over the joints of each frame, with temporal convolutions.

Each block applies the GIN update (Xu et al., ICLR 2019, eq. 4.1) to every frame's joint
graph — sum over the skeleton neighbours, ``(1 + eps)`` times the joint itself, then a
2-layer MLP — followed by a temporal convolution, as ST-GCN interleaves its spatial and
temporal convolutions. Only dense ops (einsum with the adjacency), so it exports to ONNX.

>>> model = GIN("ntu25", channels=(8, 8))
>>> model(torch.randn(2, 3, 16, 25, 1)).shape
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
    residual_branch,
    resolve_channels,
    temporal_conv,
)
from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.errors import ConfigError


class GINBlock(nn.Module):
    """GIN update per frame, ``h'_v = MLP((1 + eps) h_v + sum_{u in N(v)} h_u)`` (Xu et al.
    2019, eq. 4.1), then temporal conv (stride), BN, dropout, + residual, ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        temporal_kernel: int = 9,
        stride: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
        learn_eps: bool = True,
    ):
        super().__init__()
        if learn_eps:
            self.eps = nn.Parameter(torch.zeros(1))
        else:
            self.register_buffer("eps", torch.zeros(1))
        self.mlp = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )
        self.tcn = temporal_conv(out_channels, temporal_kernel, stride, dropout)
        self.residual = residual_branch(in_channels, out_channels, stride, residual)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        if adjacency.dim() == 2:
            neighbours = torch.einsum("nctv,vw->nctw", x, adjacency)
        else:
            neighbours = torch.einsum("nctv,nvw->nctw", x, adjacency)
        y = self.tcn(self.mlp((1 + self.eps) * x + neighbours))
        if self.residual is not None:
            y = y + self.residual(x)
        return self.relu(y)


class GIN(SkeletonBackbone):
    """GIN backbone: per-frame GIN blocks over the skeleton graph with temporal convs between.

    Channels/strides as for :class:`~asma_bench.backbones.stgcn.STGCN` (default 5 blocks
    32, 32, 64 (stride 2), 128 (stride 2), 256). The neighbour sum uses the layout's 0/1
    adjacency; drop-mode inputs (``kept_joints``) use each sample's induced sub-graph, so
    a kept joint sums over its kept neighbours. ``learn_eps``: GIN-eps (True) or GIN-0.
    """

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
        learn_eps: bool = True,
        dropout: float = 0.0,
        residual: bool = True,
        data_norm: str = "joint",
        num_bodies: int = 2,
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
        self.register_buffer("adjacency", torch.from_numpy(self.layout.adjacency.copy()))
        self.data_norm = JointDataNorm(in_channels, self.layout.num_joints, data_norm, num_bodies)
        widths = (in_channels, *self.channels)
        self.blocks = nn.ModuleList(
            GINBlock(
                c_in,
                c_out,
                temporal_kernel,
                stride,
                dropout,
                residual=residual and i > 0,
                learn_eps=learn_eps,
            )
            for i, (c_in, c_out, stride) in enumerate(
                zip(widths[:-1], widths[1:], self.strides, strict=True)
            )
        )

    def forward_joint_features(self, x: Tensor, kept_joints: Tensor | None = None) -> Tensor:
        self.check_input(x, kept_joints)
        n, _, _, _, m = x.shape
        h = self.data_norm(x, kept_joints)
        if kept_joints is None:
            adjacency = self.adjacency
        else:
            kept = kept_joints.long().repeat_interleave(m, dim=0)
            adjacency = gather_subgraph(self.adjacency[None], kept)[:, 0]
        for block in self.blocks:
            h = block(h, adjacency)
        _, d, t, v = h.shape
        return h.view(n, m, d, t, v).permute(0, 2, 3, 4, 1)
