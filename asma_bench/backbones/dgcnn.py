"""Dynamic graph CNN over the joints of each frame, with temporal convolutions.

Each block builds a k-nearest-neighbour graph on the current joint features of every
frame (dense pairwise distances + top-k), applies EdgeConv (Wang et al., ACM TOG 2019,
"Dynamic Graph CNN for Learning on Point Clouds", Sec. 3.1: edge feature
``h(x_i, x_j - x_i)``, max over the neighbours), then a temporal convolution. The joint
set is treated as a point set, so nothing depends on the layout's edges and a drop-mode
input is simply a smaller point set. Dense ops only, so it exports to ONNX.

>>> model = DGCNN("ntu25", channels=(8, 8), k=4)
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
    residual_branch,
    resolve_channels,
    temporal_conv,
)
from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.errors import ConfigError


def knn_indices(x: Tensor, k: int) -> Tensor:
    """Indices (B, V, k) of each point's k nearest points (itself included, as in DGCNN)
    under the Euclidean distance between feature columns of ``x`` (B, C, V)."""
    inner = torch.bmm(x.transpose(1, 2), x)
    sq = (x * x).sum(dim=1)
    neg_dist = 2 * inner - sq[:, :, None] - sq[:, None, :]
    return neg_dist.topk(k, dim=-1).indices


class EdgeConv(nn.Module):
    """``x'_i = max_{j in kNN(i)} LeakyReLU(BN(theta (x_j - x_i) + phi x_i))`` — DGCNN's
    asymmetric edge function (Wang et al. 2019, eq. 7–8).

    The linear part is split as ``theta x_j + (phi - theta) x_i`` so the 2C-channel edge
    tensor is never built; the weights are those of one 1×1 conv over ``[x_j - x_i, x_i]``.
    """

    def __init__(self, in_channels: int, out_channels: int, k: int):
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(2 * in_channels, out_channels, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        b, c, v = x.shape
        k = min(self.k, v)
        idx = knn_indices(x, k)  # (B, V, k)
        weight = self.conv.weight[:, :, 0, 0]
        theta, phi = weight[:, :c], weight[:, c:]
        sender = torch.einsum("oc,bcv->bvo", theta, x).reshape(b * v, -1)
        receiver = torch.einsum("oc,bcv->bov", phi - theta, x)
        offsets = torch.arange(b, device=x.device)[:, None, None] * v
        gathered = sender[(idx + offsets).reshape(-1)].reshape(b, v, k, -1)
        edges = gathered.permute(0, 3, 1, 2) + receiver[..., None]  # (B, C', V, k)
        return self.act(self.bn(edges)).amax(dim=-1)


class DGCNNBlock(nn.Module):
    """EdgeConv on every frame, then temporal conv (stride), BN, dropout, + residual,
    LeakyReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        k: int,
        temporal_kernel: int = 9,
        stride: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
    ):
        super().__init__()
        self.edge = EdgeConv(in_channels, out_channels, k)
        self.tcn = temporal_conv(out_channels, temporal_kernel, stride, dropout)
        self.residual = residual_branch(in_channels, out_channels, stride, residual)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, v = x.shape
        frames = x.permute(0, 2, 1, 3).reshape(b * t, c, v)
        y = self.edge(frames)
        y = y.reshape(b, t, -1, v).permute(0, 2, 1, 3)
        y = self.tcn(y)
        if self.residual is not None:
            y = y + self.residual(x)
        return self.act(y)


class DGCNN(SkeletonBackbone):
    """DGCNN backbone: per-frame dynamic EdgeConv blocks with temporal convs between.

    Default 4 blocks 32, 64 (stride 2), 128 (stride 2), 256 with k = 8 neighbours (the
    paper's k = 20 is for 1024-point clouds; a skeleton has 20–25 joints). DGCNN's final
    concatenation of all block outputs is left out because temporal strides give the blocks
    different lengths; the last block's output is pooled like the other backbones.
    ``data_norm`` defaults to ``channel`` (one BatchNorm per coordinate) so the model stays
    independent of joint identity; ``joint`` gives per-joint statistics (uses
    ``kept_joints`` for drop-mode inputs).
    """

    def __init__(
        self,
        layout: str | SkeletonLayout = "ntu25",
        in_channels: int = 3,
        *,
        base_channels: int = 32,
        out_dim: int | None = None,
        num_blocks: int = 4,
        channels: Sequence[int] | None = None,
        strides: Sequence[int] | None = None,
        k: int = 8,
        temporal_kernel: int = 9,
        dropout: float = 0.0,
        residual: bool = True,
        data_norm: str = "channel",
        num_bodies: int = 2,
    ):
        super().__init__()
        self.layout = get_layout(layout)
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ConfigError(f"in_channels={in_channels!r} must be an integer >= 1")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k={k!r} must be an integer >= 1")
        self.in_channels = in_channels
        self.k = k
        self.channels, self.strides = resolve_channels(
            channels, strides, base_channels, out_dim, num_blocks, default_out_dim=256
        )
        self.out_dim = self.channels[-1]
        check_kernel(temporal_kernel)
        check_probability(dropout, "dropout")
        self.data_norm = JointDataNorm(in_channels, self.layout.num_joints, data_norm, num_bodies)
        widths = (in_channels, *self.channels)
        self.blocks = nn.ModuleList(
            DGCNNBlock(
                c_in, c_out, k, temporal_kernel, stride, dropout, residual=residual and i > 0
            )
            for i, (c_in, c_out, stride) in enumerate(
                zip(widths[:-1], widths[1:], self.strides, strict=True)
            )
        )

    def forward_joint_features(self, x: Tensor, kept_joints: Tensor | None = None) -> Tensor:
        per_joint = self.data_norm.mode in ("joint", "body_joint")
        self.check_input(x, kept_joints, require_layout=per_joint)
        n, _, _, _, m = x.shape
        h = self.data_norm(x, kept_joints if per_joint else None)
        for block in self.blocks:
            h = block(h)
        _, d, t, v = h.shape
        return h.view(n, m, d, t, v).permute(0, 2, 3, 4, 1)
