"""Shared pieces of the skeleton backbones: the ST-GCN partitioned adjacency, per-sample
sub-graphs for drop-mode masks, the input BatchNorm, channel plans and the common interface.

Every graph is built from a :class:`~asma_bench.data.layouts.SkeletonLayout` (its hop
distances and centre joint), never from per-dataset tables.

>>> a = graph_adjacency("ntu25")  # ST-GCN 'spatial' partition, max_hop=1
>>> a.shape
(3, 25, 25)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.errors import ConfigError

PARTITION_STRATEGIES = ("uniform", "distance", "spatial")
NORMALIZATIONS = ("column", "symmetric")
DATA_NORMS = ("joint", "body_joint", "channel", "none")


# --- adjacency ----------------------------------------------------------------------------


def partition_masks(
    layout: str | SkeletonLayout,
    strategy: str = "spatial",
    max_hop: int = 1,
    dilation: int = 1,
) -> np.ndarray:
    """0/1 partition of the neighbourhood graph into K subsets, shape (K, V, V).

    Entry ``[k, j, i]`` is 1 when joint ``j`` sends to joint ``i`` through subset ``k``
    (graph convolutions aggregate ``out[i] = sum_j x[j] * A[k, j, i]``). Neighbourhoods are
    the joints within ``max_hop`` hops, keeping hop counts ``0, dilation, 2 * dilation, ...``.

    Strategies (ST-GCN, Yan et al., AAAI 2018, Sec. 3.6 "Partition Strategies"):
    ``uniform`` — one subset; ``distance`` — one subset per hop count (hop 0 = the joint
    itself); ``spatial`` — for each hop, the root subset (hop 0), a centripetal subset (the
    sender is farther from the centre joint than the receiver, so messages move inwards;
    pairs at equal distance join it, as in the public ST-GCN code) and a centrifugal subset
    (the sender is closer to the centre). With ``max_hop=1`` that is the 3 subsets of the
    SSL lineage.
    """
    layout = get_layout(layout)
    if strategy not in PARTITION_STRATEGIES:
        raise ConfigError(
            f"partition strategy {strategy!r} is not one of {', '.join(PARTITION_STRATEGIES)}"
        )
    if isinstance(max_hop, bool) or not isinstance(max_hop, int) or max_hop < 1:
        raise ConfigError(f"max_hop={max_hop!r} must be an integer >= 1")
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ConfigError(f"dilation={dilation!r} must be an integer >= 1")
    hop = layout.hops_within(max_hop)  # (V, V), inf beyond max_hop hops or unreachable
    valid_hops = range(0, max_hop + 1, dilation)
    if strategy == "uniform":
        within = np.isin(hop, list(valid_hops))
        return within[None].astype(np.float32)
    if strategy == "distance":
        return np.stack([(hop == h) for h in valid_hops]).astype(np.float32)
    # spatial: compare the sender's (row j) and the receiver's (column i) distance to the centre
    depth = layout.hops_from(layout.center)  # the graph is undirected: hop[:, centre]
    sender_depth, receiver_depth = depth[:, None], depth[None, :]
    subsets = []
    for h in valid_hops:
        at_hop = hop == h
        if h == 0:
            subsets.append(at_hop)
            continue
        subsets.append(at_hop & (sender_depth >= receiver_depth))
        subsets.append(at_hop & (sender_depth < receiver_depth))
    return np.stack(subsets).astype(np.float32)


def normalize_partitions(masks: Tensor | np.ndarray, normalization: str = "column") -> Tensor:
    """Normalise partition masks (..., K, V, V) by the degree of the whole neighbourhood.

    ``column`` (default, the public ST-GCN code's ``normalize_digraph``): each entry
    ``[k, j, i]`` is divided by receiver ``i``'s neighbourhood size (column sum over all
    subsets, self included), so a graph convolution averages over neighbours.
    ``symmetric``: ``D^-1/2 A_k D^-1/2`` with D the whole neighbourhood's degree (the
    normalisation of ST-GCN's eq. 9, Yan et al. 2018, applied to every subset).
    Joints without any neighbour (possible only in sub-graphs) keep all-zero columns.
    """
    masks = torch.as_tensor(masks)
    if normalization not in NORMALIZATIONS:
        raise ConfigError(
            f"normalization={normalization!r} is not one of {', '.join(NORMALIZATIONS)}"
        )
    degree = masks.sum(dim=-3).sum(dim=-2)  # (..., V): column sums of the full adjacency
    inv = torch.where(degree > 0, 1.0 / degree.clamp_min(1e-12), torch.zeros_like(degree))
    if normalization == "column":
        return masks * inv[..., None, None, :]
    root = inv.sqrt()
    return masks * root[..., None, :, None] * root[..., None, None, :]


def graph_adjacency(
    layout: str | SkeletonLayout,
    strategy: str = "spatial",
    max_hop: int = 1,
    dilation: int = 1,
    normalization: str = "column",
) -> np.ndarray:
    """The normalised partitioned adjacency (K, V, V) of ST-GCN's ``Graph`` class."""
    masks = partition_masks(layout, strategy, max_hop, dilation)
    return normalize_partitions(masks, normalization).numpy().astype(np.float32)


