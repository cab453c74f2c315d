"""The one environment record: the bench's report, the check's baseline and a run's tags."""

from __future__ import annotations

import torch

from asma_bench.environment import cpu_kind_here, environment
from asma_bench.harness.tracking import environment_tags
from asma_bench.perf.bench import environment as bench_environment
from asma_bench.perf.check import _environment as check_environment


def test_the_record_names_the_cpu_kind_and_the_threads():
    env = environment()
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["cpu_kind"] == cpu_kind_here()
    assert env["cpu_kind"].removesuffix("+AMX") == env["cpu_capability"]
    assert env["threads"] == torch.get_num_threads() and env["torch"] == torch.__version__


def test_bench_check_and_tracking_share_the_record():
    env = environment()
    bench = bench_environment(torch.device("cpu"), "foreach", False)
    assert {k: bench[k] for k in env} == env and bench["device"] == "cpu"
    assert check_environment() == {k: str(v) for k, v in env.items()}
    tags = environment_tags()
    assert tags["asma.cpu_kind"] == env["cpu_kind"] and tags["asma.torch"] == env["torch"]
    assert tags["asma.numpy"] == env["numpy"]
