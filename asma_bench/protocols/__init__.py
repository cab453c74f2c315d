"""Evaluation protocols: plain functions of a resolved config that return metrics.

``pretrain`` feeds every protocol (its checkpoint is shared by all protocols of the same
cell and seed); ``linear``, ``finetune``, ``semi``, ``supervised``, ``transfer``,
``distill``, ``robustness`` and ``streams`` are registered by name.
"""

from asma_bench.protocols import (  # noqa: F401 - registration on import
    distill,
    finetune,
    linear,
    robustness,
    streams,
    transfer,
)
from asma_bench.protocols.base import (
    PROTOCOLS,
    ProtocolResult,
    UnitContext,
    list_protocols,
    run_protocol,
)

__all__ = ["PROTOCOLS", "ProtocolResult", "UnitContext", "list_protocols", "run_protocol"]
