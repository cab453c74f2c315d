"""Where a unit of work keeps its data and checkpoints, and how it reports progress: the
context pretraining and every protocol receive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


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
