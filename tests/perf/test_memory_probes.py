"""The package's resident-memory readers (``perf.timing``), shared by the bench and the
ONNX Runtime worker."""

from __future__ import annotations

import numpy as np
import torch

from asma_bench.perf import _ort_worker
from asma_bench.perf.timing import PeakMemory, peak_rss_bytes, rss_bytes


def test_the_peak_is_at_least_the_resident_set_and_sees_a_new_array():
    before = peak_rss_bytes()
    assert before >= rss_bytes() > 0
    with PeakMemory(torch.device("cpu")) as memory:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert memory.peak_mib >= block.nbytes / 2**20  # the block is resident at the end
    assert peak_rss_bytes() >= before and abs(_ort_worker._rss_mb() - peak_rss_bytes() / 2**20) < 1