def gather_subgraph(a: Tensor, kept_joints: Tensor) -> Tensor:
    """Per-sample sub-matrices of ``a`` (K, V, V): rows and columns ``kept_joints[b]``.

    Returns (B, K, V', V') for ``kept_joints`` of shape (B, V'), in the order given.
    """
    rows = kept_joints[:, :, None]
    cols = kept_joints[:, None, :]
    return a[:, rows, cols].transpose(0, 1)


def subgraph_adjacency(
    adjacency: Tensor,
    masks: Tensor,
    kept_joints: Tensor,
    renormalize: bool = False,
    normalization: str = "column",
) -> Tensor:
    """Adjacency (B, K, V', V') of each sample's kept joints (drop-mode spatial masks).

    ``renormalize=False`` (PSTL's choice, the default) keeps the full graph's normalisation:
    rows and columns of ``adjacency`` are gathered, so a joint that lost neighbours receives
    a smaller total weight. ``renormalize=True`` re-normalises the 0/1 partition ``masks`` on
    each sub-graph, so every kept joint again averages over its remaining neighbours.
    """
    if renormalize:
        return normalize_partitions(gather_subgraph(masks, kept_joints), normalization)
    return gather_subgraph(adjacency, kept_joints)


# --- channel plans ------------------------------------------------------------------------


def stage_channels(
    base_channels: int, out_dim: int, num_blocks: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Channels and temporal strides of a 3-stage plan ending in ``out_dim``.

    With 10 blocks this is the SSL lineage's ST-GCN: b, b, b, b, 2b (stride 2), 2b, 2b,
    4b (stride 2), 4b, out_dim. Other depths keep the 4 : 3 : 2 split of the blocks before
    the last one (rounded), doubling the width and striding by 2 at each new stage.
    """
    for name, value in (("base_channels", base_channels), ("out_dim", out_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r} must be an integer >= 1")
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
        raise ConfigError(f"num_blocks={num_blocks!r} must be an integer >= 1")
    inner = num_blocks - 1
    first = int(inner * 4 / 9 + 0.5)
    second = int(inner * 7 / 9 + 0.5)
    channels, strides = [], []
    for i in range(inner):
        stage = 0 if i < first else (1 if i < second else 2)
        channels.append(base_channels * 2**stage)
        strides.append(2 if i in (first, second) and stage > 0 else 1)
    channels.append(out_dim)
    strides.append(1)
    return tuple(channels), tuple(strides)


def resolve_channels(
    channels: Sequence[int] | None,
    strides: Sequence[int] | None,
    base_channels: int,
    out_dim: int | None,
    num_blocks: int,
    default_out_dim: int,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Channels/strides from an explicit list or from ``stage_channels``; validated."""
    if channels is None:
        if strides is not None:
            raise ConfigError("strides needs an explicit channels list of the same length")
        return stage_channels(
            base_channels, default_out_dim if out_dim is None else out_dim, num_blocks
        )
    channels = tuple(channels)
    if not channels or any(
        isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels
    ):
        raise ConfigError(f"channels={list(channels)!r} must be a non-empty list of integers >= 1")
    if out_dim is not None and out_dim != channels[-1]:
        raise ConfigError(f"out_dim={out_dim} differs from the last of channels={list(channels)}")
    strides = (1,) * len(channels) if strides is None else tuple(strides)
    if len(strides) != len(channels) or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in strides
    ):
        raise ConfigError(
            f"strides={list(strides)!r} must be {len(channels)} integers >= 1, one per block"
        )
    return channels, strides


