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
    residual_branch,
    resolve_channels,
    subgraph_adjacency,
    temporal_conv,
)
from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.errors import ConfigError


class GraphConv(nn.Module):
    """Spatial graph convolution with K partition subsets (ST-GCN, Yan et al. 2018, eq. 10).

    ``out[i] = sum_k sum_j A[k, j, i] * (W_k x[j] + b_k)`` with one 1×1 convolution holding
    the K·C' output channels of every W_k. The adjacency may be shared (K, V, V) or per
    sample (B, K, V', V').

    :meth:`forward_rows` computes the same sum in the order
    ``sum_k W_k (sum_j A[k, j, i] x[j]) + sum_k (sum_j A[k, j, i]) b_k`` on channels-last
    rows (B, T, V, C): the neighbourhood sum runs on the C input channels (never more than
    the K·C' mixed ones), one small (V'·K × V) @ (V × C) product per frame, whose output
    rows are already the (frame, joint) rows the K subset weights need; those then act as
    one matrix product over K·C channels. The two orders differ only in rounding.
    """

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int):
        super().__init__()
        self.num_subsets = num_subsets
        self.out_channels = out_channels
        self.conv = nn.Conv2d(in_channels, num_subsets * out_channels, kernel_size=1)

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """(B, C, T, V) → (B, C', T, V')."""
        return self.forward_rows(x.permute(0, 2, 3, 1), adjacency).permute(0, 3, 1, 2)

    def forward_rows(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """Channels-last form: x (B, T, V, C) → (B, T, V', C'), contiguous."""
        b, t, v, c = x.shape
        k, co = self.num_subsets, self.out_channels
        w = adjacency.shape[-1]
        bias = self.conv.bias.view(k, co)
        # The bias term uses broadcast products: a matmul would count as FLOPs that do not
        # scale with the batch.
        weight = self.conv.weight.view(k, co, c).transpose(0, 1).reshape(co, k * c)
        if adjacency.dim() == 3:
            # one small (W·K × V) @ (V × C) product per frame, straight into the
            # (frame, joint) rows the subset weights need: no transposes
            a_rows = adjacency.permute(2, 0, 1).reshape(w * k, v)
            out = _AggregateMix.apply(x.reshape(b * t, v, c), a_rows, weight).view(b, t, w, co)
            offset = (adjacency.sum(dim=1)[:, :, None] * bias[:, None]).sum(dim=0)  # (W, C')
        else:
            # per-sample graphs: joints last, one product per sample
            xv = x.permute(0, 3, 1, 2).reshape(b, c * t, v)
            gathered = torch.bmm(xv, adjacency.permute(0, 2, 1, 3).reshape(b, v, k * w))
            rows = gathered.view(b, c, t, k, w).permute(0, 2, 4, 3, 1).reshape(b * t * w, k * c)
            out = nn.functional.linear(rows, weight).view(b, t, w, co)
            offset = (adjacency.sum(dim=2)[..., None] * bias[:, None]).sum(dim=1)[:, None]
        return out + offset


class _AggregateMix(torch.autograd.Function):
    """``rows = A x`` per frame, then ``rows Wᵀ``: x (F, V, C), A (W·K, V), W (C', K·C) →
    (F·W, C').

    The same products as ``linear(bmm(A, x), W)``, but only x is kept for the backward
    pass: the aggregated rows (K times x's size, the largest tensor of a block) are
    recomputed there by one small product per frame, which costs a fraction of the
    matrix products the backward pass runs anyway.
    """

    @staticmethod
    def forward(ctx, x: Tensor, a_rows: Tensor, weight: Tensor) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(x, a_rows, weight)
        rows = torch.bmm(a_rows.expand(len(x), *a_rows.shape), x)  # (F, W·K, C)
        return nn.functional.linear(rows.view(-1, weight.shape[1]), weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:  # noqa: ANN001
        saved = ctx.saved_tensors
        # under autocast the forward products ran in grad's (lower) precision: so do these
        x, a_rows, weight = (t.to(grad.dtype) for t in saved)
        f, v, c = x.shape
        wk = a_rows.shape[0]
        grad_x = grad_a = grad_w = None
        grad_rows = grad @ weight  # (F·W, K·C)
        gathered = grad_rows.view(f, wk, c)
        if ctx.needs_input_grad[2]:
            rows = torch.bmm(a_rows.expand(f, wk, v), x).view(grad_rows.shape)
            grad_w = (grad.T @ rows).to(saved[2].dtype)
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(a_rows.T.expand(f, v, wk), gathered).to(saved[0].dtype)
        if ctx.needs_input_grad[1]:
            grad_a = torch.bmm(gathered, x.transpose(1, 2)).sum(dim=0).to(saved[1].dtype)
        return grad_x, grad_a, grad_w


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
        self.tcn = temporal_conv(
            out_channels, temporal_kernel, stride, dropout, pre_activation=True
        )
        self.residual = residual_branch(in_channels, out_channels, stride, residual)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """(B, C, T, V) → (B, C', T', V')."""
        return self.forward_rows(x.permute(0, 2, 3, 1), adjacency).permute(0, 3, 1, 2)

    def forward_rows(self, x: Tensor, adjacency: Tensor) -> Tensor:
        """Channels-last form: x (B, T, V, C) → (B, T', V', C'), contiguous.

        The same layers as ``tcn``/``residual`` applied in a channels-last layout, where
        BatchNorm and the temporal convolution have fast CPU kernels. Dropout is
        :func:`rows_dropout` (the same Bernoulli(1 − p) keep mask and 1 / (1 − p) scaling as
        ``nn.Dropout``, drawn several times faster on CPU).
        """
        bn1, _, conv, bn2, drop = self.tcn
        y = rows_batch_norm(bn1, self.gcn.forward_rows(x, adjacency), relu=True)
        y = rows_batch_norm(bn2, rows_conv(conv, y))
        y = rows_dropout(y, drop.p, self.training and drop.training)
        if self.residual is None:
            return torch.relu(y)
        if isinstance(self.residual, nn.Identity):
            y = y + x
        else:
            res_conv, res_bn = self.residual
            y = y + rows_batch_norm(res_bn, rows_conv(res_conv, x))
        return y.relu_()


def rows_batch_norm(bn: nn.Module, x: Tensor, relu: bool = False) -> Tensor:
    """``bn`` (a BatchNorm over C channels) on channels-last rows (..., C), then ReLU if
    ``relu``.

    Calls the module itself on an (R, C, 1, 1) view, so its running statistics, momentum
    and any SyncBatchNorm behaviour are exactly those of the module on the NCHW tensor.
    """
    c = x.shape[-1]
    y = bn(x.reshape(-1, c, 1, 1))
    if relu:
        y = y.relu_()  # in place on the BatchNorm output, whose backward does not need it
    return y.view(x.shape)


def rows_conv(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """A (k × 1) temporal ``conv`` on channels-last rows x (B, T, V, C) → (B, T', V, C')."""
    if conv.kernel_size == (1, 1) and conv.padding == (0, 0):
        stride = conv.stride[0]
        x = x[:, ::stride] if stride > 1 else x
        return nn.functional.linear(x, conv.weight.flatten(1), conv.bias)
    y = conv(x.permute(0, 3, 1, 2))  # a channels-last view: no copy, channels-last kernel
    return y.permute(0, 2, 3, 1).contiguous()


def rows_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout: zero each element with probability ``p``, scale the rest by 1 / (1 − p)."""
    if not training or p == 0:
        return x
    return _Dropout.apply(x, keep_mask(x, p), 1.0 / (1.0 - p))


class _Dropout(torch.autograd.Function):
    """``x * keep * scale`` that keeps the boolean mask (one byte per element) for the
    backward pass instead of the float factors (four): the same values and gradients as
    ``x * keep.to(x.dtype).mul_(scale)``."""

    @staticmethod
    def forward(ctx, x: Tensor, keep: Tensor, scale: float) -> Tensor:  # noqa: ANN001
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x * keep.to(x.dtype).mul_(scale)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, None]:  # noqa: ANN001
        (keep,) = ctx.saved_tensors
        return grad * keep.to(grad.dtype).mul_(ctx.scale), None, None


def keep_mask(x: Tensor, p: float) -> Tensor:
    """Bool mask shaped like ``x``, each element kept with probability exactly 1 − p.

    When 256·p is an integer (p = 0.5, the lineage's dropout) each element uses 8 uniform
    random bits, four per 32-bit draw, so the generator runs a quarter as often as for
    ``torch.rand``; otherwise one float draw per element (``u >= p``).
    """
    threshold = p * 256
    if not threshold.is_integer():
        return torch.rand_like(x) >= p
    words = torch.randint(-(2**31), 2**31, ((x.numel() + 3) // 4,), dtype=torch.int32,
                          device=x.device)  # fmt: skip
    return words.view(torch.uint8)[: x.numel()].view(x.shape) >= int(threshold)


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
        # channels-last rows (N·M, T, V, C) through the blocks
        h = self.data_norm(x, kept_joints).permute(0, 2, 3, 1).contiguous()
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
            h = block.forward_rows(h, a)
        _, t, v, d = h.shape
        return h.view(n, m, t, v, d).permute(0, 4, 2, 3, 1)
