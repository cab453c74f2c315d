"""Cost of drawing one mask per sample for every registered masking on a realistic batch.

Run with ``pytest benchmarks --benchmark-enable``; timings are reported, not gated.
"""

from __future__ import annotations

import pytest
import torch

from asma_bench.strategies import apply_mask, create_masking, list_maskings

N, C, T, V, M = 64, 3, 50, 25, 2


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, C, T, V, M, generator=g).mul(0.05).cumsum(dim=2)


@pytest.mark.parametrize("name", list_maskings())
def test_bench_masking(benchmark, batch: torch.Tensor, name: str) -> None:
    strategy = create_masking(name)
    generator = torch.Generator().manual_seed(0)
    mask = benchmark(strategy, batch, generator=generator)
    assert mask.shape == (N, T, V)
    per_cell = {"spatial": T, "temporal": V}.get(strategy.kind, 1)
    assert int(mask.sum(dim=(1, 2)).max()) <= strategy.budget(T) * per_cell


@pytest.mark.parametrize(("name", "mode"), [("hdsm", "drop"), ("lmtm", "drop"), ("tube", "zero")])
def test_bench_apply_mask(benchmark, batch: torch.Tensor, name: str, mode: str) -> None:
    mask = create_masking(name)(batch, generator=torch.Generator().manual_seed(0))
    out, _ = benchmark(apply_mask, batch, mask, mode)
    assert out.shape[0] == N
