"""The machine and software a measurement or a run depends on: one record for the bench's
reports, the CI check's baselines and the MLflow tags of a run.

Keys: ``torch``, ``python``, ``numpy`` and ``onnxruntime`` (versions; ``onnxruntime`` only
where it is installed), ``machine`` (``x86_64``, ``arm64``, …), ``cpus`` (logical cores),
``cpu_capability`` (the vector instructions torch's kernels use: ``AVX512``, ``AVX2``,
``DEFAULT``, …), ``cpu_kind`` (that capability, with ``+AMX`` on CPUs with AMX tiles),
``processor`` (the CPU's model name) and ``threads`` (torch's intra-op threads).
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from typing import Any

import numpy
import torch


def environment() -> dict[str, Any]:
    """This process's record (see the module docstring for the keys)."""
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_kind": cpu_kind_here(),
        "processor": cpu_name(),
        "threads": torch.get_num_threads(),
        "numpy": numpy.__version__,
    }
    ort = _version("onnxruntime")
    if ort is not None:
        env["onnxruntime"] = ort
    return env


def cpu_kind_here() -> str:
    """This CPU's kind for latency ratios: torch's vector capability, with ``+AMX`` on CPUs
    with AMX tiles (Sapphire Rapids and later), which are a kind of their own (see
    :func:`asma_bench.perf.check.other_cpu`)."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return torch.backends.cpu.get_cpu_capability() + ("+AMX" if amx else "")


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
