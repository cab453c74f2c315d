"""Checkpoints written atomically (temp file, fsync, rename) and read with weights_only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from asma_bench.errors import DataFormatError
from asma_bench.fileio import atomic_write


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    """Write ``state`` to ``path`` so that a kill at any moment leaves the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint without executing code from it (``weights_only=True``)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataFormatError(path, "checkpoint not found") from None
    except Exception as exc:  # corrupt file, or one that asks for arbitrary objects
        raise DataFormatError(
            path, f"cannot load checkpoint safely: {str(exc).splitlines()[0]}"
        ) from None
