"""Throughput of self-supervised pretraining, measured on the code path the protocols run.

For each shape profile (``paper``: the lineage's ST-GCN with 16 base channels, 10 blocks,
T = 50, M = 2 and the 6144-wide projector; ``quick``: the 2-core CPU profile) and each
objective (single-encoder triplet ``barlow_twins``, two-encoder ``asma``), the bench builds
the configured encoders, objective and masks with
:func:`~asma_bench.training.pretrain.build_encoder` /
:func:`~asma_bench.training.pretrain.build_objective`, the lineage augmentation
:class:`~asma_bench.data.transforms.Augment` and the protocols' optimizer, then times
:func:`~asma_bench.training.pretrain.pretrain_step` on batches gathered from an in-memory
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

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import torch

from asma_bench.config import CATALOG_SUFFIXES, RunConfig, list_profiles
from asma_bench.environment import environment as machine_environment
from asma_bench.errors import ConfigError
from asma_bench.perf.timing import (
    PHASES,
    PeakMemory,
    peak_rss_bytes,
    summarize,
    sync,
)
from asma_bench.perf.workloads import (
    InferenceWorkload,
    StepWorkload,
    Workload,
    bench_config,
)
from asma_bench.training.distributed import (
    init_from_env,
    world_size,
)

log = logging.getLogger(__name__)

SHAPES = ("paper", "quick")
OBJECTIVES = ("barlow_twins", "asma")
MEMORY_MODES = ("isolated", "shared")


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
    state_mib: float = 0.0  # parameters, optimizer state, the gradients alive at once
    optimizer: str = ""  # Adam's kernel in a training step: foreach or fused
    activations_mib: float = 0.0  # tensors saved for the backward pass of one step

    @property
    def spread(self) -> float:
        """(max − min) / median of the step times: the noise of this measurement."""
        return (self.step_s_max - self.step_s_min) / self.step_s if self.step_s else 0.0


@dataclass
class BenchReport:
    measurements: list[Measurement]
    environment: dict[str, Any]
    # "<shapes> <workload>" → the step's top operators (see :func:`top_operators`)
    operators: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        rows = []
        for m in self.measurements:
            row = asdict(m)
            row["spread"] = m.spread
            rows.append(row)
        out: dict[str, Any] = {"environment": self.environment, "measurements": rows}
        if self.operators:
            out["operators"] = self.operators
        return out

    def table(self) -> pd.DataFrame:
        """One row per measurement, phase shares in percent."""
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
                "optimizer": m.optimizer or "-",
                "state MiB": m.state_mib,
                "activ. MiB": m.activations_mib,
                f"peak {m.memory} MiB": m.peak_memory_mib,
            }
            for phase in PHASES:
                row[f"{phase} %"] = 100 * m.shares.get(phase, float("nan"))
            rows.append(row)
        return pd.DataFrame(rows).set_index(["shapes", "workload"])


def measure(
    workloads: Sequence[Workload],
    *,
    steps: int = 5,
    warmup: int = 1,
    rounds: int = 1,
    count_flops: bool = True,
    progress: Callable[[str], None] | None = None,
) -> list[Measurement]:
    """Time every workload in ``rounds`` round-robin rounds of ``steps`` steps each.

    Interleaving the workloads spreads the load of a shared machine over all of them, so
    their ratios stay meaningful; each result is the median over all its timed steps.
    """
    _check_counts(steps, warmup, rounds)
    peaks = {id(w): 0.0 for w in workloads}
    for w in workloads:
        if progress:
            progress(f"warm-up {w.name}")
        for _ in range(warmup):
            w.step(timed=False)
        w.timer.reset()
    for r in range(rounds):
        for w in workloads:
            if progress:
                progress(f"round {r + 1}/{rounds} {w.name}")
            with PeakMemory(w.device) as memory:
                for _ in range(steps):
                    w.step()
            peaks[id(w)] = max(peaks[id(w)], memory.peak_mib)
    out = []
    for w in workloads:
        times = summarize(w.timer.totals)
        median = times.median
        gflop = w.gflop() if count_flops else 0.0
        state_mib, activations_mib = w.memory_mib()
        shares = w.timer.shares() if isinstance(w, StepWorkload) else {}
        out.append(
            Measurement(
                shapes="",
                workload=w.name,
                batch=w.batch,
                steps=times.n,
                samples_per_s=w.batch / median,
                step_s=median,
                step_s_min=times.min,
                step_s_max=times.max,
                shares=shares,
                gflop=gflop,
                gflops=gflop / median,
                peak_memory_mib=peaks[id(w)],
                memory="cuda" if w.device.type == "cuda" else "rss",
                params_m=w.params_m,
                state_mib=state_mib,
                activations_mib=activations_mib,
            )
        )
    return out


def run_bench(
    shapes: Sequence[str] = SHAPES,
    objectives: Sequence[str] = OBJECTIVES,
    *,
    steps: int = 5,
    warmup: int = 1,
    rounds: int = 1,
    batch_size: int | None = 64,
    device: torch.device | str = "cpu",
    amp: bool = False,
    optimizer: str = "profile",
    inference: bool = True,
    count_flops: bool = True,
    overrides: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
    memory: str = "isolated",
    operators: int = 0,
) -> BenchReport:
    """Every (shape profile × workload) measurement, in one process.

    Workloads of one shape profile are interleaved (see :func:`measure`). ``batch_size``
    overrides the profiles' pretraining batch (None keeps it); ``overrides`` are further
    ``key.sub=value`` settings (e.g. ``masking.mode=drop``); ``amp`` enables autocast
    (bf16 on a CPU with native bf16, see :func:`~asma_bench.training.distributed.amp_dtype`).
    ``optimizer``: ``profile`` builds each profile's own Adam (``pretrain.fused_adam``),
    ``foreach`` or ``fused`` one kernel for every profile.

    ``memory``: on a CPU, ``isolated`` (default) reports each workload's peak resident set
    measured in a fresh process that builds only that workload (:func:`isolated_peak_mib`);
    ``shared`` samples this process, which holds every workload at once. ``operators``:
    when > 0, the profiler's top operators of one step of each workload
    (:func:`top_operators`).
    """
    if memory not in MEMORY_MODES:
        raise ConfigError(f"bench memory={memory!r} is not one of {', '.join(MEMORY_MODES)}")
    if isinstance(operators, bool) or not isinstance(operators, int) or operators < 0:
        raise ConfigError(f"bench operators={operators!r} must be an integer >= 0")
    for name in objectives:
        if name not in OBJECTIVES:
            raise ConfigError(f"bench objective {name!r} is not one of {', '.join(OBJECTIVES)}")
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device}: CUDA is not available on this machine")
        torch.backends.cudnn.benchmark = True
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun: one rank per GPU
        if device.type == "cuda":
            device = init_from_env()
        else:  # CPU ranks (gloo), even on a machine with a GPU
            init_from_env("gloo")
    out: list[Measurement] = []
    tables: dict[str, list[dict[str, Any]]] = {}
    for shape in shapes:
        if progress:
            progress(f"building {shape} workloads")
        configs = [
            ("step", _with_amp(bench_config(shape, name, batch_size, overrides), amp), optimizer)
            for name in objectives
        ]
        if inference:
            cfg = _with_amp(bench_config(shape, "barlow_twins", batch_size, overrides), amp)
            configs.append(("inference", cfg, optimizer))
        workloads: list[Workload] = [
            StepWorkload(cfg, device=device, optimizer=opt)
            if kind == "step"
            else InferenceWorkload(cfg, device=device)
            for kind, cfg, opt in configs
        ]
        step_progress = (lambda what, s=shape: progress(f"{s}: {what}")) if progress else None
        measured = measure(workloads, steps=steps, warmup=warmup, rounds=rounds,
                           count_flops=count_flops, progress=step_progress)  # fmt: skip
        for w, m in zip(workloads, measured, strict=True):
            m.shapes = shape
            m.optimizer = w.optimizer
            if operators:
                if progress:
                    progress(f"{shape}: operators of {w.name}")
                tables[f"{shape} {w.name}"] = top_operators(w, operators)
        del workloads
        if memory == "isolated" and device.type == "cpu" and world_size() == 1:
            for w_cfg, m in zip(configs, measured, strict=True):
                if progress:
                    progress(f"{shape}: memory of {m.workload} in its own process")
                m.peak_memory_mib = isolated_peak_mib(*w_cfg, steps=max(1, min(steps, 2)))
        for m in measured:
            if device.type == "cpu" and memory == "shared":
                m.memory = "shared rss"
            out.append(m)
            log.info("%s %s: %.2f samples/s", shape, m.workload, m.samples_per_s)
    env = environment(device, optimizer, amp)
    env["overrides"] = list(overrides)
    env["ranks"] = world_size()
    env["memory"] = memory if device.type == "cpu" else "cuda"
    return BenchReport(out, env, tables)


def isolated_peak_mib(kind: str, cfg: RunConfig, optimizer: str, steps: int = 2) -> float:
    """Peak resident set (MiB) of a fresh Python process that builds one workload
    (``step`` or ``inference`` of ``cfg``) and runs a warm-up and ``steps`` steps: what the
    workload needs on its own, the interpreter and libraries included. The process uses
    this process's number of threads."""
    request = {
        "kind": kind,
        "config": cfg.model_dump(mode="json"),
        "optimizer": optimizer,
        "steps": steps,
        "threads": torch.get_num_threads(),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "asma_bench.perf.bench"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise RuntimeError(f"measuring the memory of {kind} in its own process: {lines[-1]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"])


