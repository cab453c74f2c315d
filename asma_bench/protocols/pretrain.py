"""Self-supervised pretraining of one encoder (single objectives) or two (ASMa).

The checkpoint is keyed by a hash of everything that shapes the pretrained weights (seed,
data, masking, backbone, pretrain sections), so every downstream protocol of the same cell
and seed reuses it, and an interrupted pretraining resumes from its last finished epoch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from asma_bench.config import RunConfig
from asma_bench.data.layouts import SkeletonLayout
from asma_bench.errors import DataFormatError
from asma_bench.protocols.base import UnitContext
from asma_bench.protocols.checkpoints import (
    checkpoint_part,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    set_aside,
)
from asma_bench.protocols.data import PreparedData
from asma_bench.protocols.distributed import (
    amp_dtype,
    autocast,
    barrier,
    is_main,
    rank_generator,
    shard,
    unwrap,
    world_size,
    wrap,
)
from asma_bench.protocols.training import (
    EpochCallback,
    batches,
    check_finite,
    estimate_bn_stats,
    make_optimizer,
    seed_everything,
    warmup_cosine,
)

log = logging.getLogger(__name__)

TWO_ENCODER_OBJECTIVES = frozenset({"asma"})
BARLOW_TWINS_OBJECTIVES = frozenset({"asma", "barlow_twins"})
PRETRAIN_SECTIONS = ("seed", "deterministic", "data", "masking", "backbone", "pretrain")


def encoder_names(cfg: RunConfig) -> tuple[str, ...]:
    return ("theta", "phi") if cfg.pretrain.objective in TWO_ENCODER_OBJECTIVES else ("encoder",)


def pretrain_digest(cfg: RunConfig) -> str:
    excluded = [k for k in RunConfig.model_fields if k not in PRETRAIN_SECTIONS]
    return cfg.digest(exclude=excluded)


def build_encoder(cfg: RunConfig, layout: SkeletonLayout) -> nn.Module:
    from asma_bench.backbones import create_backbone

    return create_backbone(cfg.backbone.name, layout=layout, in_channels=3, **cfg.backbone.params)


def masking_overrides(cfg: RunConfig, pairing) -> dict:  # noqa: ANN001 - MaskingPairing
    """The run's n, k and LDSM law, sent to the strategies of ``pairing`` that take them."""
    from asma_bench.strategies.base import size_params

    m = cfg.masking
    spatial = size_params(pairing.spatial, n=m.n)
    temporal = size_params(pairing.temporal, k=m.k)
    if pairing.spatial == "ldsm":
        spatial["law"] = m.ldsm_law
    return {"spatial": spatial, "temporal": temporal}


def build_masks(cfg: RunConfig, pairing_name: str, layout: SkeletonLayout) -> tuple:
    from asma_bench.strategies import create_pairing

    pairing = create_pairing(pairing_name)
    return pairing.build(layout, **masking_overrides(cfg, pairing))


def build_objective(
    cfg: RunConfig,
    encoders: dict[str, nn.Module],
    layout: SkeletonLayout,
    train_size: int | None = None,
) -> nn.Module:
    """The configured objective around ``encoders``, with its masking strategies.

    A memory queue of negatives (MoCo's ``queue_size``, 32,768 for NTU) longer than the
    training set would mostly hold its random initial keys; unless ``pretrain.params`` sets
    it, the queue is capped at ``train_size`` samples.
    """
    import inspect

    from asma_bench.objectives import OBJECTIVES, create_objective

    p = cfg.pretrain
    common: dict = {"mask_mode": cfg.masking.mode}
    if p.objective in BARLOW_TWINS_OBJECTIVES:  # MoCo / MAE have their own heads
        common.update(projector_dims=_projector(encoders, p.projector_dim), lambd=p.lambd)
    queue = inspect.signature(OBJECTIVES.get(p.objective)).parameters.get("queue_size")
    if queue is not None and train_size and "queue_size" not in p.params:
        if train_size < queue.default:
            log.info("%s: queue of %d negatives (the training set's size)", p.objective, train_size)
            common["queue_size"] = int(train_size)
    common.update(p.params)
    if p.objective in TWO_ENCODER_OBJECTIVES:
        from asma_bench.strategies import ASMA_ENCODERS

        pairs = {  # pretrain.params={theta_masks: NAME, phi_masks: NAME} pick other pairings
            name: build_masks(cfg, common.pop(f"{name}_masks", pairing), layout)
            for name, pairing in zip(("theta", "phi"), ASMA_ENCODERS, strict=True)
        }
        return create_objective(
            p.objective,
            theta=encoders["theta"],
            phi=encoders["phi"],
            theta_masks=pairs["theta"],
            phi_masks=pairs["phi"],
            **common,
        )
    spatial, temporal = build_masks(cfg, p.pairing, layout)
    return create_objective(
        p.objective, encoder=encoders["encoder"], spatial=spatial, temporal=temporal, **common
    )


