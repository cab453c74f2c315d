"""Shared training machinery: seeding, optimisers, schedules, batching, freezing, prediction.

Protocols train on in-memory tensors of pre-processed clips (T frames each) and augment on
the device per batch; the per-epoch loop here is the only place batches are drawn, so every
protocol shuffles, schedules and checks for divergence the same way.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from asma_bench.errors import AsmaBenchError
from asma_bench.strategies.base import MaskStream
from asma_bench.training.metrics import Predictions

EpochCallback = Callable[[int, dict[str, float]], None]


_EPOCH_CAP: ContextVar[int | None] = ContextVar("asma_epoch_cap", default=None)


@contextmanager
def epoch_cap(epochs: int) -> Iterator[None]:
    """Inside the block every training loop stops after at most ``epochs`` epochs while its
    schedule and its progress reports keep the configured count: what the cost estimate of
    ``run --dry-run`` measures (a few timed epochs of each stage, extrapolated), never a
    way to train. The loops' ``progress(0, total)`` call marks where a stage starts."""
    token = _EPOCH_CAP.set(max(1, int(epochs)))
    try:
        yield
    finally:
        _EPOCH_CAP.reset(token)


def capped(epochs: int) -> int:
    """``epochs``, or fewer inside :func:`epoch_cap`."""
    cap = _EPOCH_CAP.get()
    return epochs if cap is None else min(epochs, cap)


class DivergenceError(AsmaBenchError):
    """The loss became NaN or infinite; the message names the stage and epoch."""


class FrozenEncoderError(AsmaBenchError):
    """A supposedly frozen encoder has trainable parameters or BatchNorm in training mode."""


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator for batch order and masks."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def stream_seed(seed: int, purpose: str, *scope: int | str) -> int:
    """A 63-bit seed for the random stream of ``purpose`` in run ``seed`` (and ``scope``,
    e.g. a rank and an epoch): a hash, so streams of different purposes or seeds share
    nothing and no stream depends on how much another one drew."""
    key = "/".join(str(part) for part in ("asma-bench", int(seed), purpose, *scope))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


@dataclass
class RandomStreams:
    """The generators a pretraining draws from, one per purpose.

    ``rng="streams"`` (:meth:`derive`): batch order, augmentation and masks each have a
    stream of their own seeded from (seed, purpose) (:func:`stream_seed`); the masks'
    stream hands every mask slot a generator of its own
    (:class:`~asma_bench.strategies.base.MaskStream`). Batch order and augmentation draw the
    same shapes whatever the masking, so every cell of a grid at one seed sees identical
    batches and identical augmented views for the whole run (resumption included: the
    states are checkpointed) and differs only in its masks; two cells whose spatial (or
    temporal) strategies agree draw identical spatial (temporal) masks. Dropout and the
    initial weights draw from torch's global generator, seeded per purpose by the caller
    (:func:`seed_purpose`). These are common random numbers: the difference between two
    cells at one seed is then not diluted by unrelated randomness, so fewer seeds detect
    it. ``rng="shared"`` (:meth:`shared`): one generator for all three, the behaviour
    before streams (a strategy that draws more shifts every later batch and view).
    """

    batches: torch.Generator
    augment: torch.Generator
    masks: torch.Generator | MaskStream

    @classmethod
    def derive(
        cls, seed: int, *scope: int | str, device: torch.device | str = "cpu"
    ) -> RandomStreams:
        def gen(purpose: str) -> torch.Generator:
            return torch.Generator(device=device).manual_seed(stream_seed(seed, purpose, *scope))

        return cls(gen("batches"), gen("augment"), MaskStream(gen("masks")))

    @classmethod
    def shared(cls, generator: torch.Generator | None) -> RandomStreams:
        return cls(generator, generator, generator)  # type: ignore[arg-type]

    @classmethod
    def for_run(cls, scheme: str, seed: int, generator: torch.Generator) -> RandomStreams:
        """The streams of ``rng=scheme``; ``generator`` is the shared one (``shared``)."""
        return cls.derive(seed) if scheme == "streams" else cls.shared(generator)

    def _generators(self) -> dict[str, torch.Generator]:
        masks = self.masks.generator if isinstance(self.masks, MaskStream) else self.masks
        return {"batches": self.batches, "augment": self.augment, "masks": masks}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: g.get_state() for name, g in self._generators().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, g in self._generators().items():
            g.set_state(state[name])


def seed_purpose(seed: int, purpose: str, scheme: str = "streams") -> None:
    """Seed torch's global generator (dropout, weight initialisation) for ``purpose``:
    from (seed, purpose) under ``rng="streams"``, left as it is under ``"shared"``."""
    if scheme == "streams":
        torch.manual_seed(stream_seed(seed, purpose))


