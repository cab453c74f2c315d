"""Self-supervised pretraining of one encoder (single objectives) or two (ASMa).

The checkpoint is keyed by a hash of everything that shapes the pretrained weights (seed,
data, masking, backbone, pretrain sections), so every downstream protocol of the same cell
and seed reuses it, and an interrupted pretraining resumes from its last finished epoch.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from asma_bench.backbones import create_backbone
from asma_bench.config import RunConfig
from asma_bench.data.layouts import SkeletonLayout
from asma_bench.data.transforms import Augment
from asma_bench.errors import DataFormatError
from asma_bench.objectives import objective_class
from asma_bench.training.checkpoints import (
    checkpoint_part,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    set_aside,
)
from asma_bench.training.context import UnitContext
from asma_bench.training.data import PreparedData
from asma_bench.training.distributed import (
    amp_dtype,
    autocast,
    barrier,
    is_main,
    rank,
    rank_generator,
    shard,
    unwrap,
    world_size,
    wrap,
)
from asma_bench.training.loop import (
    EpochCallback,
    RandomStreams,
    batches,
    capped,
    check_finite,
    estimate_bn_stats,
    make_optimizer,
    seed_everything,
    seed_purpose,
    warmup_cosine,
)

log = logging.getLogger(__name__)

PRETRAIN_SECTIONS = ("seed", "deterministic", "rng", "data", "masking", "backbone", "pretrain")


def encoder_names(cfg: RunConfig) -> tuple[str, ...]:
    """The encoders the run's objective trains, by role (its ``encoder_roles``)."""
    return objective_class(cfg.pretrain.objective).encoder_roles


def pretrain_digest(cfg: RunConfig) -> str:
    excluded = [k for k in RunConfig.model_fields if k not in PRETRAIN_SECTIONS]
    return cfg.digest(exclude=excluded)


def build_encoder(cfg: RunConfig, layout: SkeletonLayout, in_channels: int = 3) -> nn.Module:
    """The run's backbone for ``layout``; ``in_channels`` is the data's C (coordinates, plus
    a confidence channel where the dataset has one)."""
    return create_backbone(
        cfg.backbone.name, layout=layout, in_channels=in_channels, **cfg.backbone.params
    )


def build_objective(
    cfg: RunConfig,
    encoders: dict[str, nn.Module],
    layout: SkeletonLayout,
    train_size: int | None = None,
) -> nn.Module:
    """The configured objective around ``encoders``: the objective builds itself from the
    config (:meth:`~asma_bench.objectives.base.Objective.from_config`)."""
    return objective_class(cfg.pretrain.objective).from_config(cfg, encoders, layout, train_size)


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
    """Pretrain (or load) the encoders of ``cfg``; returns them on ``device``, in eval mode.

    Two processes that need one pretraining at once (two ``tune --jobs`` trials that tune
    only the probe) do not both train it: the second waits for the first's checkpoint
    (:func:`pretraining_lock`)."""
    digest = pretrain_digest(cfg)
    if (ckpt_dir / f"pretrain-{digest}.pt").is_file():
        return _pretrain(cfg, data, ckpt_dir, device, on_epoch, progress, augment)
    with pretraining_lock(ckpt_dir, digest):
        return _pretrain(cfg, data, ckpt_dir, device, on_epoch, progress, augment)


@contextlib.contextmanager
def pretraining_lock(ckpt_dir: Path, digest: str) -> Iterator[None]:
    """Hold pretraining ``digest``'s lock (a file beside its checkpoint, removed on release)
    while it is trained or loaded, waiting for a process that holds it.

    Best effort: where the lock file cannot be made (a read-only copy of a checkpoints
    folder) the block runs without it; in a group of processes (DDP) the ranks train
    together and take none. A holder that dies releases it; a process that got the lock
    of a file already removed only ever finds the checkpoint there, or trains it as
    before (checkpoints are written atomically)."""
    from filelock import FileLock, Timeout

    if world_size() > 1:
        yield
        return
    path = ckpt_dir / f"pretrain-{digest}.lock"
    lock = FileLock(str(path))
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("pretraining %s: another process is training it; waiting for it", digest)
            lock.acquire()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while held: whoever opens the name next makes a new lock
        lock.release()


