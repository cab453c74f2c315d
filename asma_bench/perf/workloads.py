"""What ``asma-bench bench`` times: a pretraining step of a run's objective
(:class:`StepWorkload`: the configured encoders, objective and masks, the lineage
augmentation and the protocols' optimizer, on batches gathered as pretraining gathers them)
and forward-only inference of one encoder (:class:`InferenceWorkload`), on synthetic clips
whose values do not change a step's cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from asma_bench.config import RunConfig, build_config
from asma_bench.data.layouts import get_layout
from asma_bench.data.transforms import Augment
from asma_bench.errors import ConfigError
from asma_bench.objectives.barlow_twins import TripletBarlowTwins
from asma_bench.perf.timing import (
    PhaseTimer,
    SavedTensors,
    TimedMask,
)
from asma_bench.training.distributed import (
    amp_dtype,
    autocast,
    shard,
    wrap,
)
from asma_bench.training.loop import batches, make_optimizer
from asma_bench.training.pretrain import (
    build_encoder,
    build_objective,
    encoder_names,
    pretrain_step,
)

OPTIMIZERS = ("profile", "foreach", "fused")


def gflop_of(step: Callable[..., None]) -> float:
    """GFLOP of one untimed ``step`` (``torch.utils.flop_counter``)."""
    counter = FlopCounterMode(display=False)
    with counter:
        step(timed=False)
    return counter.get_total_flops() / 1e9


def bench_config(
    shapes: str, objective: str, batch_size: int | None = None, overrides: Sequence[str] = ()
) -> RunConfig:
    """The run configuration of a shape profile (``paper``, ``quick``, or any other
    profile) with ``objective``, ``batch_size`` and ``key.sub=value`` overrides."""
    extra = [f"pretrain.objective={objective}"]
    if batch_size is not None:
        extra.append(f"pretrain.batch_size={batch_size}")
    return build_config(shapes, [*overrides, *extra])


def synthetic_clips(
    cfg: RunConfig, count: int, generator: torch.Generator, num_bodies: int = 2
) -> torch.Tensor:
    """An in-memory set of ``count`` clips (N, 3, T, V, M): a rest pose plus smooth random
    motion, so motion-ranked masks see a realistic spread of frame motion. The cost of a
    step does not depend on the values."""
    layout = get_layout("ntu25")
    t, v = cfg.data.frames, layout.num_joints
    pose = torch.randn(count, 3, 1, v, num_bodies, generator=generator) * 0.3
    steps = torch.randn(count, 3, t, v, num_bodies, generator=generator) * 0.02
    speed = torch.rand(count, 1, t, 1, 1, generator=generator) * 2  # some frames move more
    return (pose + (steps * speed).cumsum(dim=2)).float()


class StepWorkload:
    """A pretraining step of ``cfg``'s objective, built once and timed in rounds."""

    def __init__(
        self,
        cfg: RunConfig,
        *,
        device: torch.device | str = "cpu",
        optimizer: str = "profile",
        seed: int = 0,
    ):
        if optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"bench optimizer {optimizer!r} is not one of {', '.join(OPTIMIZERS)}"
            )
        self.cfg = cfg
        # "profile": the protocols' optimizer for cfg (pretrain.fused_adam)
        fused = cfg.pretrain.fused_adam if optimizer == "profile" else optimizer == "fused"
        self.optimizer = "fused" if fused else "foreach"
        self.device = device = torch.device(device)
        self.name = f"step:{cfg.pretrain.objective}"
        layout = get_layout("ntu25")
        torch.manual_seed(seed)
        self.gen = torch.Generator().manual_seed(seed)
        encoders = {n: build_encoder(cfg, layout).to(device) for n in encoder_names(cfg)}
        self.objective = build_objective(cfg, encoders, layout).to(device).train()
        p = cfg.pretrain
        params = [q for q in self.objective.parameters() if q.requires_grad]
        self.params_m = sum(q.numel() for q in params) / 1e6
        self.opt = make_optimizer(params, p.lr, p.weight_decay, fused=fused)
        self.augment = Augment(layout).to(device)
        self.amp = amp_dtype(cfg.amp, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.batch = p.batch_size
        self.clips = synthetic_clips(cfg, max(4 * self.batch, 256), self.gen).to(device)
        self.timer = PhaseTimer(device)
        for module in self.objective.modules():
            if isinstance(module, TripletBarlowTwins):
                module.spatial = TimedMask(module.spatial, self.timer)
                module.temporal = TimedMask(module.temporal, self.timer)
        # under torchrun: DistributedDataParallel, each rank on its share of every batch
        self.model = wrap(self.objective, device)

    kind = "step"

    def step(self, timed: bool = True, clock: Callable[[str], None] | None = None) -> None:
        """One step on a batch gathered from the in-memory set, as pretraining does
        (``clock`` replaces the phase timer of an untimed step)."""
        idx = next(iter(batches(len(self.clips), self.batch, self.gen, drop_last=True)))
        timer = self.timer if timed else None
        if timer:
            timer.start()
        x = self.clips[shard(idx).to(self.device)]
        if timer:
            timer.mark("data")
        pretrain_step(self.model, x, self.augment, self.opt, self.gen, amp=self.amp,
                      scaler=self.scaler, clock=timer.mark if timer else clock)  # fmt: skip
        if timer:
            timer.stop()

    def gflop(self) -> float:
        """GFLOP of one whole step (forward, backward, optimizer), counted once."""
        return gflop_of(self.step)

    def memory_mib(self) -> tuple[float, float]:
        """(state, activations) in MiB: parameters, optimizer state and the gradients alive
        at once (the step frees them after each update: for ASMa one encoder's), and the
        tensors saved for a backward pass (each storage counted once; for an objective
        that runs several backward passes in a step, the largest one)."""

        def clock(phase: str) -> None:
            if phase == "backward":
                saved.end_pass()

        grad_bytes = [0]

        def count_gradients(optimizer: torch.optim.Optimizer, *_: object) -> None:
            alive = sum(_nbytes(q.grad) for g in optimizer.param_groups for q in g["params"]
                        if q.grad is not None)  # fmt: skip
            grad_bytes[0] = max(grad_bytes[0], alive)

        hook = self.opt.register_step_pre_hook(count_gradients)
        try:
            with SavedTensors(self.objective.parameters()) as saved:
                self.step(timed=False, clock=clock)
        finally:
            hook.remove()
        tensors = list(self.objective.parameters())
        for state in self.opt.state.values():
            tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
        state_bytes = sum(_nbytes(t) for t in tensors) + grad_bytes[0]
        return state_bytes / 2**20, saved.bytes / 2**20


class InferenceWorkload:
    """Forward-only inference of one encoder (eval mode, no autograd)."""

    def __init__(self, cfg: RunConfig, *, device: torch.device | str = "cpu", seed: int = 0):
        self.cfg = cfg
        self.optimizer = ""  # nothing trains
        self.device = device = torch.device(device)
        self.name = "inference"
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.encoder = build_encoder(cfg, get_layout("ntu25")).to(device).eval()
        self.params_m = sum(q.numel() for q in self.encoder.parameters()) / 1e6
        self.batch = cfg.pretrain.batch_size
        self.x = synthetic_clips(cfg, self.batch, gen).to(device)
        self.amp = amp_dtype(cfg.amp, device)
        self.timer = PhaseTimer(device)

    kind = "inference"

    def step(self, timed: bool = True) -> None:
        if timed:
            self.timer.start()
        with torch.inference_mode(), autocast(self.amp, self.device):
            self.encoder(self.x)
        if timed:
            self.timer.mark("forward")
            self.timer.stop()

    def gflop(self) -> float:
        """GFLOP of one forward pass of the batch."""
        return gflop_of(self.step)

    def memory_mib(self) -> tuple[float, float]:
        """(parameters, 0): inference saves nothing for a backward pass."""
        params = sum(p.numel() * p.element_size() for p in self.encoder.parameters())
        return params / 2**20, 0.0


Workload = StepWorkload | InferenceWorkload


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()