def make_optimizer(
    params: Iterator[nn.Parameter] | list,
    lr: float,
    weight_decay: float = 0.0,
    name: str = "adam",
    *,
    fused: bool = False,
) -> torch.optim.Optimizer:
    """Adam (the lineage's optimiser) or SGD with momentum, multi-tensor (foreach) kernels;
    ``fused``: Adam's fused kernel (one pass per tensor instead of about eight; the same
    update up to rounding)."""
    params = [p for p in params if p.requires_grad]
    if name == "adam":
        kernel = {"fused": True} if fused else {"foreach": True}
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **kernel)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=0.9, weight_decay=weight_decay, nesterov=True, foreach=True
        )
    raise ValueError(f"unknown optimizer {name!r}")


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, final_scale: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup_steps`` then cosine decay to ``final_scale`` (per step)."""
    total_steps = max(total_steps, 1)

    def scale(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_scale + (1 - final_scale) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, scale)


def batches(
    n: int, batch_size: int, generator: torch.Generator | None, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``; shuffled when a generator is given."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def check_finite(loss: torch.Tensor, stage: str, epoch: int) -> None:
    if not torch.isfinite(loss).all():
        raise DivergenceError(
            f"{stage}: loss is {loss.item()} at epoch {epoch}; stopping this unit"
        )


def freeze(module: nn.Module) -> nn.Module:
    """Freeze parameters and put the module (BatchNorm included) in eval mode."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@torch.no_grad()
def estimate_bn_stats(
    module: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device | str = "cpu"
) -> int:
    """Replace every BatchNorm's running mean and variance by their averages over ``x``.

    One forward pass over ``x`` in near-equal batches of at most ``batch_size``, no
    gradient, with only the BatchNorm layers in training mode and cumulative averaging
    (``momentum=None``), so dropout stays off and no weight changes. Returns the number of
    BatchNorm layers updated; the module is left in eval mode.

    Used for encoders that are never trained (``random_init``): their statistics would
    otherwise stay at the initial (0, 1), i.e. no normalisation at all, while every
    pretrained encoder's come from the training data.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    module.eval()
    if not norms or not len(x):
        return 0
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:  # near-equal batches: cumulative averaging weighs every batch alike
        for part in torch.tensor_split(x, -(-len(x) // batch_size)):
            module(part.to(device))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        module.eval()
    return len(norms)


def assert_frozen(module: nn.Module, name: str = "encoder") -> None:
    """Refuse to run a linear probe on an encoder that is not really frozen.

    The lineage has probes whose encoder kept training or whose BatchNorm kept updating its
    running statistics; both inflate linear accuracy. Checked before every probe epoch.
    """
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    if trainable:
        raise FrozenEncoderError(f"{name} has trainable parameters: {', '.join(trainable[:3])}")
    training = [n or type(m).__name__ for n, m in module.named_modules() if m.training]
    if training:
        raise FrozenEncoderError(f"{name} has modules in training mode: {', '.join(training[:3])}")


@torch.no_grad()
def predict(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    indices: torch.Tensor,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> Predictions:
    """Logits of ``forward`` over a tensor set, batched, as numpy predictions."""
    out = []
    for idx in batches(len(x), batch_size, None):
        out.append(forward(x[idx].to(device, non_blocking=True)).float().cpu())
    logits = torch.cat(out) if out else torch.zeros(0, 0)
    return Predictions(logits.numpy(), y.cpu().numpy(), indices.cpu().numpy())


def fit_classifier(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    weight_decay: float = 0.0,
    device: torch.device | str = "cpu",
    stage: str = "train",
    on_epoch: EpochCallback | None = None,
    augment: Callable[..., torch.Tensor] | None = None,
    frozen: dict[str, nn.Module] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Train ``model`` (whose trainable parameters ``forward`` uses) with cross-entropy.

    The model of the final epoch is kept: the test set never selects an epoch (a pitfall of
    the lineage). ``val`` is evaluated each epoch and logged for curves and pruning only.
    ``frozen`` modules are checked with :func:`assert_frozen` before every epoch.
    ``loss_fn(logits, targets_y, x)`` replaces cross-entropy (distillation).
    """
    opt = make_optimizer(model.parameters(), lr, weight_decay)
    steps = max(1, -(-len(train[0]) // batch_size)) * epochs
    sched = warmup_cosine(opt, 0, steps)
    x_all, y_all = train
    last: dict[str, float] = {}
    if progress:
        progress(0, epochs)
    for epoch in range(capped(epochs)):
        model.train()
        for name, module in (frozen or {}).items():
            assert_frozen(module, name)
        total, count = 0.0, 0
        for idx in batches(len(x_all), batch_size, generator):
            x = x_all[idx].to(device, non_blocking=True)
            y = y_all[idx].to(device, non_blocking=True)
            if augment is not None:
                x = augment(x, generator=generator)
            logits = forward(x)
            loss = loss_fn(logits, y, x) if loss_fn else nn.functional.cross_entropy(logits, y)
            check_finite(loss, stage, epoch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        last = {f"{stage}_loss": total / max(count, 1)}
        if val is not None and len(val[0]):
            model.eval()
            with torch.no_grad():
                pred = predict(forward, val[0], val[1], torch.arange(len(val[1])), 512, device)
            last[f"{stage}_val_top1"] = 100.0 * float(pred.correct.mean())
        if on_epoch:
            on_epoch(epoch, last)
        if progress:
            progress(epoch + 1, epochs)
    model.eval()
    return last
