"""Linear evaluation: frozen encoder(s), a linear head (or ASMa's alignment module + linear
head, eqs. 10–12) trained on their features.

Frozen means frozen: parameters without gradients and every module, BatchNorm included, in
eval mode — asserted before features are extracted and before every probe epoch. Because
the encoders are frozen and the probe sees un-augmented clips, features are computed once
and the head trains on them, which makes probing cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from asma_bench.config import RunConfig
from asma_bench.models.classifier import (
    EncoderClassifier,
    apply_head,
    encoder_features,
    make_head,
    resolve_features,
)
from asma_bench.protocols.base import PROTOCOLS, ProtocolResult, UnitContext
from asma_bench.training.checkpoints import (
    checkpoint_part,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from asma_bench.training.data import PreparedData, TensorSet, prepare_data
from asma_bench.training.loop import (
    assert_frozen,
    estimate_bn_stats,
    fit_classifier,
    freeze,
    predict,
    seed_everything,
)
from asma_bench.training.metrics import summarize
from asma_bench.training.pretrain import encoder_names, pretrain_for_unit
from asma_bench.training.probe import (
    ProbeFit,
    choose,
    fit_lbfgs,
    knn_predictions,
    stratified_folds,
)

LINEAR_SECTIONS = (
    "seed", "deterministic", "rng", "data", "masking", "backbone", "pretrain", "linear",
)  # fmt: skip


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
    """Train a head on frozen ``encoders``; evaluate once on test with the final head.

    Features are extracted once (encoders frozen, un-augmented clips), standardised with
    training-split statistics (``linear.standardize``) and the head is fitted to
    convergence: full-batch L-BFGS for a linear head, Adam over ``linear.epochs`` for the
    alignment module (``linear.solver``). With several ``linear.weight_decay`` values the
    one with the lowest held-out cross-entropy is kept: k-fold cross-validation on the
    training split for L-BFGS heads, the validation split for the alignment module
    (``linear.selection``). k-NN accuracy on the same
    standardised features is reported beside it (``test_knn_top1``; ``linear.knn_k=0``
    turns it off).
    """
    if cfg.linear.bn_stats == "data" and cfg.pretrain.epochs > 0:
        # as random_init's: statistics of the clean training clips, not of the augmented,
        # masked views pretraining normalised (one forward pass, no weight changes)
        for enc in encoders.values():
            estimate_bn_stats(enc, data.train.x, cfg.pretrain.batch_size, ctx.device)
    for name, enc in encoders.items():
        freeze(enc)
        assert_frozen(enc, name)
    feats = {
        part: extract(encoders, getattr(data, part), mode, ctx.device)
        for part in ("train", "val", "test")
    }
    dim = next(iter(encoders.values())).out_dim
    p = cfg.linear
    solver = p.solver if p.solver != "auto" else ("adam" if mode == "aligned" else "lbfgs")
    selection = p.selection if p.selection != "auto" else ("val" if solver == "adam" else "cv")
    decays = p.weight_decay if isinstance(p.weight_decay, list) else [p.weight_decay]
    y_train = data.train.y

    def scored(head: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda f: apply_head(head, f, mode)

    def fit(decay: float, rows: torch.Tensor | None, label: str) -> tuple[nn.Module, list[float]]:
        """A head with penalty ``decay`` fitted on the training rows ``rows`` (None: all)."""
        x, y = (feats["train"], y_train) if rows is None else (feats["train"][rows], y_train[rows])
        gen = seed_everything(cfg.seed + 1, cfg.deterministic)  # every candidate starts alike
        head = make_head(mode, dim, data.num_classes, p.heads, p.standardize).to(ctx.device)
        if p.standardize:
            head.norm.fit(*_inputs(x, mode))

        forward = scored(head)
        if solver == "lbfgs":
            curve = fit_lbfgs(
                head, forward, x.to(ctx.device), y.to(ctx.device), decay, p.max_iter, stage
            )
        else:
            curve = []

            def record(_epoch: int, m: dict[str, float], curve: list[float] = curve) -> None:
                curve.append(m[f"{stage}_loss"])

            fit_classifier(
                head, forward, (x, y), None,
                epochs=p.epochs, lr=p.lr, batch_size=p.batch_size, weight_decay=decay,
                generator=gen, device=ctx.device, stage=stage, frozen=encoders,
                on_epoch=record, progress=ctx.stage_progress(f"{stage} ({label})"),
            )  # fmt: skip
        return head, curve

    folds: list[torch.Tensor] = []
    if selection == "cv" and len(decays) > 1:
        folds = stratified_folds(y_train, p.cv_folds, torch.Generator().manual_seed(cfg.seed))
    fits: list[tuple[nn.Module, ProbeFit]] = []
    for decay in decays:
        cv_loss = math.nan
        if len(folds) > 1:  # mean held-out cross-entropy, each fold's share weighted by size
            total = 0.0
            for i, held in enumerate(folds):
                rest = torch.cat([f for j, f in enumerate(folds) if j != i])
                head, _ = fit(decay, rest, f"weight decay {decay:g}, fold {i + 1}")
                _, loss = _evaluate(scored(head), feats["train"][held], y_train[held], ctx.device)
                total += loss * len(held)
            cv_loss = total / len(y_train)
        head, curve = fit(decay, None, f"weight decay {decay:g}")
        val, val_loss = _evaluate(scored(head), feats["val"], data.val.y, ctx.device)
        train_top1, train_loss = _evaluate(scored(head), feats["train"], y_train, ctx.device)
        fits.append((head, ProbeFit(decay, train_loss, train_top1, val, val_loss, curve, cv_loss)))
    for name, enc in encoders.items():
        assert_frozen(enc, name)  # still frozen after training the head
    head, best = fits[choose([f for _, f in fits], by=selection)]
    if ctx.on_epoch:  # the chosen head's training curve (at most ~50 points), then val
        every = max(1, -(-len(best.curve) // 50))
        for step, value in enumerate(best.curve):
            if step % every == 0 and step < len(best.curve) - 1:
                ctx.on_epoch(step, {f"{stage}_objective": value})
        ctx.on_epoch(
            max(len(best.curve) - 1, 0),
            {f"{stage}_objective": best.curve[-1] if best.curve else best.train_loss,
             f"{stage}_val_top1": best.val_top1},
        )  # fmt: skip

    pred = predict(scored(head), feats["test"], data.test.y, data.test.index, 512, ctx.device)
    metrics = {
        **summarize(pred, data.num_classes, "test_"),
        "val_top1": best.val_top1,
        f"{stage}_val_loss": best.val_loss,
        f"{stage}_loss": best.train_loss,
        f"{stage}_train_top1": best.train_top1,
        f"{stage}_weight_decay": best.weight_decay,
        f"{stage}_iterations": float(best.iterations),
    }
    if not math.isnan(best.cv_loss):
        metrics[f"{stage}_cv_loss"] = best.cv_loss
    predictions = {"test": pred}
    if p.knn_k > 0:
        norm = head.norm if p.standardize else None
        bank, query = (_knn_features(feats[s], mode, norm) for s in ("train", "test"))
        knn = knn_predictions(
            bank, data.train.y, query, data.test.y, data.test.index, data.num_classes,
            p.knn_k, p.knn_temperature,
        )  # fmt: skip
        metrics.update(summarize(knn, data.num_classes, "test_knn_", scores="votes"))
        predictions["knn_test"] = knn
    return EncoderClassifier(encoders, head, mode), ProtocolResult(metrics, predictions)


def _inputs(feats: torch.Tensor, mode: str) -> tuple[torch.Tensor, ...]:
    """The head's inputs: the two encoders' sequences for the alignment module, else one."""
    return (feats[:, 0], feats[:, 1]) if mode == "aligned" else (feats,)


@torch.no_grad()
def _knn_features(feats: torch.Tensor, mode: str, norm: nn.Module | None) -> torch.Tensor:
    """Pooled (N, D) features for k-NN: standardised like the probe's; the alignment path's
    two sequences are averaged over frames and concatenated."""
    xs = _inputs(feats, mode)
    if norm is not None:
        xs = norm(*(x.to(norm.mean.device) for x in xs))
    xs = tuple(x.mean(dim=1) if mode == "aligned" else x for x in xs)
    return torch.cat([x.float().cpu() for x in xs], dim=1)


@torch.no_grad()
def _evaluate(
    forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, device: str
) -> tuple[float, float]:
    """Top-1 accuracy (%) and mean cross-entropy of ``forward`` on (x, y); NaN when empty."""
    if not len(y):
        return float("nan"), float("nan")
    pred = predict(forward, x, y, torch.arange(len(y)), 512, device)
    logits = torch.from_numpy(pred.logits)
    loss = float(nn.functional.cross_entropy(logits, y.cpu().long()))
    return 100.0 * float(pred.correct.mean()), loss


def linear_classifier(
    cfg: RunConfig, data: PreparedData, ctx: UnitContext, mode: str | None = None
) -> tuple[EncoderClassifier, ProtocolResult, dict[str, float]]:
    """Pretrain (or reuse) and probe; the trained head is cached like the pretraining."""
    pre = pretrain_for_unit(cfg, data, ctx)
    mode = mode or resolve_features(cfg.linear.features, encoder_names(cfg))
    model, result = linear_probe(cfg, pre.encoders, data, ctx, mode)
    return model, result, pre.metrics


def linear_head_path(cfg: RunConfig, ckpt_dir: Path) -> Path:
    """Where the probe head of ``cfg`` is kept (its digest covers what shapes the head)."""
    excluded = [k for k in RunConfig.model_fields if k not in LINEAR_SECTIONS]
    return ckpt_dir / f"linear-{cfg.digest(exclude=excluded)}.pt"


def cached_linear_teacher(
    cfg: RunConfig, data: PreparedData, ctx: UnitContext
) -> EncoderClassifier:
    """The linear-probed classifier of ``cfg`` (trained once, then loaded)."""
    path = linear_head_path(cfg, ctx.ckpt_dir)
    pre = pretrain_for_unit(cfg, data, ctx)
    mode = resolve_features(cfg.linear.features, encoder_names(cfg))
    if path.is_file():
        dim = next(iter(pre.encoders.values())).out_dim
        head = make_head(mode, dim, data.num_classes, cfg.linear.heads, cfg.linear.standardize)
        state = load_checkpoint(path)
        load_weights(head, checkpoint_part(state, path, "head"), path, "probe head")
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
    head_path = linear_head_path(cfg, ctx.ckpt_dir)
    if not head_path.is_file():  # the trained head, for `load_model` and the distillation
        save_checkpoint({"head": model.head.state_dict()}, head_path)
    result.metrics.update({f"final_{k}": v for k, v in pre_metrics.items()})
    if model.mode in ("aligned", "concat"):
        for name in ("theta", "phi"):
            _, single = linear_probe(cfg, dict(model.encoders), data, ctx, name, stage=name)
            result.metrics[f"{name}_test_top1"] = single.metrics["test_top1"]
            result.predictions[f"{name}_test"] = single.predictions["test"]
            if "test_knn_top1" in single.metrics:
                result.metrics[f"{name}_test_knn_top1"] = single.metrics["test_knn_top1"]
    return result