def _pretrain(
    cfg: RunConfig,
    data: PreparedData,
    ckpt_dir: Path,
    device: torch.device | str = "cpu",
    on_epoch: EpochCallback | None = None,
    progress: Callable[[int, int], None] | None = None,
    augment: Callable | None = None,
) -> PretrainResult:
    digest = pretrain_digest(cfg)
    final = ckpt_dir / f"pretrain-{digest}.pt"
    partial = ckpt_dir / f"pretrain-{digest}.partial.pt"
    gen = seed_everything(cfg.seed, cfg.deterministic)
    streams = RandomStreams.for_run(cfg.rng, cfg.seed, gen)
    seed_purpose(cfg.seed, "init", cfg.rng)  # a grid's cells at one seed: the same weights
    encoders = {
        name: build_encoder(cfg, data.layout, data.channels).to(device)
        for name in encoder_names(cfg)
    }

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
        seed_purpose(cfg.seed, "dropout", cfg.rng)  # dropout draws from torch's own generator
        if augment is None:
            augment = Augment(data.layout)
        opt = make_optimizer(objective.parameters(), p.lr, p.weight_decay, fused=p.fused_adam)
        steps_per_epoch = max(1, len(data.train) // p.batch_size)
        sched = warmup_cosine(opt, p.warmup_epochs * steps_per_epoch, p.epochs * steps_per_epoch)
        if partial.is_file():
            try:
                state = load_checkpoint(partial)
                load_weights(objective, checkpoint_part(state, partial, "objective"), partial,
                             "objective")  # fmt: skip
                opt.load_state_dict(checkpoint_part(state, partial, "optimizer"))
                sched.load_state_dict(checkpoint_part(state, partial, "scheduler"))
                streams.load_state_dict(checkpoint_part(state, partial, "streams"))
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
                return _pretrain(cfg, data, ckpt_dir, device, on_epoch, progress, augment)
        on_gpu = torch.device(device).type == "cuda"
        amp = amp_dtype(cfg.amp, device)
        scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
        if on_gpu and not cfg.deterministic:
            torch.backends.cudnn.benchmark = True
        # a GPU holds the whole pre-processed training set: batches are gathered on it
        clips = data.train.x.to(device) if on_gpu else data.train.x
        model = wrap(objective, device)
        if progress:
            progress(start, p.epochs)
        for epoch in range(start, max(start, capped(p.epochs))):
            model.train()
            total, count = 0.0, 0
            # ranks share the batch stream only; each draws its own views and masks
            draws = streams if world_size() == 1 else _rank_streams(cfg, epoch)
            for idx in batches(len(data.train), p.batch_size, streams.batches, drop_last=True):
                x = clips[shard(idx).to(clips.device)]
                loss = pretrain_step(model, x, augment, opt, draws, scheduler=sched, amp=amp,
                                     scaler=scaler, epoch=epoch)  # fmt: skip
                total += float(loss) * len(idx)
                count += len(idx)
            metrics = {"pretrain_loss": total / max(count, 1), "lr": sched.get_last_lr()[0]}
            if is_main():
                save_checkpoint(
                    {"objective": objective.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "streams": streams.state_dict(),
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


def _rank_streams(cfg: RunConfig, epoch: int) -> RandomStreams:
    """This rank's augmentation and mask streams in ``epoch`` (a group of processes)."""
    if cfg.rng == "streams":
        return RandomStreams.derive(cfg.seed, "rank", rank(), "epoch", epoch)
    return RandomStreams.shared(rank_generator(cfg.seed, epoch))


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
    generator: RandomStreams | torch.Generator | None,
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
    ``after_step`` hook; returns the detached loss. ``generator`` is the run's
    :class:`RandomStreams` (views from its augmentation stream, masks from its mask stream)
    or one generator for both. ``objective`` may be wrapped in
    DistributedDataParallel. ``amp`` is the autocast dtype (None: fp32); ``scaler`` scales
    fp16 losses. ``clock(phase)`` is called after each phase (``augment``, ``forward``,
    ``backward``, ``optimizer``) for profiling.

    The optimizer steps after each backward pass and the gradients are freed at once
    (``set_to_none``): an objective whose loss is a sum of terms over disjoint parameters
    (ASMa's L^θ + L^ϕ, eq. 9) runs one backward pass per term, and the first encoder's
    parameters are updated, and its gradients released, before the second encoder's forward
    pass. Adam's update is elementwise per parameter and no RNG is drawn, so the weights
    equal those of one step after both passes bit for bit (tested). With a ``scaler``
    (fp16), which allows one ``step`` per ``update``, the optimizer steps once at the end.
    """
    core = unwrap(objective)
    streams = generator if isinstance(generator, RandomStreams) else RandomStreams.shared(generator)
    views = [augment(x, generator=streams.augment) for _ in range(core.num_views)]
    if getattr(core, "raw_anchor", False):  # an un-augmented anchor (ASMa's Algorithm 1)
        views.insert(0, x)
    if clock:
        clock("augment")

    def backward(loss: torch.Tensor) -> None:
        check_finite(loss, "pretrain", epoch)
        if clock:
            clock("forward")
        (loss if scaler is None else scaler.scale(loss)).backward()
        if clock:
            clock("backward")
        if scaler is None:  # this term's parameters have their gradients: step, then free
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if clock:
                clock("optimizer")

    optimizer.zero_grad(set_to_none=True)
    if core is objective and hasattr(core, "forward_backward"):
        # the objective runs its own passes (ASMa: one encoder's backward pass and update
        # before the other's forward pass, so only one encoder's activations and gradients
        # are alive at a time)
        loss = core.forward_backward(
            *views,
            generator=streams.masks,
            backward=backward,
            context=lambda: autocast(amp, x.device),
        )["loss"]
    else:  # DistributedDataParallel: one forward pass through the wrapper, one backward
        with autocast(amp, x.device):
            loss = objective(*views, generator=streams.masks)["loss"]
        backward(loss)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    if scheduler is not None:
        scheduler.step()
    if hasattr(core, "after_step"):
        core.after_step()
    if clock:
        clock("optimizer")
    return loss.detach()
