"""What every protocol receives and returns, and the protocol registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asma_bench.config import RunConfig
from asma_bench.protocols.metrics import Predictions
from asma_bench.registry import Registry


@dataclass
class UnitContext:
    """Where a unit of work keeps data and checkpoints, and how it reports progress."""

    data_root: Path
    ckpt_dir: Path
    device: str = "cpu"
    on_epoch: Callable[[int, dict[str, float]], None] | None = None
    progress: Callable[[str, int, int], None] | None = None

    def stage_progress(self, stage: str) -> Callable[[int, int], None] | None:
        if self.progress is None:
            return None
        report = self.progress
        return lambda done, total: report(stage, done, total)


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
