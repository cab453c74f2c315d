"""Barlow Twins on triplets of skeleton views (ASMa Sec. 3.3, eqs. 5–8).

References: docs/references.md#barlow-twins, #asma.

One encoder sees three streams — the anchor, a spatially masked view and a temporally
masked view — and one projector maps all three; the loss is Barlow Twins between the
anchor and each masked view. Any masking strategy fits either slot.

>>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
>>> float(barlow_twins_loss(z1, z1, lambd=0.0)) < 1e-3
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from asma_bench.errors import ConfigError
from asma_bench.objectives.base import (
    Objective,
    check_mask_mode,
    check_non_negative,
    check_positive,
    encoder_dim,
    masked_view,
    resolve_strategy,
)

STANDARDIZATIONS = ("batch", "correlation")


def cross_correlation(
    z1: Tensor,
    z2: Tensor,
    standardize: str = "batch",
    eps: float = 1e-5,
    gather: bool | None = None,
) -> Tensor:
    """Cross-correlation matrix C (D, D) of two batches of projections (N, D).

    ASMa eq. 5 (Barlow Twins, Zbontar et al. ICML 2021, eq. 2) defines C_ij as the
    normalised correlation ``sum_b z1_bi z2_bj / (||z1_:i|| ||z2_:j||)``.
    ``standardize="batch"`` (default, the lineage's code): each dimension is centred and
    divided by its batch standard deviation (``BatchNorm1d(affine=False)`` with batch
    statistics, biased variance, ``eps``), then ``C = z1ᵀ z2 / N`` — equal to eq. 5 for
    centred features. ``standardize="correlation"``: eq. 5 literally, without centring.

    ``gather``: first gather the batches of every rank of the initialised process group
    (:func:`gather_batch`), so C is that of the whole distributed batch; None (default)
    gathers whenever a group of more than one rank is initialised.
    """
    a, b, scale = _standardized(z1, z2, standardize, eps, gather)
    return a.T @ b / scale


def barlow_twins_loss(
    z1: Tensor,
    z2: Tensor,
    lambd: float = 2e-4,
    standardize: str = "batch",
    eps: float = 1e-5,
    gather: bool | None = None,
) -> Tensor:
    """``L = sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2`` (ASMa eqs. 6–7; Barlow Twins
    eq. 1) with C from :func:`cross_correlation` (ASMa eq. 5).

    With C = aᵀb / s for the standardised batches a, b (N, D), only C's diagonal
    ``sum_n a_ni b_ni / s`` and ``sum_ij C_ij^2 = <a aᵀ, b bᵀ>_F / s^2`` enter the loss; when
    N < D (the lineage: 6144 dimensions, batches of 128) the two N × N Gram matrices cost
    N/D of the D × D matrix C. Both routes compute the same value up to rounding.
    """
    a, b, scale = _standardized(z1, z2, standardize, eps, gather)
    n, d = a.shape
    if d <= n:
        c = a.T @ b / scale
        diagonal = torch.diagonal(c)
        squares = c.pow(2).sum()
    else:
        diagonal = (a * b).sum(dim=0) / scale
        squares = ((a @ a.T) * (b @ b.T)).sum() / scale**2
    on_diag = (1 - diagonal).pow(2).sum()
    off_diag = squares - diagonal.pow(2).sum()
    return on_diag + lambd * off_diag


def _standardized(
    z1: Tensor, z2: Tensor, standardize: str, eps: float, gather: bool | None
) -> tuple[Tensor, Tensor, float]:
    """(a, b, s) with C = aᵀ b / s (see :func:`cross_correlation`), after validation."""
    if standardize not in STANDARDIZATIONS:
        raise ConfigError(
            f"standardize={standardize!r} is not one of {', '.join(STANDARDIZATIONS)}"
        )
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ConfigError(
            f"Barlow Twins needs two (N, D) batches of equal shape, got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if gather if gather is not None else _group_size() > 1:
        z1, z2 = gather_batch(z1), gather_batch(z2)
    n = z1.shape[0]
    if n < 2:
        raise ConfigError(f"Barlow Twins needs a batch of at least 2 samples, got {n}")
    # float32 at least: the sums over the batch lose too much in half precision
    dtype = torch.promote_types(z1.dtype, torch.float32)
    z1, z2 = z1.to(dtype), z2.to(dtype)
    if standardize == "batch":
        a = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
        b = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
        return a, b, float(n)
    a = z1 / z1.norm(dim=0).clamp_min(eps)
    b = z2 / z2.norm(dim=0).clamp_min(eps)
    return a, b, 1.0


def gather_batch(z: Tensor) -> Tensor:
    """Concatenate ``z`` (N, ...) of every rank, in rank order, keeping gradients.

    Each rank computes the same loss from the gathered batch, so the backward pass sums the
    gradients of all ranks for this rank's rows; DistributedDataParallel then averages the
    parameter gradients over the ranks, which gives the gradient of the single-process loss
    on the whole batch. Every rank must hold the same number of rows. Without an
    initialised group of more than one rank, ``z`` is returned unchanged.
    """
    if _group_size() <= 1:
        return z
    return _GatherRows.apply(z)


class _GatherRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, z: Tensor) -> Tensor:
        parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, z.contiguous())
        ctx.rows = slice(dist.get_rank() * len(z), (dist.get_rank() + 1) * len(z))
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rows]


def _group_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class BarlowTwinsLoss(nn.Module):
    """Module form of :func:`barlow_twins_loss` (ASMa eqs. 5–7), λ = 2e-4 by default."""

    def __init__(self, lambd: float = 2e-4, standardize: str = "batch", eps: float = 1e-5):
        super().__init__()
        self.lambd = check_non_negative(lambd, "lambd")
        self.eps = check_positive(eps, "eps")
        if standardize not in STANDARDIZATIONS:
            raise ConfigError(
                f"standardize={standardize!r} is not one of {', '.join(STANDARDIZATIONS)}"
            )
        self.standardize = standardize

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        return barlow_twins_loss(z1, z2, self.lambd, self.standardize, self.eps)


class Projector(nn.Sequential):
    """Barlow Twins projector: Linear layers (no bias) with BatchNorm + ReLU between
    (ASMa Sec. 3.3). ``dims`` is the whole chain, input first: the lineage's
    256 → 6144 → 6144 → 6144 is ``(256, 6144, 6144, 6144)``."""

    def __init__(self, dims: Sequence[int] = (256, 6144, 6144, 6144)):
        dims = tuple(dims)
        if len(dims) < 2 or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims
        ):
            raise ConfigError(
                f"projector_dims={list(dims)!r} must be at least 2 integers >= 1 (input first)"
            )
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(a, b, bias=False))
            if i < len(dims) - 2:
                layers += [nn.BatchNorm1d(b), nn.ReLU()]
        super().__init__(*layers)
        self.in_dim, self.out_dim = dims[0], dims[-1]


class TripletBarlowTwins(Objective):
    """ASMa's per-encoder objective: ``L = L1 + L2`` (eq. 8), L1 = Barlow Twins(anchor,
    spatially masked view), L2 = Barlow Twins(anchor, temporally masked view), one shared
    projector.

    ``spatial``/``temporal`` are masking strategies (callables ``(x, generator, lengths) ->
    bool (N, T, V)``) or registered masking names built for the encoder's layout; either
    slot takes any strategy (``None`` leaves that view unmasked). ``mask_mode``: ``zero``
    fills masked positions with 0; ``drop`` removes masked joints (the encoder gets
    ``kept_joints``) or frames, as PSTL does. ``projector_dims`` starts with the encoder's
    ``out_dim``; the default is ``(out_dim, 6144, 6144, 6144)``.
    """

    uses_projector = True  # pretrain.projector_dim and pretrain.lambd size it

    num_views = 3

    def __init__(
        self,
        encoder: nn.Module,
        spatial: Any,
        temporal: Any,
        projector_dims: Sequence[int] | None = None,
        lambd: float = 2e-4,
        mask_mode: str = "zero",
        standardize: str = "batch",
        eps: float = 1e-5,
    ):
        super().__init__()
        self.encoder = encoder
        self.spatial = resolve_strategy(spatial, encoder, "spatial")
        self.temporal = resolve_strategy(temporal, encoder, "temporal")
        self.mask_mode = check_mask_mode(mask_mode)
        dim = encoder_dim(encoder)
        dims = (dim, 6144, 6144, 6144) if projector_dims is None else tuple(projector_dims)
        if dims and dims[0] != dim:
            raise ConfigError(
                f"projector_dims={list(dims)!r} must start with the encoder's out_dim {dim}"
            )
        self.projector = Projector(dims)
        self.criterion = BarlowTwinsLoss(lambd, standardize, eps)

    def forward(
        self,
        anchor: Tensor,
        spatial_view: Tensor,
        temporal_view: Tensor,
        generator: torch.Generator | None = None,
        lengths: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Losses for three augmented views (N, C, T, V, M) of the same samples."""
        z_anchor = self.projector(self.encoder(anchor))
        x_s, kept_s = masked_view(spatial_view, [self.spatial], self.mask_mode, generator, lengths)
        z_spatial = self.projector(self.encoder(x_s, kept_joints=kept_s))
        x_t, kept_t = masked_view(
            temporal_view, [self.temporal], self.mask_mode, generator, lengths
        )
        z_temporal = self.projector(self.encoder(x_t, kept_joints=kept_t))
        l1 = self.criterion(z_anchor, z_spatial)
        l2 = self.criterion(z_anchor, z_temporal)
        return {"loss": l1 + l2, "l1": l1, "l2": l2}
