"""Where a unit's files are: the checkpoints each protocol writes, found from its config.

Sits above the protocols whose file names it derives (pretraining, linear probes,
fine-tuning, distillation), so none of them imports it back.
"""

from __future__ import annotations

from pathlib import Path

from asma_bench.config import RunConfig
from asma_bench.protocols.finetune import FINETUNE_SECTIONS
from asma_bench.protocols.linear import linear_head_path
from asma_bench.training.pretrain import pretrain_digest


def unit_checkpoint_paths(cfg: RunConfig, ckpt_dir: Path) -> dict[str, Path]:
    """Where each checkpoint a unit of ``cfg`` may use lives in ``ckpt_dir``, by kind
    (pretrain, linear head, fine-tuned model, student), whether it exists or not."""

    def outside(sections: tuple[str, ...]) -> list[str]:
        return [k for k in RunConfig.model_fields if k not in sections]

    names = {
        "pretrain": f"pretrain-{pretrain_digest(cfg)}.pt",
        "linear": linear_head_path(cfg, ckpt_dir).name,
        "finetune": f"finetune-{cfg.digest(exclude=outside(FINETUNE_SECTIONS))}.pt",
        "student": f"student-{cfg.digest(exclude=['device'])}.pt",
    }
    return {kind: Path(ckpt_dir) / n for kind, n in names.items()}


def unit_checkpoints(cfg: RunConfig, ckpt_dir: Path) -> dict[str, Path]:
    """The checkpoints a unit of ``cfg`` uses that exist in ``ckpt_dir``, by kind
    (pretrain, linear head, fine-tuned model, student): what ``asma-bench show`` lists and
    each unit's MLflow tags name."""
    return {k: p for k, p in unit_checkpoint_paths(cfg, ckpt_dir).items() if p.is_file()}


def unit_pretrainings(cfg: RunConfig, protocol: str) -> set[str]:
    """The pretrainings (checkpoint digests) a unit of ``cfg`` under ``protocol`` trains or
    reads: its own, and for ``streams`` each stream's (shared with the single-stream cells
    of the grid); none when it pretrains nothing (``epochs: 0``)."""
    if cfg.pretrain.epochs == 0:
        return set()
    configs = [cfg]
    if protocol == "streams":
        configs += [
            cfg.model_copy(update={"data": cfg.data.model_copy(update={"stream": name})})
            for name in cfg.streams.names
        ]
    return {pretrain_digest(c) for c in configs}
