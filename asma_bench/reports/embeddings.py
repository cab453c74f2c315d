"""Encoder features of a finished unit, recomputed from its pretraining checkpoint.

Runs do not log embeddings; the pretrained encoders are on disk (keyed by the config's
pretraining digest), so the features of test clips are recomputed — never retrained: a
missing checkpoint is an error, not a reason to train.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asma_bench.config import validate_config
from asma_bench.errors import ConfigError, DataFormatError
from asma_bench.training.checkpoints import checkpoint_part, load_checkpoint, load_weights
from asma_bench.training.data import prepare_data, resolve_dataset
from asma_bench.training.pretrain import build_encoder, encoder_names, pretrain_digest


def dataset_class_names(config: Mapping[str, Any], runs_dir: Path) -> list[str]:
    """Class names of a unit's dataset (``info.json``); empty when it cannot be found."""
    from asma_bench.data.store import SkeletonDataset

    cfg = validate_config(config)
    if not (Path(runs_dir) / "data").is_dir() and cfg.data.source == "synthetic":
        return []  # not the runner's folder: do not generate data just for names
    try:
        ds = SkeletonDataset(resolve_dataset(cfg.data, Path(runs_dir) / "data"))
    except (ConfigError, DataFormatError, OSError):
        return []
    names = ds.info.get("class_names") or []
    return [str(n) for n in names] or [f"class {k}" for k in range(ds.num_classes)]


@torch.no_grad()
def encoder_embeddings(
    config: Mapping[str, Any],
    runs_dir: Path,
    classes: Sequence[int] | None = None,
    max_per_class: int = 60,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Pooled test-set features of each encoder of a unit: name → (features, labels).

    ``config`` is the unit's ``config.json``; data and checkpoints are looked up under
    ``runs_dir`` as the runner writes them (``data/``, ``checkpoints/``). Only test clips
    of ``classes`` (default: the first 8) are used, at most ``max_per_class`` each.
    """
    cfg = validate_config(config)
    runs_dir = Path(runs_dir)
    ckpt = runs_dir / "checkpoints" / f"pretrain-{pretrain_digest(cfg)}.pt"
    if not ckpt.is_file():
        raise ConfigError(f"{ckpt}: pretraining checkpoint not found (needed for embeddings)")
    data = prepare_data(cfg.data, cfg.seed, runs_dir / "data")
    state = load_checkpoint(ckpt)
    chosen = list(classes) if classes is not None else list(range(min(8, data.num_classes)))
    bad = [c for c in chosen if not 0 <= c < data.num_classes]
    if bad:
        raise ConfigError(f"--classes: class {bad[0]} not in 0..{data.num_classes - 1}")
    y = data.test.y.numpy()
    rows = np.concatenate([np.flatnonzero(y == c)[:max_per_class] for c in chosen])
    rows.sort()
    if len(rows) < 3:
        raise ConfigError(f"--classes {chosen}: only {len(rows)} test clips")
    x = data.test.x[torch.as_tensor(rows)]
    out = {}
    for name in encoder_names(cfg):
        enc = build_encoder(cfg, data.layout, data.channels)
        load_weights(enc, checkpoint_part(state, ckpt, "encoders", name), ckpt, name)
        enc.eval()
        feats = torch.cat([enc(x[i : i + 256]) for i in range(0, len(x), 256)])
        out[name] = (feats.numpy(), y[rows])
    return out, list(data.class_names)
