"""Data-parallel pretraining: two gloo processes equal one process on the whole batch.

The workers are started the way ``torchrun`` starts them (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT`` in the environment), on tiny shapes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from asma_bench.errors import ConfigError
from asma_bench.objectives import barlow_twins_loss, gather_batch
from asma_bench.training.distributed import (
    amp_dtype,
    autocast,
    init_from_env,
    is_main,
    shard,
    unwrap,
    world_size,
    wrap,
)

N, D, IN = 8, 12, 5

WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import torch
    from torch import nn

    from asma_bench.config import build_config
    from asma_bench.data.layouts import get_layout
    from asma_bench.data.transforms import Augment
    from asma_bench.errors import ConfigError
    from asma_bench.objectives import barlow_twins_loss
    from asma_bench.training.distributed import (
        init_from_env, rank, rank_generator, shard, world_size, wrap,
    )
    from asma_bench.training.pretrain import (
        build_encoder, build_objective, encoder_names, pretrain_step,
    )

    N, D, IN = {N}, {D}, {IN}
    out = Path(sys.argv[1])
    device = init_from_env()
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)
    x, y = torch.randn(N, IN, generator=g), torch.randn(N, IN, generator=g)
    rows = shard(torch.arange(N))
    result = {{"world": world_size(), "rows": rows}}

    # the loss of the rank's share, gathered, is the loss of the whole batch
    result["loss"] = barlow_twins_loss(z1[rows], z2[rows], lambd=0.1)

    # gradients through the gather and DistributedDataParallel's averaging
    torch.manual_seed(1)
    model = wrap(nn.Linear(IN, D), device)
    barlow_twins_loss(model(x[rows]), model(y[rows]), lambd=0.1).backward()
    result["grads"] = [p.grad.clone() for p in model.parameters()]

    # a whole pretraining step on sharded batches
    cfg = build_config("smoke", ["pretrain.batch_size=8", "pretrain.projector_dim=16"])
    layout = get_layout("ntu25")
    torch.manual_seed(2)
    encoders = {{n: build_encoder(cfg, layout) for n in encoder_names(cfg)}}
    objective = build_objective(cfg, encoders, layout)
    ddp = wrap(objective, device)
    opt = torch.optim.Adam(objective.parameters(), lr=1e-3)
    clips = torch.randn(8, 3, cfg.data.frames, 25, 2, generator=g).cumsum(dim=2)
    step_gen = torch.Generator().manual_seed(3)
    loss = pretrain_step(ddp, clips[shard(torch.arange(8))], Augment(layout), opt, step_gen)
    result["step_loss"] = loss
    result["weights"] = [p.detach().clone() for p in objective.parameters()]
    # each rank draws its own augmentations and masks; the same again on a rerun
    result["draws"] = [torch.rand(4, generator=rank_generator(0, e)) for e in (0, 0, 1)]
    try:
        shard(torch.arange(7))
        result["uneven"] = "accepted"
    except ConfigError as exc:
        result["uneven"] = str(exc)
    torch.save(result, out / f"rank{{rank()}}.pt")
    """
).format(N=N, D=D, IN=IN)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    folder = tmp_path_factory.mktemp("ddp")
    script = folder / "worker.py"
    script.write_text(WORKER)
    port = str(_free_port())
    procs = []
    for r in range(2):
        env = {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}  # fmt: skip
        command = [sys.executable, str(script), str(folder)]
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT))  # fmt: skip
    for p in procs:
        output, _ = p.communicate(timeout=120)
        assert p.returncode == 0, output.decode()[-3000:]
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _data():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(N, D, generator=g), torch.randn(N, D, generator=g)
    x, y = torch.randn(N, IN, generator=g), torch.randn(N, IN, generator=g)
    return z1, z2, x, y


