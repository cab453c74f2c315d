"""Linear evaluation: frozen encoder(s), a linear head (or ASMa's alignment module + linear
head, eqs. 10–12) trained on their features.

Frozen means frozen: parameters without gradients and every module, BatchNorm included, in
eval mode — asserted before features are extracted and before every probe epoch. Because
the encoders are frozen and the probe sees un-augmented clips, features are computed once
and the head trains on them, which makes probing cheap.
"""

from __future__ import annotations

import torch
from torch import nn

from asma_bench.config import RunConfig
from asma_bench.protocols.base import PROTOCOLS, ProtocolResult, UnitContext
from asma_bench.protocols.checkpoints import load_checkpoint, save_checkpoint
from asma_bench.protocols.classifier import (
    EncoderClassifier,
    apply_head,
    encoder_features,
    make_head,
    resolve_features,
)
from asma_bench.protocols.data import PreparedData, TensorSet, prepare_data
from asma_bench.protocols.metrics import summarize
from asma_bench.protocols.pretrain import encoder_names, pretrain_for_unit
from asma_bench.protocols.training import (
    assert_frozen,
    fit_classifier,
    freeze,
    predict,
    seed_everything,
)

LINEAR_SECTIONS = ("seed", "deterministic", "data", "masking", "backbone", "pretrain", "linear")


@torch.no_grad()
def extract(
    encoders: dict[str, nn.Module], s: TensorSet, mode: str, device: str, batch_size: int = 256
) -> torch.Tensor:
    out = []
    for start in range(0, len(s), batch_size):
        x = s.x[start : start + batch_size].to(device)
        out.append(encoder_features(encoders, x, mode).float().cpu())
    return torch.cat(out)


def linear_probe(
    cfg: RunConfig,
    encoders: dict[str, nn.Module],
    data: PreparedData,
    ctx: UnitContext,
    mode: str,
    stage: str = "linear",
) -> tuple[EncoderClassifier, ProtocolResult]:
    """Train a head on frozen ``encoders``; evaluate once on test at the final epoch."""
    for name, enc in encoders.items():
        freeze(enc)
        assert_frozen(enc, name)
    feats = {
        part: extract(encoders, getattr(data, part), mode, ctx.device)
        for part in ("train", "val", "test")
    }
    dim = next(iter(encoders.values())).out_dim
    gen = seed_everything(cfg.seed + 1, cfg.deterministic)
    head = make_head(mode, dim, data.num_classes, cfg.linear.heads).to(ctx.device)

    def forward(f: torch.Tensor) -> torch.Tensor:
        return apply_head(head, f, mode)

    last = fit_classifier(
        head, forward, (feats["train"], data.train.y), (feats["val"], data.val.y),
        epochs=cfg.linear.epochs, lr=cfg.linear.lr, batch_size=cfg.linear.batch_size,
        weight_decay=cfg.linear.weight_decay, generator=gen, device=ctx.device, stage=stage,
        on_epoch=ctx.on_epoch, frozen=encoders, progress=ctx.stage_progress(stage),
    )  # fmt: skip
    for name, enc in encoders.items():
        assert_frozen(enc, name)  # still frozen after training the head
    pred = predict(forward, feats["test"], data.test.y, data.test.index, 512, ctx.device)
    metrics = {**summarize(pred, data.num_classes, "test_"), **_rename(last, stage)}
    return EncoderClassifier(encoders, head, mode), ProtocolResult(metrics, {"test": pred})


def _rename(last: dict[str, float], stage: str) -> dict[str, float]:
    return {k.replace(f"{stage}_val_top1", "val_top1"): v for k, v in last.items()}


def linear_classifier(
    cfg: RunConfig, data: PreparedData, ctx: UnitContext, mode: str | None = None
) -> tuple[EncoderClassifier, ProtocolResult, dict[str, float]]:
    """Pretrain (or reuse) and probe; the trained head is cached like the pretraining."""
    pre = pretrain_for_unit(cfg, data, ctx)
    mode = mode or resolve_features(cfg.linear.features, encoder_names(cfg))
    model, result = linear_probe(cfg, pre.encoders, data, ctx, mode)
    return model, result, pre.metrics


def cached_linear_teacher(
    cfg: RunConfig, data: PreparedData, ctx: UnitContext
) -> EncoderClassifier:
    """The linear-probed classifier of ``cfg`` (trained once, then loaded)."""
    excluded = [k for k in RunConfig.model_fields if k not in LINEAR_SECTIONS]
    path = ctx.ckpt_dir / f"linear-{cfg.digest(exclude=excluded)}.pt"
    pre = pretrain_for_unit(cfg, data, ctx)
    mode = resolve_features(cfg.linear.features, encoder_names(cfg))
    if path.is_file():
        dim = next(iter(pre.encoders.values())).out_dim
        head = make_head(mode, dim, data.num_classes, cfg.linear.heads)
        head.load_state_dict(load_checkpoint(path)["head"])
        model = EncoderClassifier(pre.encoders, head.to(ctx.device), mode)
    else:
        model, _ = linear_probe(cfg, pre.encoders, data, ctx, mode)
        save_checkpoint({"head": model.head.state_dict()}, path)
    return freeze(model)


@PROTOCOLS.register("linear")
def linear(cfg: RunConfig, ctx: UnitContext) -> ProtocolResult:
    """Pretrain (or reuse the checkpoint), then linear evaluation.

    For two-encoder objectives the result also carries each encoder's own linear probe
    (``theta_test_top1``, ``phi_test_top1``; paper Table 3 rows), computed on the same
    frozen features.
    """
    data = prepare_data(cfg.data, cfg.seed, ctx.data_root)
    model, result, pre_metrics = linear_classifier(cfg, data, ctx)
    result.metrics.update({f"final_{k}": v for k, v in pre_metrics.items()})
    if model.mode in ("aligned", "concat"):
        for name in ("theta", "phi"):
            _, single = linear_probe(cfg, dict(model.encoders), data, ctx, name, stage=name)
            result.metrics[f"{name}_test_top1"] = single.metrics["test_top1"]
            result.predictions[f"{name}_test"] = single.predictions["test"]
    return result
