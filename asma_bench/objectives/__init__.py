"""Self-supervised objectives by name: ``barlow_twins`` (ASMa's triplet Barlow Twins),
``asma`` (two encoders on complementary masks), ``moco`` and ``mae``.

References: docs/references.md#barlow-twins, #asma, #moco, #mae.

Each objective is an :class:`~asma_bench.objectives.base.Objective` built around encoder(s)
and masking strategies, declaring what it needs from a run's config; its ``forward``
returns a dict with at least ``loss``. Any masking strategy fits any objective.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from asma_bench.errors import ConfigError
from asma_bench.objectives.asma import ASMaObjective
from asma_bench.objectives.barlow_twins import (
    BarlowTwinsLoss,
    Projector,
    TripletBarlowTwins,
    barlow_twins_loss,
    cross_correlation,
    gather_batch,
)
from asma_bench.objectives.base import Objective, masked_view
from asma_bench.objectives.mae import MaskedReconstruction, masked_mse, motion_target
from asma_bench.objectives.moco import MoCo, info_nce
from asma_bench.registry import Registry

OBJECTIVES: Registry[Any] = Registry("objective")
OBJECTIVES.register("barlow_twins")(TripletBarlowTwins)
OBJECTIVES.register("asma")(ASMaObjective)
OBJECTIVES.register("moco")(MoCo)
OBJECTIVES.register("mae")(MaskedReconstruction)


def create_objective(name: str, **params: Any) -> nn.Module:
    """Build the registered objective ``name``; unknown names or parameters, or missing
    required ones, raise ConfigError."""
    return OBJECTIVES.create(name, **params)


def objective_class(name: str) -> type[Objective]:
    """The registered objective ``name``, which must subclass :class:`Objective` (its
    class declares the encoders it trains and the settings it reads)."""
    factory = OBJECTIVES.get(name)
    if not (isinstance(factory, type) and issubclass(factory, Objective)):
        raise ConfigError(
            f"objective {name!r} must be a subclass of asma_bench.objectives.Objective "
            "(it declares encoder_roles, mask_roles and uses_projector)"
        )
    return factory


def list_objectives(pattern: str = "*") -> list[str]:
    """Registered objective names matching an fnmatch ``pattern``."""
    return OBJECTIVES.list(pattern)


__all__ = [
    "OBJECTIVES",
    "ASMaObjective",
    "BarlowTwinsLoss",
    "MaskedReconstruction",
    "MoCo",
    "Objective",
    "Projector",
    "TripletBarlowTwins",
    "barlow_twins_loss",
    "create_objective",
    "cross_correlation",
    "gather_batch",
    "info_nce",
    "list_objectives",
    "objective_class",
    "masked_mse",
    "masked_view",
    "motion_target",
]