def _projector(encoders: dict[str, nn.Module], width: int) -> list[int]:
    d = next(iter(encoders.values())).out_dim
    return [d, width, width, width]


@dataclass
class PretrainResult:
    encoders: dict[str, nn.Module]
    checkpoint: Path
    metrics: dict[str, float] = field(default_factory=dict)
    trained_epochs: int = 0  # epochs run in this call (0 when the checkpoint was reused)


def pretrain(
    cfg: RunConfig,
    data: PreparedData,
    ckpt_dir: Path,
    device: torch.device | str = "cpu",
    on_epoch: EpochCallback | None = None,
    progress: Callable[[int, int], None] | None = None,
    augment: Callable | None = None,
) -> PretrainResult:
    """Pretrain (or load) the encoders of ``cfg``; returns them on ``device``, in eval mode."""
    digest = pretrain_digest(cfg)
    final = ckpt_dir / f"pretrain-{digest}.pt"
    partial = ckpt_dir / f"pretrain-{digest}.partial.pt"
    gen = seed_everything(cfg.seed, cfg.deterministic)
    encoders = {name: build_encoder(cfg, data.layout).to(device) for name in encoder_names(cfg)}

    if final.is_file():
        state = load_checkpoint(final)
        for name, enc in encoders.items():
            load_weights(enc, checkpoint_part(state, final, "encoders", name), final, name)
            enc.eval()
        return PretrainResult(encoders, final, dict(state.get("metrics", {})), 0)

    p = cfg.pretrain
    metrics: dict[str, float] = {}
    start = 0
    if p.epochs > 0:
        objective = build_objective(cfg, encoders, data.layout, len(data.train)).to(device)
        if augment is None:
            from asma_bench.data.transforms import Augment

            augment = Augment(data.layout)
        opt = make_optimizer(objective.parameters(), p.lr, p.weight_decay)
        steps_per_epoch = max(1, len(data.train) // p.batch_size)
        sched = warmup_cosine(opt, p.warmup_epochs * steps_per_epoch, p.epochs * steps_per_epoch)
        if partial.is_file():
            try:
                state = load_checkpoint(partial)
                load_weights(objective, checkpoint_part(state, partial, "objective"), partial,
                             "objective")  # fmt: skip
                opt.load_state_dict(checkpoint_part(state, partial, "optimizer"))
                sched.load_state_dict(checkpoint_part(state, partial, "scheduler"))
                gen.set_state(checkpoint_part(state, partial, "generator"))
                if "torch_rng" in state:  # dropout draws from torch's global generator
                    torch.set_rng_state(state["torch_rng"])
                start = int(checkpoint_part(state, partial, "epoch"))
                metrics = dict(state.get("metrics", {}))
                log.info("resuming pretraining %s at epoch %d", digest, start)
            except (DataFormatError, ValueError, TypeError, RuntimeError, KeyError) as exc:
                # a partial checkpoint is a cache: set it aside and start this unit afresh
                # (a fresh call re-seeds and rebuilds everything it may have half-loaded)
                aside = set_aside(partial)
                log.warning("%s; moved to %s, pretraining restarts", exc, aside.name)
                return pretrain(cfg, data, ckpt_dir, device, on_epoch, progress, augment)
        on_gpu = torch.device(device).type == "cuda"
        amp = amp_dtype(cfg.amp, device)
        scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
        if on_gpu and not cfg.deterministic:
            torch.backends.cudnn.benchmark = True
        # a GPU holds the whole pre-processed training set: batches are gathered on it
        clips = data.train.x.to(device) if on_gpu else data.train.x
        model = wrap(objective, device)
        for epoch in range(start, p.epochs):
            model.train()
            total, count = 0.0, 0
            # one process draws from ``gen``; ranks share ``gen`` for batches only
            draws = gen if world_size() == 1 else rank_generator(cfg.seed, epoch)
            for idx in batches(len(data.train), p.batch_size, gen, drop_last=True):
                x = clips[shard(idx).to(clips.device)]
                loss = pretrain_step(model, x, augment, opt, draws, scheduler=sched, amp=amp,
                                     scaler=scaler, epoch=epoch)  # fmt: skip
                total += float(loss) * len(idx)
                count += len(idx)
            metrics = {"pretrain_loss": total / max(count, 1), "lr": sched.get_last_lr()[0]}
            if is_main():
                save_checkpoint(
                    {"objective": objective.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "generator": gen.get_state(),
                     "torch_rng": torch.get_rng_state(), "epoch": epoch + 1,
                     "metrics": metrics},
                    partial,
                )  # fmt: skip
            barrier()
            if on_epoch:
                on_epoch(epoch, metrics)
            if progress:
                progress(epoch + 1, p.epochs)
    if p.epochs == 0 and p.bn_stats == "data":
        for enc in encoders.values():
            estimate_bn_stats(enc, data.train.x, p.batch_size, device)
    state = {
        "encoders": {name: enc.state_dict() for name, enc in encoders.items()},
        "metrics": metrics,
        "config": json.dumps(cfg.model_dump(mode="json")),
    }
    if is_main():
        save_checkpoint(state, final)
        partial.unlink(missing_ok=True)
    barrier()
    for enc in encoders.values():
        enc.eval()
    return PretrainResult(encoders, final, metrics, p.epochs - start)


def pretrain_for_unit(cfg: RunConfig, data: PreparedData, ctx: UnitContext) -> PretrainResult:
    """:func:`pretrain` with a unit's checkpoint folder, device, curves and progress."""
    return pretrain(
        cfg,
        data,
        ctx.ckpt_dir,
        ctx.device,
        on_epoch=ctx.on_epoch,
        progress=ctx.stage_progress("pretrain"),
    )


def pretrain_step(
    objective: nn.Module,
    x: torch.Tensor,
    augment: Callable,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator | None,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    amp: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    epoch: int = 0,
    clock: Callable[[str], None] | None = None,
) -> torch.Tensor:
    """One optimisation step on clips ``x`` (N, C, T, V, M) already on the device.

    Draws ``num_views`` augmented views (after the clip itself when the objective's
    ``raw_anchor`` is set), computes the objective's loss (its masks are drawn
    inside), back-propagates and steps the optimizer, the scheduler and the objective's
    ``after_step`` hook; returns the detached loss. ``objective`` may be wrapped in
    DistributedDataParallel. ``amp`` is the autocast dtype (None: fp32); ``scaler`` scales
    fp16 losses. ``clock(phase)`` is called after each phase (``augment``, ``forward``,
    ``backward``, ``optimizer``) for profiling.
    """
    core = unwrap(objective)
    views = [augment(x, generator=generator) for _ in range(core.num_views)]
    if getattr(core, "raw_anchor", False):  # an un-augmented anchor (ASMa's Algorithm 1)
        views.insert(0, x)
    if clock:
        clock("augment")
    with autocast(amp, x.device):
        loss = objective(*views, generator=generator)["loss"]
    check_finite(loss, "pretrain", epoch)
    if clock:
        clock("forward")
    optimizer.zero_grad(set_to_none=True)
    (loss if scaler is None else scaler.scale(loss)).backward()
    if clock:
        clock("backward")
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    if scheduler is not None:
        scheduler.step()
    if hasattr(core, "after_step"):
        core.after_step()
    if clock:
        clock("optimizer")
    return loss.detach()
