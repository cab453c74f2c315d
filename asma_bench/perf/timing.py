"""Timing helpers shared by the measurement tools: calibrated repetition timing and summary
statistics of a list of timings (or of any repeated measurement).

Percentiles interpolate linearly between the two nearest order statistics (NumPy's
default, the same as ``statistics.quantiles(..., method="inclusive")``); the median is the
50th percentile.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from asma_bench.errors import ConfigError

#: The shortest timing :func:`calibrate` aims for: far above the timer's resolution.
MIN_SECONDS = 0.004
MAX_REPS = 4096


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
