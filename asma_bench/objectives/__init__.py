"""Self-supervised objectives by name: ``barlow_twins`` (ASMa's triplet Barlow Twins),
``asma`` (two encoders on complementary masks), ``moco`` and ``mae``.

Each objective is an ``nn.Module`` built around encoder(s) and masking strategies; its
``forward`` returns a dict with at least ``loss``. Any masking strategy fits any objective.
"""

from __future__ import annotations

import inspect
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
    masked_view,
)
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
    factory = OBJECTIVES.get(name)
    signature = inspect.signature(factory)
    if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        accepted = [k for k in signature.parameters if k != "self"]
        for key in params:
            if key not in signature.parameters:
                raise ConfigError(
                    f"objective {name!r}: unknown parameter {key!r}; accepted: "
                    f"{', '.join(accepted)}"
                )
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in params
    ]
    if missing:
        raise ConfigError(f"objective {name!r}: missing parameter(s) {', '.join(missing)}")
    return factory(**params)


def list_objectives(pattern: str = "*") -> list[str]:
    """Registered objective names matching an fnmatch ``pattern``."""
    return OBJECTIVES.list(pattern)


__all__ = [
    "OBJECTIVES",
    "ASMaObjective",
    "BarlowTwinsLoss",
    "MaskedReconstruction",
    "MoCo",
    "Projector",
    "TripletBarlowTwins",
    "barlow_twins_loss",
    "create_objective",
    "cross_correlation",
    "gather_batch",
    "info_nce",
    "list_objectives",
    "masked_mse",
    "masked_view",
    "motion_target",
]