def test_two_ranks_split_the_batch_in_order(two_ranks):
    assert [r["world"] for r in two_ranks] == [2, 2]
    assert torch.equal(two_ranks[0]["rows"], torch.arange(N // 2))
    assert torch.equal(two_ranks[1]["rows"], torch.arange(N // 2, N))
    assert all("multiple of 2" in r["uneven"] for r in two_ranks)


def test_gathered_loss_equals_the_single_process_loss(two_ranks):
    z1, z2, _, _ = _data()
    expected = barlow_twins_loss(z1, z2, lambd=0.1)
    for r in two_ranks:
        torch.testing.assert_close(r["loss"], expected, rtol=1e-5, atol=1e-6)
    # each half alone gives another loss: the gather is what makes them agree
    assert abs(barlow_twins_loss(z1[:4], z2[:4], lambd=0.1) - expected) > 1e-3


def test_ddp_gradients_equal_the_single_process_gradients(two_ranks):
    _, _, x, y = _data()
    torch.manual_seed(1)
    model = nn.Linear(IN, D)
    barlow_twins_loss(model(x), model(y), lambd=0.1).backward()
    for r in two_ranks:
        for got, want in zip(r["grads"], (p.grad for p in model.parameters()), strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_a_sharded_pretraining_step_keeps_the_ranks_identical(two_ranks):
    a, b = two_ranks
    assert torch.isfinite(a["step_loss"])
    torch.testing.assert_close(a["step_loss"], b["step_loss"])  # one loss: the gathered batch
    for wa, wb in zip(a["weights"], b["weights"], strict=True):
        torch.testing.assert_close(wa, wb)  # DDP averaged the same gradients on both ranks


def test_each_rank_draws_its_own_augmentations_and_masks(two_ranks):
    a, b = two_ranks
    assert not torch.equal(a["draws"][0], b["draws"][0])  # rank 1's share is not rank 0's
    assert torch.equal(a["draws"][0], a["draws"][1])  # reproducible: resumable per epoch
    assert not torch.equal(a["draws"][0], a["draws"][2])  # and fresh every epoch


# --- without a process group ---------------------------------------------------------------


def test_helpers_are_transparent_in_a_single_process():
    assert world_size() == 1 and is_main()
    idx = torch.arange(5)
    assert shard(idx) is idx
    module = nn.Linear(2, 2)
    assert wrap(module, "cpu") is module and unwrap(module) is module
    z = torch.randn(3, 4)
    assert gather_batch(z) is z
    assert str(init_from_env()) in ("cpu", "cuda")  # no torchrun variables: nothing joined


def test_amp_dtypes_by_device(monkeypatch, caplog):
    from asma_bench.training import distributed

    assert amp_dtype(False, "cpu") is None and amp_dtype(False, "cuda") is None
    monkeypatch.setattr(distributed, "cpu_bf16_supported", lambda: True)
    assert amp_dtype(True, "cpu") == torch.bfloat16
    with pytest.raises(ConfigError, match="on a CPU autocast runs in bf16 only"):
        amp_dtype(True, "cpu", "fp16")
    monkeypatch.setattr(distributed, "cpu_bf16_supported", lambda: False)
    with caplog.at_level("WARNING"):
        assert amp_dtype(True, "cpu") is None  # emulated bf16 would be slower: fp32
    assert "no native bf16" in caplog.text
    assert amp_dtype(True, "cuda", "fp16") == torch.float16
    assert amp_dtype(True, "cuda", "bf16") == torch.bfloat16
    with pytest.raises(ConfigError, match="amp dtype"):
        amp_dtype(True, "cuda", "fp8")
    x = torch.randn(2, 2)
    with autocast(None, "cpu"):
        assert (x @ x).dtype == torch.float32


def test_sync_batchnorm_needs_cuda(monkeypatch):
    monkeypatch.setattr("asma_bench.training.distributed.is_distributed", lambda: True)
    with pytest.raises(ConfigError, match="CUDA"):
        wrap(nn.BatchNorm1d(3), "cpu", sync_batchnorm=True)
