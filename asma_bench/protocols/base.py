"""What every protocol receives (a config and a :class:`UnitContext`) and returns, and the
protocol registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asma_bench.config import RunConfig
from asma_bench.registry import Registry
from asma_bench.training.context import UnitContext
from asma_bench.training.metrics import Predictions


@dataclass
class ProtocolResult:
    metrics: dict[str, float]
    predictions: dict[str, Predictions] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


Protocol = Callable[[RunConfig, UnitContext], ProtocolResult]
PROTOCOLS: Registry[Protocol] = Registry("protocol")


def run_protocol(name: str, cfg: RunConfig, ctx: UnitContext) -> ProtocolResult:
    return PROTOCOLS.get(name)(cfg, ctx)


def list_protocols() -> list[str]:
    return PROTOCOLS.list()