def _isolated_child() -> None:
    """The process :func:`isolated_peak_mib` starts: a request on stdin, JSON on stdout."""
    request = json.loads(sys.stdin.read())
    torch.set_num_threads(int(request["threads"]))
    cfg = RunConfig.model_validate(request["config"])
    if request["kind"] == "step":
        workload: Workload = StepWorkload(cfg, optimizer=request["optimizer"])
    else:
        workload = InferenceWorkload(cfg)
    for _ in range(1 + int(request["steps"])):
        workload.step(timed=False)
    print(json.dumps({"peak_mib": peak_rss_bytes() / 2**20}))


def top_operators(workload: Workload, top: int = 15) -> list[dict[str, Any]]:
    """The ``top`` operators of one step of ``workload`` by self time (PyTorch profiler):
    name, calls, self milliseconds and share of the step's total self time."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    cuda = workload.device.type == "cuda"
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        workload.step(timed=False)
        sync(workload.device)
    events = [e for e in prof.key_averages() if e.key]
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    total = sum(getattr(e, attr) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, attr), reverse=True)
    return [
        {
            "operator": e.key,
            "calls": int(e.count),
            "self_ms": getattr(e, attr) / 1e3,
            "share": getattr(e, attr) / total,
        }
        for e in events[:top]
    ]


def environment(device: torch.device, optimizer: str, amp: bool) -> dict[str, Any]:
    """What the numbers depend on: the machine's record
    (:func:`asma_bench.environment.environment`), the device (and GPU) and the settings."""
    env: dict[str, Any] = {
        **machine_environment(),
        "device": str(device),
        "optimizer": optimizer,
        "amp": amp,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


# --- helpers --------------------------------------------------------------------------------


def _with_amp(cfg: RunConfig, amp: bool) -> RunConfig:
    return cfg.model_copy(update={"amp": bool(amp)})


def _check_counts(steps: int, warmup: int, rounds: int) -> None:
    for name, value, low in (("steps", steps, 1), ("warmup", warmup, 0), ("rounds", rounds, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"bench {name}={value!r} must be an integer >= {low}")


def parse_shapes(value: str) -> tuple[str, ...]:
    """The CLI's ``--shapes``: ``paper``, ``quick``, ``both``, or another profile's name."""
    if value == "both":
        return SHAPES
    if value not in list_profiles() and not value.endswith(CATALOG_SUFFIXES):
        raise ConfigError(
            f"--shapes {value!r} is not one of both, {', '.join(list_profiles())} "
            "(or a profile .yaml file)"
        )
    return (value,)


def format_environment(env: dict[str, Any]) -> str:
    keys: Iterable[str] = ("device", "processor", "gpu", "threads", "torch", "optimizer", "amp")
    return ", ".join(f"{k} {env[k]}" for k in keys if k in env)


if __name__ == "__main__":  # the child process of isolated_peak_mib
    _isolated_child()
