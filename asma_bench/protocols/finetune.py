"""Fine-tuning: encoder(s) + linear head trained end to end with labels.

For ASMa (two encoders) each encoder is fine-tuned with its own linear head, then the
alignment module is trained on the two fine-tuned, frozen encoders (paper Section 3.4:
150 epochs at 5e-3, then 50 epochs at 1e-4). ``finetune.label_fraction`` < 1 gives the
semi-supervised protocol on a seeded, class-balanced label subset; with ``pretrain.epochs =
0`` the same code is the supervised-from-scratch reference.
"""

from __future__ import annotations

import torch
from torch import nn

from asma_bench.config import RunConfig
from asma_bench.data.transforms import Augment
from asma_bench.errors import ConfigError
from asma_bench.models.classifier import EncoderClassifier, make_head
from asma_bench.protocols.base import PROTOCOLS, ProtocolResult, UnitContext
from asma_bench.protocols.linear import linear_probe
from asma_bench.training.checkpoints import (
    checkpoint_part,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from asma_bench.training.data import PreparedData, class_balanced_subset, prepare_data
from asma_bench.training.loop import fit_classifier, freeze, predict, seed_everything
from asma_bench.training.metrics import summarize
from asma_bench.training.pretrain import pretrain_for_unit

FINETUNE_SECTIONS = (
    "seed",
    "deterministic",
    "rng",
    "data",
    "masking",
    "backbone",
    "pretrain",
    "finetune",
    "linear",
    "transfer",
)


def finetune_encoders(
    cfg: RunConfig, encoders: dict[str, nn.Module], data: PreparedData, ctx: UnitContext
) -> tuple[EncoderClassifier, ProtocolResult]:
    """Fine-tune ``encoders`` on ``data`` (in place); returns the final classifier."""
    f = cfg.finetune
    gen = seed_everything(cfg.seed + 2, cfg.deterministic)
    rows = torch.arange(len(data.train))
    if f.label_fraction < 1:
        rows = torch.as_tensor(
            class_balanced_subset(data.train.y.numpy(), f.label_fraction, cfg.seed)
        )
    train = data.train.subset(rows)
    augment = Augment(data.layout)
    metrics: dict[str, float] = {"train_labelled": float(len(train))}
    predictions = {}
    singles = {}
    for name, enc in encoders.items():
        for p in enc.parameters():
            p.requires_grad_(True)
        mode = "single" if name == "encoder" else name
        model = EncoderClassifier({name: enc}, nn.Linear(enc.out_dim, data.num_classes), mode)
        model.to(ctx.device)
        last = fit_classifier(
            model, model, (train.x, train.y), (data.val.x, data.val.y),
            epochs=f.epochs, lr=f.lr, weight_decay=f.weight_decay, batch_size=f.batch_size,
            generator=gen, device=ctx.device, stage=f"finetune_{name}", on_epoch=ctx.on_epoch,
            augment=augment, progress=ctx.stage_progress(f"finetune {name}"),
        )  # fmt: skip
        pred = predict(model, data.test.x, data.test.y, data.test.index, 256, ctx.device)
        prefix = "test_" if len(encoders) == 1 else f"{name}_test_"
        metrics.update(summarize(pred, data.num_classes, prefix))
        metrics.update(
            {k.replace(f"finetune_{name}_val_top1", f"{name}_val_top1"): v for k, v in last.items()}
        )
        predictions[prefix + "pred"] = pred
        singles[name] = model
    if len(encoders) == 1:
        model = singles[next(iter(encoders))]
        metrics["val_top1"] = metrics.pop(f"{next(iter(encoders))}_val_top1", float("nan"))
        return model, ProtocolResult(metrics, {"test": predictions["test_pred"]})
    # ASMa: the alignment module on the fine-tuned (now frozen) encoders.
    align_cfg = cfg.model_copy(
        update={
            "linear": cfg.linear.model_copy(
                update={"epochs": f.align_epochs, "lr": f.align_lr, "batch_size": f.batch_size}
            )
        }
    )
    model, aligned = linear_probe(align_cfg, encoders, data, ctx, "aligned", stage="align")
    aligned.metrics.update(metrics)
    aligned.predictions.update({k.removesuffix("pred"): v for k, v in predictions.items()})
    return model, aligned


def finetuned_classifier(
    cfg: RunConfig,
    data: PreparedData,
    ctx: UnitContext,
) -> tuple[EncoderClassifier, ProtocolResult]:
    """Fine-tuned classifier of ``cfg`` (trained once per config, then loaded)."""
    excluded = [k for k in RunConfig.model_fields if k not in FINETUNE_SECTIONS]
    path = ctx.ckpt_dir / f"finetune-{cfg.digest(exclude=excluded)}.pt"
    pre = pretrain_for_unit(cfg, data, ctx)
    if path.is_file():
        state = load_checkpoint(path)
        mode = checkpoint_part(state, path, "mode")
        dim = next(iter(pre.encoders.values())).out_dim
        model = EncoderClassifier(
            pre.encoders,
            # the alignment module trained by the probe is standardised; single heads are not
            make_head(
                mode,
                dim,
                data.num_classes,
                cfg.linear.heads,
                standardize=mode == "aligned" and cfg.linear.standardize,
            ),
            mode,
        )
        load_weights(model, checkpoint_part(state, path, "model"), path, "model")
        # the metrics of the run that trained it (validation accuracy, each encoder's own
        # test accuracy); the caller re-predicts the test split for per-sample predictions
        metrics = {k: float(v) for k, v in state.get("metrics", {}).items()}
        return freeze(model.to(ctx.device)), ProtocolResult(metrics, {}, {"cached": True})
    model, result = finetune_encoders(cfg, pre.encoders, data, ctx)
    full = EncoderClassifier(pre.encoders, model.head, model.mode)
    save_checkpoint(
        {"model": full.state_dict(), "mode": full.mode, "metrics": dict(result.metrics)}, path
    )
    return freeze(full), result


@PROTOCOLS.register("finetune")
def finetune(cfg: RunConfig, ctx: UnitContext) -> ProtocolResult:
    """Pretrain (or reuse), then fine-tune end to end and evaluate the final epoch."""
    data = prepare_data(cfg.data, cfg.seed, ctx.data_root)
    model, result = finetuned_classifier(cfg, data, ctx)
    if "test" not in result.predictions:  # cached: evaluate the stored classifier
        pred = predict(model, data.test.x, data.test.y, data.test.index, 256, ctx.device)
        metrics = {**result.metrics, **summarize(pred, data.num_classes, "test_")}
        result = ProtocolResult(metrics, {"test": pred}, result.info)
    return result


@PROTOCOLS.register("semi")
def semi(cfg: RunConfig, ctx: UnitContext) -> ProtocolResult:
    """Semi-supervised: fine-tune on ``finetune.label_fraction`` of the labels (1% / 10%)."""
    if cfg.finetune.label_fraction >= 1:
        raise ConfigError(
            "semi: finetune.label_fraction is 1.0 (all labels); set the labelled share, "
            "e.g. --set finetune.label_fraction=0.1 (the paper reports 0.01 and 0.1)"
        )
    return finetune(cfg, ctx)


@PROTOCOLS.register("supervised")
def supervised(cfg: RunConfig, ctx: UnitContext) -> ProtocolResult:
    """Reference: the backbone trained from scratch with labels (no pretraining)."""
    cfg = cfg.model_copy(update={"pretrain": cfg.pretrain.model_copy(update={"epochs": 0})})
    return finetune(cfg, ctx)
