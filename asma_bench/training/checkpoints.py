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
    """Load a checkpoint without executing code from it (``weights_only=True``).

    Every failure is one line naming the file. Torch's own message is not passed on: for a
    file that asks for arbitrary objects it advises retrying with ``weights_only=False``,
    which would run whatever code the file holds.
    """
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise DataFormatError(path, "checkpoint is an empty file (an interrupted copy?)")
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataFormatError(path, "checkpoint not found") from None
    except DataFormatError:
        raise
    except Exception as exc:  # corrupt, truncated, or asks for objects beyond tensors
        unsafe = "Unsupported global" in str(exc)  # a class or function to import and call
        kind = "asks for objects other than tensors" if unsafe else "is corrupt or truncated"
        raise DataFormatError(path, f"not a checkpoint to load safely: it {kind}") from None
    if not isinstance(state, dict):
        raise DataFormatError(path, f"checkpoint holds a {type(state).__name__}, not a mapping")
    return state


def checkpoint_part(state: dict[str, Any], path: Path, *keys: str) -> Any:  # noqa: ANN401
    """``state[k1][k2]…``, or one line naming the file and the missing entry."""
    node: Any = state
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            where = ".".join(keys[: depth + 1])
            have = ", ".join(sorted(map(str, node))[:6]) if isinstance(node, dict) else "none"
            raise DataFormatError(path, f"checkpoint has no '{where}' (has: {have})")
        node = node[key]
    return node


def load_weights(module: torch.nn.Module, weights: Any, path: Path, what: str) -> None:  # noqa: ANN401
    """``module.load_state_dict(weights)``; a mismatch is one line naming the file and the
    first differing entry, not torch's list of every one."""
    try:
        module.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        first = lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)
        raise DataFormatError(
            path, f"checkpoint's {what} does not fit the configured model ({first[:160]})"
        ) from None


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``<name>.corrupt-<n>`` (the first free n) and return the new path:
    a bad file is kept for inspection, never deleted, and never read again."""
    n = 1
    while (aside := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    path.rename(aside)
    return aside
