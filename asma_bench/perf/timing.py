"""Timing helpers shared by the measurement tools: calibrated repetition timing and summary
statistics of a list of timings (or of any repeated measurement); the probes of the
pretraining bench (phase timer, saved-tensor and peak-memory probes) and the package's
reader of a process's resident memory.

Percentiles interpolate linearly between the two nearest order statistics (NumPy's
default, the same as ``statistics.quantiles(..., method="inclusive")``); the median is the
50th percentile.

torch is imported where it is used: the ONNX Runtime worker reads its peak memory here
without loading it.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from asma_bench.errors import ConfigError

if TYPE_CHECKING:
    import torch

#: The shortest timing :func:`calibrate` aims for: far above the timer's resolution.
MIN_SECONDS = 0.004
MAX_REPS = 4096
#: The phases of a pretraining step the bench's :class:`PhaseTimer` separates.
PHASES = ("data", "augment", "mask", "forward", "backward", "optimizer")


def time_per_call(fn: Callable[[], Any], reps: int) -> float:
    """Seconds per call of ``fn``, over ``reps`` back-to-back calls."""
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def calibrate(
    fn: Callable[[], Any], min_seconds: float = MIN_SECONDS, max_reps: int = MAX_REPS
) -> int:
    """Repetitions so that one timing of ``fn`` lasts at least ``min_seconds`` (at most
    ``max_reps``); ``fn`` is called once first as a warm-up."""
    fn()  # warm-up
    reps = 1
    while True:
        t = time_per_call(fn, reps) * reps
        if t >= min_seconds or reps >= max_reps:
            return reps
        reps = min(max_reps, max(reps * 2, int(reps * min_seconds / max(t, 1e-9)) + 1))


@dataclass(frozen=True)
class Summary:
    """Summary statistics of repeated measurements (in their own unit)."""

    n: int
    mean: float
    min: float
    max: float
    p25: float
    p50: float
    p75: float
    p95: float
    std: float  # sample standard deviation (0 for a single value)

    @property
    def median(self) -> float:
        """The median: the 50th percentile."""
        return self.p50

    @property
    def range_spread(self) -> float:
        """(max − min) / median: the whole range relative to the typical value."""
        return (self.max - self.min) / self.median if self.median else 0.0

    @property
    def iqr_spread(self) -> float:
        """Interquartile range / median: the spread, robust to a few outliers."""
        return (self.p75 - self.p25) / self.median if self.median else 0.0


def summarize(values: Sequence[float]) -> Summary:
    """:class:`Summary` of a non-empty sequence of finite numbers."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ConfigError("summary statistics need a non-empty list of finite numbers")
    p25, p50, p75, p95 = (float(p) for p in np.percentile(v, [25, 50, 75, 95]))
    as_list = v.tolist()
    return Summary(
        n=int(v.size),
        mean=float(v.mean()),
        min=float(v.min()),
        max=float(v.max()),
        p25=p25,
        p50=p50,
        p75=p75,
        p95=p95,
        std=sample_std(as_list),
    )


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (n − 1), 0 for fewer than two values."""
    return statistics.stdev(list(values)) if len(values) > 1 else 0.0


def latency_summary(times_ms: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean latency (ms) and frames per second at batch 1 (1000 / mean) of
    positive timings in milliseconds."""
    t = np.asarray(times_ms, dtype=float)
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ConfigError("timings must be a non-empty list of positive numbers")
    s = summarize(t)
    return {"p50_ms": s.p50, "p95_ms": s.p95, "mean_ms": s.mean, "fps": 1000.0 / s.mean}


def fastest_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> tuple[float, float]:
    """(fastest numerator / fastest denominator, interquartile spread of the per-round
    ratios) of two interleaved series of timings: another job on a shared machine only
    ever adds time, so the fastest of each side is the least disturbed."""
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return min(numerator) / min(denominator), summarize(ratios).iqr_spread


# --- probes of the pretraining bench ---------------------------------------------------------


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on a CPU."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


class PhaseTimer:
    """Wall time of each phase of each step; mask draws are taken out of the forward."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.phase: dict[str, float] = {p: 0.0 for p in PHASES}
        self.totals: list[float] = []
        self._mask = 0.0
        self.active = False

    def start(self) -> None:
        sync(self.device)
        self._start = self._last = time.perf_counter()
        self._mask = 0.0
        self.active = True

    def mark(self, phase: str) -> None:
        sync(self.device)
        now = time.perf_counter()
        spent = now - self._last
        if phase == "forward":  # mask draws happen inside the forward pass
            spent -= self._mask
            self._mask = 0.0  # an objective may run several forward passes per step
        self.phase[phase] += spent
        self._last = now

    def add_mask(self, seconds: float) -> None:
        if self.active:
            self._mask += seconds
            self.phase["mask"] += seconds

    def stop(self) -> None:
        """End the step at its last mark, so the phases partition the step time."""
        self.totals.append(self._last - self._start)
        self.active = False

    def shares(self) -> dict[str, float]:
        total = sum(self.totals)
        return {p: (t / total if total else 0.0) for p, t in self.phase.items()}


class TimedMask:
    """A masking strategy that reports the time of its draws to a phase timer."""

    def __init__(self, strategy: Any, timer: PhaseTimer):
        self.strategy = strategy
        self.timer = timer

    def __call__(self, x: torch.Tensor, generator=None, lengths=None) -> torch.Tensor:  # noqa: ANN001
        if not self.timer.active:
            return self.strategy(x, generator=generator, lengths=lengths)
        sync(self.timer.device)
        start = time.perf_counter()
        mask = self.strategy(x, generator=generator, lengths=lengths)
        sync(self.timer.device)
        self.timer.add_mask(time.perf_counter() - start)
        return mask

    def __getattr__(self, name: str) -> Any:
        return getattr(self.strategy, name)


class SavedTensors:
    """Bytes of the distinct storages saved for backward while the block runs, parameters
    excluded (autograd saved-tensor hooks)."""

    def __init__(self, params: Iterable[torch.Tensor]):
        self._params = {p.untyped_storage().data_ptr() for p in params}
        self._seen: dict[int, int] = {}
        self._largest = 0

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self._params:
            self._seen.setdefault(ptr, storage.nbytes())
        return t

    def end_pass(self) -> None:
        """A backward pass has run: what it saved is freed (its storages may be reused)."""
        self._largest = self.bytes
        self._seen.clear()

    @property
    def bytes(self) -> int:
        """The largest pass's saved bytes so far."""
        return max(self._largest, sum(self._seen.values()))

    def __enter__(self) -> SavedTensors:
        import torch

        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)


class PeakMemory:
    """Peak memory while the block runs: CUDA max allocated, or the resident set size
    sampled every few milliseconds (falling back to the process high-water mark)."""

    def __init__(self, device: torch.device, interval: float = 0.005):
        self.device = device
        self.interval = interval
        self.peak_mib = 0.0
        self.kind = "cuda" if device.type == "cuda" else "rss"

    def __enter__(self) -> PeakMemory:
        if self.kind == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._stop = threading.Event()
        self._peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        if self.kind == "cuda":
            import torch

            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self._peak, rss_bytes()) / 2**20


# --- resident memory of this process ----------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident set now (Linux); elsewhere its high-water mark."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: the process high-water mark
        return _maxrss_bytes()


def peak_rss_bytes() -> int:
    """This process's peak resident set. On Linux the memory map's own high-water mark
    (``VmHWM``): ``getrusage``'s maximum survives ``exec`` and would report the parent's
    resident set at the time it started this process."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return _maxrss_bytes()


def _maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if platform.system() == "Darwin" else peak * 1024  # bytes vs KiB
