"""Forward-pass timings of every registered backbone on a realistic batch.

N=32 clips of T=50 frames, V=25 joints, M=2 bodies (the lineage's input), default widths,
eval mode, no gradients. Run with ``pytest benchmarks/test_bench_backbones.py
--benchmark-enable``; timings are recorded, never asserted.
"""

from __future__ import annotations

import pytest
import torch

from asma_bench.backbones import count_flops, count_parameters, create_backbone, list_backbones

BATCH = (32, 3, 50, 25, 2)


@pytest.mark.parametrize("name", list_backbones())
def test_backbone_forward(benchmark, name):
    torch.manual_seed(0)
    model = create_backbone(name, layout="ntu25").eval()
    x = torch.randn(*BATCH)
    benchmark.extra_info["params"] = count_parameters(model)
    benchmark.extra_info["gflops_per_clip"] = count_flops(model, x[:1]) / 1e9
    benchmark.extra_info["batch"] = list(BATCH)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    out = benchmark(forward)
    assert out.shape == (BATCH[0], model.out_dim)