def check_probability(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{name}={value!r} must lie in [0, 1)")
    return float(value)


def check_kernel(value: int, name: str = "temporal_kernel") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ConfigError(f"{name}={value!r} must be an odd integer >= 1")
    return value


# --- input normalisation ------------------------------------------------------------------


def temporal_conv(
    channels: int, kernel: int, stride: int, dropout: float, pre_activation: bool = False
) -> nn.Sequential:
    """The temporal unit of a spatio-temporal block: a (kernel × 1) convolution over frames
    with 'same' padding and ``stride``, then BatchNorm and dropout; ``pre_activation``
    prepends BatchNorm + ReLU (ST-GCN's order, where the graph convolution has none)."""
    layers: list[nn.Module] = [nn.BatchNorm2d(channels), nn.ReLU()] if pre_activation else []
    layers += [
        nn.Conv2d(channels, channels, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0)),
        nn.BatchNorm2d(channels),
        nn.Dropout(dropout),
    ]
    return nn.Sequential(*layers)


def residual_branch(
    in_channels: int, out_channels: int, stride: int, enabled: bool = True
) -> nn.Module | None:
    """A block's shortcut: none, the identity, or a strided 1×1 convolution + BatchNorm when
    the channel count or the frame rate changes (ST-GCN's residual)."""
    if not enabled:
        return None
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
        nn.BatchNorm2d(out_channels),
    )


class JointDataNorm(nn.Module):
    """BatchNorm of the raw input that also accepts reduced joint sets (drop-mode masks).

    ``mode``: ``joint`` — one channel per (joint, coordinate), statistics shared by the
    bodies (the SSL lineage's ``BatchNorm1d(C * V)``); ``body_joint`` — one per (body,
    joint, coordinate) (``BatchNorm1d(M * C * V)``, CTR-GCN style; needs ``num_bodies``);
    ``channel`` — one per coordinate, shared by all joints (size/permutation agnostic);
    ``none``.

    With ``kept_joints`` (N, V') the input holds only those joints: each position uses the
    statistics and affine parameters of the joint it holds, and training-mode statistics of
    a joint are computed over the samples that kept it (running statistics of joints that no
    sample kept are left unchanged).

    Input (N, C, T, V', M); output (N * M, C, T, V').
    """

    def __init__(
        self,
        in_channels: int,
        num_joints: int,
        mode: str = "joint",
        num_bodies: int = 2,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
    ):
        super().__init__()
        if mode not in DATA_NORMS:
            raise ConfigError(f"data_norm={mode!r} is not one of {', '.join(DATA_NORMS)}")
        if isinstance(num_bodies, bool) or not isinstance(num_bodies, int) or num_bodies < 1:
            raise ConfigError(f"num_bodies={num_bodies!r} must be an integer >= 1")
        self.mode = mode
        self.in_channels = in_channels
        self.num_joints = num_joints
        self.num_bodies = num_bodies
        width = {
            "joint": in_channels * num_joints,
            "body_joint": num_bodies * in_channels * num_joints,
            "channel": in_channels,
            "none": 0,
        }[mode]
        self.bn = nn.BatchNorm1d(width, eps=eps, momentum=momentum) if width else None

    def forward(self, x: Tensor, kept_joints: Tensor | None = None) -> Tensor:
        n, c, t, v, m = x.shape
        if self.mode == "none":
            return x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        if self.mode == "channel":
            y = self.bn(x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t * v))
            return y.reshape(n * m, c, t, v)
        if self.mode == "body_joint" and m != self.num_bodies:
            raise ConfigError(
                f"data_norm='body_joint' was built for num_bodies={self.num_bodies}, got M={m}"
            )
        # lineage layout: (N, M, V, C, T) flattened so channel index = v * C + c
        y = x.permute(0, 4, 3, 1, 2)
        rows = n * m if self.mode == "joint" else n
        flat = y.reshape(rows, -1, t)
        if kept_joints is None:
            out = self.bn(flat)
        else:
            out = self._normalize_subset(flat, self._channel_ids(kept_joints, m))
        return out.reshape(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)

    def _channel_ids(self, kept_joints: Tensor, m: int) -> Tensor:
        """BatchNorm channel of each (row, position) of the flattened input."""
        c = self.in_channels
        coords = torch.arange(c, device=kept_joints.device)
        ids = kept_joints[:, :, None] * c + coords  # (N, V', C)
        if self.mode == "joint":
            return ids.repeat_interleave(m, dim=0).flatten(1)  # (N*M, V'*C)
        bodies = torch.arange(m, device=kept_joints.device) * (self.num_joints * c)
        return (bodies[None, :, None, None] + ids[:, None]).flatten(1)  # (N, M*V'*C)

    def _normalize_subset(self, flat: Tensor, ids: Tensor) -> Tensor:
        bn = self.bn
        width, length = bn.num_features, flat.shape[-1]
        index = ids.reshape(-1)
        use_batch = self.training or not bn.track_running_stats
        if use_batch:
            counts = torch.zeros(width, dtype=flat.dtype, device=flat.device)
            counts = counts.index_add(0, index, torch.ones_like(index, dtype=flat.dtype)) * length
            denom = counts.clamp_min(1)
            sums = torch.zeros(width, dtype=flat.dtype, device=flat.device)
            mean = sums.index_add(0, index, flat.sum(-1).reshape(-1)) / denom
            dev = flat - mean[ids][..., None]
            sq = torch.zeros(width, dtype=flat.dtype, device=flat.device)
            var = sq.index_add(0, index, dev.pow(2).sum(-1).reshape(-1)) / denom
            if self.training and bn.track_running_stats:
                self._update_running(mean.detach(), var.detach(), counts)
            out = dev * torch.rsqrt(var[ids] + bn.eps)[..., None]
        else:
            out = (flat - bn.running_mean[ids][..., None]) * torch.rsqrt(
                bn.running_var[ids] + bn.eps
            )[..., None]
        if bn.affine:
            out = out * bn.weight[ids][..., None] + bn.bias[ids][..., None]
        return out

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, counts: Tensor) -> None:
        bn = self.bn
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else float(bn.momentum)
        seen = counts > 0
        # running variance is the unbiased estimate, as nn.BatchNorm keeps it
        unbiased = var * counts / (counts - 1).clamp_min(1)
        # New tensors rather than in-place updates: a full-joint pass of the same step (the
        # anchor view) saved the old ones for its backward, which refuses modified tensors.
        mean = (1 - factor) * bn.running_mean + factor * mean
        var = (1 - factor) * bn.running_var + factor * unbiased
        bn.running_mean = torch.where(seen, mean, bn.running_mean)
        bn.running_var = torch.where(seen, var, bn.running_var)


