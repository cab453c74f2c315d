"""MoCo-family contrastive learning on skeletons (as in CrosSCLR and AimCLR).

References: docs/references.md#moco, #crossclr, #aimclr.

A query encoder and a momentum (EMA) key encoder with MLP heads, a queue of past keys as
negatives, InfoNCE at temperature 0.07 (MoCo, He et al. CVPR 2020, eqs. 1–2; MoCo v2's
MLP head). The query view can be masked by any strategies (ASMa's masks used as an
augmentation, ASMa Table 10).
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asma_bench.data.layouts import SkeletonLayout
from asma_bench.errors import ConfigError
from asma_bench.objectives.base import (
    Objective,
    check_mask_mode,
    check_positive,
    encoder_dim,
    masked_view,
    resolve_strategy,
)

if TYPE_CHECKING:  # the config layer is imported for types only
    from asma_bench.config import RunConfig

log = logging.getLogger(__name__)


def info_nce(
    q: Tensor, k: Tensor, queue: Tensor, temperature: float = 0.07
) -> tuple[Tensor, Tensor]:
    """``L_q = -log exp(q·k+/τ) / (exp(q·k+/τ) + sum_i exp(q·k_i/τ))`` (MoCo eq. 1).

    ``q``, ``k``: (N, D) L2-normalised queries and their positive keys; ``queue`` (D, K)
    negatives. Returns the mean loss and the logits (N, 1 + K), positive first.
    """
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue
    logits = torch.cat([positive, negative], dim=1) / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels), logits


class MoCo(Objective):
    """MoCo objective (registered ``moco``).

    ``spatial``/``temporal``: masking strategies (or names) applied together to the query
    view; either may be ``None``. ``encoder`` is the query encoder f_q; the key encoder f_k
    starts as its copy and follows ``θ_k ← m θ_k + (1 − m) θ_q`` (MoCo eq. 2) before each
    training step's keys are computed. Heads: ``Linear(D, D) → ReLU → Linear(D,
    feature_dim)`` (``mlp=True``, as CrosSCLR/AimCLR) or one linear layer. After each
    training step the keys enter the queue at ``queue_ptr``, wrapping around the end (so
    ``queue_size`` need not be a multiple of the batch size), and the pointer advances by
    the batch size modulo ``queue_size``. In eval mode neither the key encoder nor the queue
    change. Single-process, so MoCo's shuffled BatchNorm is not used.
    """

    num_views = 2

    @classmethod
    def config_params(
        cls,
        cfg: RunConfig,
        encoders: Mapping[str, nn.Module],
        layout: SkeletonLayout,
        train_size: int | None = None,
    ) -> dict[str, Any]:
        """As :meth:`Objective.config_params`; a queue longer than the training set (MoCo's
        32,768 negatives on NW-UCLA's 1,000 clips) would mostly hold its random initial
        keys, so unless ``pretrain.params`` sets it the queue is capped at ``train_size``."""
        params = super().config_params(cfg, encoders, layout, train_size)
        default = inspect.signature(cls).parameters["queue_size"].default
        if train_size and "queue_size" not in cfg.pretrain.params and train_size < default:
            log.info("moco: queue of %d negatives (the training set's size)", train_size)
            params["queue_size"] = int(train_size)
        return params

    def __init__(
        self,
        encoder: nn.Module,
        spatial: Any = None,
        temporal: Any = None,
        mask_mode: str = "zero",
        feature_dim: int = 128,
        mlp: bool = True,
        queue_size: int = 32768,
        momentum: float = 0.999,
        temperature: float = 0.07,
    ):
        super().__init__()
        dim = encoder_dim(encoder)
        for name, value in (("feature_dim", feature_dim), ("queue_size", queue_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be an integer >= 1")
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, (int, float))
            or not (0 <= momentum <= 1)
        ):
            raise ConfigError(f"momentum={momentum!r} must lie in [0, 1]")
        if not math.isfinite(check_positive(temperature, "temperature")):
            raise ConfigError(f"temperature={temperature!r} must be finite")
        self.spatial = None if spatial is None else resolve_strategy(spatial, encoder, "spatial")
        self.temporal = (
            None if temporal is None else resolve_strategy(temporal, encoder, "temporal")
        )
        self.mask_mode = check_mask_mode(mask_mode)
        self.momentum = float(momentum)
        self.temperature = float(temperature)
        self.encoder_q = encoder
        self.head_q = (
            nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, feature_dim))
            if mlp
            else nn.Linear(dim, feature_dim)
        )
        self.encoder_k = copy.deepcopy(encoder)
        self.head_k = copy.deepcopy(self.head_q)
        for p in (*self.encoder_k.parameters(), *self.head_k.parameters()):
            p.requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(feature_dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def forward(
        self,
        query_view: Tensor,
        key_view: Tensor,
        generator: torch.Generator | None = None,
        lengths: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """InfoNCE between the (masked) query view and the key view of the same samples."""
        masks = [self.spatial, self.temporal]
        x_q, kept = masked_view(query_view, masks, self.mask_mode, generator, lengths)
        q = F.normalize(self.head_q(self.encoder_q(x_q, kept_joints=kept)), dim=1)
        with torch.no_grad():
            if self.training:
                self.momentum_update()
            k = F.normalize(self.head_k(self.encoder_k(key_view)), dim=1)
        loss, logits = info_nce(q, k, self.queue.clone().detach(), self.temperature)
        if self.training:
            self.enqueue(k)
        return {"loss": loss, "logits": logits}

    @torch.no_grad()
    def momentum_update(self) -> None:
        """``θ_k ← m θ_k + (1 − m) θ_q`` for encoder and head (MoCo eq. 2)."""
        m = self.momentum
        pairs = zip(
            (*self.encoder_q.parameters(), *self.head_q.parameters()),
            (*self.encoder_k.parameters(), *self.head_k.parameters()),
            strict=True,
        )
        for p_q, p_k in pairs:
            p_k.mul_(m).add_(p_q.detach() * (1.0 - m))

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write ``keys`` (B, D) over the oldest queue entries and advance the pointer."""
        size = self.queue.shape[1]
        b = keys.shape[0]
        if b > size:
            raise ConfigError(f"batch of {b} keys exceeds queue_size={size}")
        ptr = int(self.queue_ptr)
        index = (ptr + torch.arange(b, device=keys.device)) % size
        self.queue[:, index] = keys.T.to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + b) % size)
