"""Timing one ONNX model with ONNX Runtime in a fresh process (used by ``latency.py``).

A separate process gives a clean peak resident memory: only Python, NumPy, ONNX Runtime
and the one model, nothing from torch or the harness. Prints one JSON object.

    python -m asma_bench.perf._ort_worker MODEL.onnx THREADS RUNS WARMUP
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import onnxruntime as ort

from asma_bench.perf.timing import peak_rss_bytes


def _rss_mb() -> float:
    """Peak resident memory of this process, MiB (:func:`~asma_bench.perf.timing.peak_rss_bytes`:
    ``VmHWM`` on Linux, which belongs to this process image alone)."""
    return peak_rss_bytes() / 2**20


def main(argv: list[str]) -> dict:
    path, threads, runs, warmup = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    base_rss = _rss_mb()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]  # batch 1
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feed = {inp.name: x}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000.0)
    return {
        "threads": threads,
        "runs": runs,
        "warmup": warmup,
        "times_ms": times,
        "base_rss_mb": base_rss,
        "peak_rss_mb": _rss_mb(),
        "input_shape": shape,
        "onnxruntime": ort.__version__,
    }


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess
    json.dump(main(sys.argv[1:]), sys.stdout)
