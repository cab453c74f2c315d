"""Timings of the pretraining step and its parts, at the quick and the paper shapes.

The step is :func:`asma_bench.training.pretrain.pretrain_step` built exactly as the bench
(``asma-bench bench``) builds it: the profile's encoder(s), objective, masks, augmentation
and the protocols' Adam, batch 64. Timings are recorded, never asserted, so CI never gates
on wall time; compare runs with::

    pytest benchmarks/test_bench_step.py --benchmark-enable --benchmark-autosave
    pytest benchmarks/test_bench_step.py --benchmark-enable --benchmark-compare

A shared machine is noisy: compare medians, and look at the IQR pytest-benchmark prints.
"""

from __future__ import annotations

import pytest
import torch

from asma_bench.config import build_config
from asma_bench.data.layouts import get_layout
from asma_bench.data.transforms import Augment
from asma_bench.objectives import masked_view
from asma_bench.perf.workloads import InferenceWorkload, StepWorkload, bench_config
from asma_bench.strategies import create_masking

BATCH = 64
LAYOUT = get_layout("ntu25")


@pytest.mark.parametrize("shapes", ["quick", "paper"])
@pytest.mark.parametrize("objective", ["barlow_twins", "asma"])
def test_bench_pretrain_step(benchmark, shapes, objective):
    workload = StepWorkload(bench_config(shapes, objective, BATCH))
    workload.step(timed=False)  # warm-up: allocator, oneDNN primitives
    benchmark.extra_info.update(shapes=shapes, batch=BATCH, params_m=workload.params_m)
    rounds = 3 if shapes == "paper" else 10
    benchmark.pedantic(workload.step, kwargs={"timed": False}, rounds=rounds, iterations=1)
    assert all(torch.isfinite(p).all() for p in workload.objective.parameters())


@pytest.mark.parametrize("shapes", ["quick", "paper"])
def test_bench_encoder_inference(benchmark, shapes):
    workload = InferenceWorkload(bench_config(shapes, "barlow_twins", BATCH))
    benchmark.extra_info.update(shapes=shapes, batch=BATCH)
    benchmark(workload.step, timed=False)


@pytest.fixture(scope="module")
def paper_batch() -> torch.Tensor:
    cfg = build_config("paper")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, cfg.data.frames, LAYOUT.num_joints, 2, generator=g)
    return x.mul(0.02).cumsum(dim=2)


@pytest.mark.parametrize("name", ["hdsm", "ldsm", "hmtm", "lmtm"])
@pytest.mark.parametrize("mode", ["zero", "drop"])
def test_bench_asma_mask_and_apply(benchmark, paper_batch, name, mode):
    """One ASMa mask drawn per sample and applied (n = 9 joints, k = 10 frames)."""
    params = {"n": 9} if name.endswith("dsm") else {"k": 10}
    strategy = create_masking(name, layout=LAYOUT, **params)
    generator = torch.Generator().manual_seed(0)
    x, kept = benchmark(masked_view, paper_batch, [strategy], mode, generator)
    spatial = name.endswith("dsm")
    if mode == "zero":
        assert x.shape == paper_batch.shape and kept is None
    elif spatial:  # drop: the masked joints leave the input, so the encoder does less work
        assert x.shape[3] == paper_batch.shape[3] - 9 and kept.shape == (BATCH, 16)
    else:  # drop: the masked frames leave the sequence
        assert x.shape[2] == paper_batch.shape[2] - 10 and kept is None


def test_bench_augment_three_views(benchmark, paper_batch):
    augment = Augment(LAYOUT)
    generator = torch.Generator().manual_seed(0)
    views = benchmark(lambda: [augment(paper_batch, generator=generator) for _ in range(3)])
    assert all(v.shape == paper_batch.shape for v in views)
