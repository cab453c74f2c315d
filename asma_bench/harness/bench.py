"""Throughput of self-supervised pretraining, measured on the code path the protocols run.

For each shape profile (``paper``: the lineage's ST-GCN with 16 base channels, 10 blocks,
T = 50, M = 2 and the 6144-wide projector; ``quick``: the 2-core CPU profile) and each
objective (single-encoder triplet ``barlow_twins``, two-encoder ``asma``), the bench builds
the configured encoders, objective and masks with
:func:`~asma_bench.protocols.pretrain.build_encoder` /
:func:`~asma_bench.protocols.pretrain.build_objective`, the lineage augmentation
:class:`~asma_bench.data.transforms.Augment` and the protocols' optimizer, then times
:func:`~asma_bench.protocols.pretrain.pretrain_step` on batches gathered from an in-memory
tensor set exactly as pretraining gathers them. It reports samples/s (median over steps,
with the spread as the noise), the share of each phase of the step (batch gathering,
augmentation, mask drawing, forward, backward, optimizer), the FLOPs of one whole step
(forward and backward, counted by ``torch.utils.flop_counter``) and the achieved GFLOP/s,
and the peak memory (resident set on CPU, allocated memory on CUDA). Forward-only
inference of one encoder is timed the same way.

Wall times on a shared machine are noisy: compare ratios measured in one process, look at
the spread, and repeat.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from asma_bench.config import RunConfig, build_config
from asma_bench.data.layouts import get_layout
from asma_bench.data.transforms import Augment
from asma_bench.errors import ConfigError
from asma_bench.objectives.barlow_twins import TripletBarlowTwins
from asma_bench.protocols.distributed import amp_dtype, autocast
from asma_bench.protocols.pretrain import (
    build_encoder,
    build_objective,
    encoder_names,
    pretrain_step,
)
from asma_bench.protocols.training import batches, make_optimizer

log = logging.getLogger(__name__)

SHAPES = ("paper", "quick")
OBJECTIVES = ("barlow_twins", "asma")
OPTIMIZERS = ("foreach", "fused")
PHASES = ("data", "augment", "mask", "forward", "backward", "optimizer")


@dataclass
class Measurement:
    """One timed workload: a pretraining step or forward-only inference."""

    shapes: str
    workload: str  # "step:<objective>" or "inference"
    batch: int
    steps: int
    samples_per_s: float  # batch / median step time
    step_s: float  # median
    step_s_min: float
    step_s_max: float
    shares: dict[str, float] = field(default_factory=dict)  # phase → fraction of step time
    gflop: float = 0.0  # per step (forward + backward for training steps)
    gflops: float = 0.0  # achieved: gflop / median step time
    peak_memory_mib: float = 0.0
    memory: str = "rss"  # "rss" (process resident set) or "cuda" (max allocated)
    params_m: float = 0.0

    @property
    def spread(self) -> float:
        """(max − min) / median of the step times: the noise of this measurement."""
        return (self.step_s_max - self.step_s_min) / self.step_s if self.step_s else 0.0


@dataclass
class BenchReport:
    measurements: list[Measurement]
    environment: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        rows = []
        for m in self.measurements:
            row = asdict(m)
            row["spread"] = m.spread
            rows.append(row)
        return {"environment": self.environment, "measurements": rows}

    def table(self):  # noqa: ANN201 - pandas DataFrame, imported lazily
        """One row per measurement, phase shares in percent."""
        import pandas as pd

        rows = []
        for m in self.measurements:
            row = {
                "shapes": m.shapes,
                "workload": m.workload,
                "batch": m.batch,
                "samples/s": m.samples_per_s,
                "step s": m.step_s,
                "spread %": 100 * m.spread,
                "GFLOP/step": m.gflop,
                "GFLOP/s": m.gflops,
                "peak MiB": m.peak_memory_mib,
            }
            for phase in PHASES:
                row[f"{phase} %"] = 100 * m.shares.get(phase, float("nan"))
            rows.append(row)
        return pd.DataFrame(rows).set_index(["shapes", "workload"])


def bench_config(shapes: str, objective: str, batch_size: int | None = None) -> RunConfig:
    """The run configuration of a shape profile with ``objective`` and ``batch_size``."""
    if shapes not in SHAPES:
        raise ConfigError(f"bench shapes {shapes!r} is not one of {', '.join(SHAPES)}")
    overrides = [f"pretrain.objective={objective}"]
    if batch_size is not None:
        overrides.append(f"pretrain.batch_size={batch_size}")
    return build_config(shapes, overrides)


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


def bench_step(
    cfg: RunConfig,
    *,
    steps: int = 5,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    optimizer: str = "foreach",
    count_flops: bool = True,
    seed: int = 0,
) -> Measurement:
    """Time ``steps`` pretraining steps of ``cfg``'s objective (after ``warmup`` steps)."""
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"bench optimizer {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    _check_counts(steps, warmup)
    device = torch.device(device)
    layout = get_layout("ntu25")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    encoders = {n: build_encoder(cfg, layout).to(device) for n in encoder_names(cfg)}
    objective = build_objective(cfg, encoders, layout).to(device).train()
    p = cfg.pretrain
    params = [q for q in objective.parameters() if q.requires_grad]
    if optimizer == "fused":
        opt: torch.optim.Optimizer = torch.optim.Adam(
            params, lr=p.lr, weight_decay=p.weight_decay, fused=True
        )
    else:
        opt = make_optimizer(params, p.lr, p.weight_decay)
    augment = Augment(layout).to(device)
    amp = amp_dtype(cfg.amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None
    batch = p.batch_size
    clips = synthetic_clips(cfg, max(4 * batch, 256), gen).to(device)
    timer = _PhaseTimer(device)
    for module in objective.modules():
        if isinstance(module, TripletBarlowTwins):
            module.spatial = _TimedMask(module.spatial, timer)
            module.temporal = _TimedMask(module.temporal, timer)

    def one_step() -> None:
        for idx in batches(len(clips), batch, gen, drop_last=True):
            timer.start()
            x = clips[idx.to(device)]
            timer.mark("data")
            pretrain_step(objective, x, augment, opt, gen, amp=amp, scaler=scaler,
                          clock=timer.mark)  # fmt: skip
            timer.stop()
            return

    for _ in range(warmup):
        one_step()
    timer.reset()
    with _PeakMemory(device) as memory:
        for _ in range(steps):
            one_step()
    times = timer.totals
    gflop = _step_flops(objective, clips[:batch], augment, opt, gen, amp) if count_flops else 0.0
    median = statistics.median(times)
    return Measurement(
        shapes="",
        workload=f"step:{p.objective}",
        batch=batch,
        steps=steps,
        samples_per_s=batch / median,
        step_s=median,
        step_s_min=min(times),
        step_s_max=max(times),
        shares=timer.shares(),
        gflop=gflop,
        gflops=gflop / median,
        peak_memory_mib=memory.peak_mib,
        memory=memory.kind,
        params_m=sum(q.numel() for q in params) / 1e6,
    )


def bench_inference(
    cfg: RunConfig,
    *,
    steps: int = 5,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    count_flops: bool = True,
    seed: int = 0,
) -> Measurement:
    """Time forward-only inference of one encoder (eval mode, no autograd) on batches."""
    _check_counts(steps, warmup)
    device = torch.device(device)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    encoder = build_encoder(cfg, get_layout("ntu25")).to(device).eval()
    batch = cfg.pretrain.batch_size
    clips = synthetic_clips(cfg, max(4 * batch, 256), gen).to(device)
    amp = amp_dtype(cfg.amp, device)
    times = []

    def forward(x: torch.Tensor) -> None:
        with torch.inference_mode(), autocast(amp, device):
            encoder(x)

    order = torch.randperm(len(clips), generator=gen)[:batch].to(device)
    for _ in range(warmup):
        forward(clips[order])
    with _PeakMemory(device) as memory:
        for _ in range(steps):
            _sync(device)
            start = time.perf_counter()
            forward(clips[order])
            _sync(device)
            times.append(time.perf_counter() - start)
    gflop = 0.0
    if count_flops:
        counter = FlopCounterMode(display=False)
        with counter:
            forward(clips[order])
        gflop = counter.get_total_flops() / 1e9
    median = statistics.median(times)
    return Measurement(
        shapes="",
        workload="inference",
        batch=batch,
        steps=steps,
        samples_per_s=batch / median,
        step_s=median,
        step_s_min=min(times),
        step_s_max=max(times),
        gflop=gflop,
        gflops=gflop / median,
        peak_memory_mib=memory.peak_mib,
        memory=memory.kind,
        params_m=sum(q.numel() for q in encoder.parameters()) / 1e6,
    )


def run_bench(
    shapes: Sequence[str] = SHAPES,
    objectives: Sequence[str] = OBJECTIVES,
    *,
    steps: int = 5,
    warmup: int = 1,
    batch_size: int | None = 64,
    device: torch.device | str = "cpu",
    amp: bool = False,
    optimizer: str = "foreach",
    inference: bool = True,
    count_flops: bool = True,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Every (shape profile × workload) measurement, in one process.

    ``batch_size`` overrides the profiles' pretraining batch (None keeps it); ``amp``
    enables autocast on CUDA (CPU steps stay fp32).
    """
    for name in objectives:
        if name not in OBJECTIVES:
            raise ConfigError(f"bench objective {name!r} is not one of {', '.join(OBJECTIVES)}")
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device}: CUDA is not available on this machine")
        torch.backends.cudnn.benchmark = True
    out: list[Measurement] = []
    for shape in shapes:
        for name in objectives:
            cfg = _with_amp(bench_config(shape, name, batch_size), amp)
            if progress:
                progress(f"{shape} step:{name}")
            m = bench_step(cfg, steps=steps, warmup=warmup, device=device, optimizer=optimizer,
                           count_flops=count_flops)  # fmt: skip
            m.shapes = shape
            out.append(m)
            log.info("%s %s: %.2f samples/s", shape, m.workload, m.samples_per_s)
        if inference:
            cfg = _with_amp(bench_config(shape, objectives[0] if objectives else "barlow_twins",
                                         batch_size), amp)  # fmt: skip
            if progress:
                progress(f"{shape} inference")
            m = bench_inference(cfg, steps=steps, warmup=warmup, device=device,
                                count_flops=count_flops)  # fmt: skip
            m.shapes = shape
            out.append(m)
    return BenchReport(out, environment(device, optimizer, amp))


def environment(device: torch.device, optimizer: str, amp: bool) -> dict[str, Any]:
    """What the numbers depend on: software, threads, processor or GPU."""
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "processor": _cpu_name(),
        "optimizer": optimizer,
        "amp": amp,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


# --- helpers --------------------------------------------------------------------------------


def _with_amp(cfg: RunConfig, amp: bool) -> RunConfig:
    return cfg.model_copy(update={"amp": bool(amp)})


def _check_counts(steps: int, warmup: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"bench steps={steps!r} must be an integer >= 1")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ConfigError(f"bench warmup={warmup!r} must be an integer >= 0")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _PhaseTimer:
    """Wall time of each phase of each step; mask draws are taken out of the forward."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.phase: dict[str, float] = {p: 0.0 for p in PHASES}
        self.totals: list[float] = []
        self._mask = 0.0

    def start(self) -> None:
        _sync(self.device)
        self._start = self._last = time.perf_counter()
        self._mask = 0.0

    def mark(self, phase: str) -> None:
        _sync(self.device)
        now = time.perf_counter()
        spent = now - self._last
        if phase == "forward":  # mask draws happen inside the forward pass
            spent -= self._mask
        self.phase[phase] += spent
        self._last = now

    def add_mask(self, seconds: float) -> None:
        self._mask += seconds
        self.phase["mask"] += seconds

    def stop(self) -> None:
        self.totals.append(time.perf_counter() - self._start)

    def shares(self) -> dict[str, float]:
        total = sum(self.totals)
        return {p: (t / total if total else 0.0) for p, t in self.phase.items()}


class _TimedMask:
    """A masking strategy that reports the time of its draws to a phase timer."""

    def __init__(self, strategy: Any, timer: _PhaseTimer):
        self.strategy = strategy
        self.timer = timer

    def __call__(self, x: torch.Tensor, generator=None, lengths=None) -> torch.Tensor:  # noqa: ANN001
        _sync(self.timer.device)
        start = time.perf_counter()
        mask = self.strategy(x, generator=generator, lengths=lengths)
        _sync(self.timer.device)
        self.timer.add_mask(time.perf_counter() - start)
        return mask

    def __getattr__(self, name: str) -> Any:
        return getattr(self.strategy, name)


def _step_flops(
    objective: nn.Module,
    x: torch.Tensor,
    augment: Augment,
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    amp: torch.dtype | None,
) -> float:
    """GFLOP of one whole step (forward, backward and optimizer; counted matmuls/convs)."""
    counter = FlopCounterMode(display=False)
    with counter:
        pretrain_step(objective, x, augment, opt, gen, amp=amp)
    return counter.get_total_flops() / 1e9


class _PeakMemory:
    """Peak memory while the block runs: CUDA max allocated, or the resident set size
    sampled every few milliseconds (falling back to the process high-water mark)."""

    def __init__(self, device: torch.device, interval: float = 0.005):
        self.device = device
        self.interval = interval
        self.peak_mib = 0.0
        self.kind = "cuda" if device.type == "cuda" else "rss"

    def __enter__(self) -> _PeakMemory:
        if self.kind == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._stop = threading.Event()
        self._peak = _rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        if self.kind == "cuda":
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self._peak, _rss_bytes()) / 2**20


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: the process high-water mark
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if platform.system() == "Darwin" else peak * 1024


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def parse_shapes(value: str) -> tuple[str, ...]:
    """``paper``, ``quick`` or ``both`` (the CLI's ``--shapes``)."""
    if value == "both":
        return SHAPES
    if value not in SHAPES:
        raise ConfigError(f"--shapes {value!r} is not one of paper, quick, both")
    return (value,)


def format_environment(env: dict[str, Any]) -> str:
    keys: Iterable[str] = ("device", "processor", "gpu", "threads", "torch", "optimizer", "amp")
    return ", ".join(f"{k} {env[k]}" for k in keys if k in env)