# --- the common interface -----------------------------------------------------------------


class SkeletonBackbone(nn.Module, ABC):
    """A backbone over skeleton batches (N, C, T, V, M).

    Subclasses implement :meth:`forward_joint_features`; the pooled views follow from it:
    ``forward_features`` averages joints and bodies (N, T', D) — the per-frame sequence the
    feature-alignment module attends over — and ``forward`` also averages frames (N, D).
    ``kept_joints`` (N, V') says which layout joints a drop-mode input still holds.
    """

    layout: SkeletonLayout
    in_channels: int
    out_dim: int

    @abstractmethod
    def forward_joint_features(self, x: Tensor, kept_joints: Tensor | None = None) -> Tensor:
        """Per-joint features (N, D, T', V', M)."""

    def forward_features(self, x: Tensor, kept_joints: Tensor | None = None) -> Tensor:
        """Per-frame features (N, T', D), averaged over joints and bodies."""
        return self.forward_joint_features(x, kept_joints).mean(dim=(3, 4)).transpose(1, 2)

    def forward(self, x: Tensor, kept_joints: Tensor | None = None) -> Tensor:
        """Clip features (N, D), averaged over frames, joints and bodies."""
        return self.forward_features(x, kept_joints).mean(dim=1)

    def check_input(
        self, x: Tensor, kept_joints: Tensor | None, require_layout: bool = True
    ) -> None:
        """Validate the batch shape and ``kept_joints`` against it."""
        name = type(self).__name__
        if not isinstance(x, Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ConfigError(f"{name}: x must be a (N, C, T, V, M) tensor, got {shape}")
        n, c, _, v, _ = x.shape
        if c != self.in_channels:
            raise ConfigError(f"{name}: x has {c} channels, the model expects {self.in_channels}")
        if kept_joints is None:
            if require_layout and v != self.layout.num_joints:
                raise ConfigError(
                    f"{name}: x has {v} joints but layout {self.layout.name!r} has "
                    f"{self.layout.num_joints}; pass kept_joints for drop-mode inputs"
                )
            return
        if kept_joints.dim() != 2 or tuple(kept_joints.shape) != (n, v):
            raise ConfigError(
                f"{name}: kept_joints must have shape ({n}, {v}) for x of shape "
                f"{tuple(x.shape)}, got {tuple(kept_joints.shape)}"
            )
        if kept_joints.dtype.is_floating_point or kept_joints.dtype == torch.bool:
            raise ConfigError(f"{name}: kept_joints must hold integer joint indices")
