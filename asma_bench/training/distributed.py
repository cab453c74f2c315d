"""Data-parallel pretraining across processes (``torchrun``), and mixed precision on GPUs.

Launch one process per GPU with ``torchrun --nproc_per_node=N``; :func:`init_from_env`
joins the process group torchrun describes in the environment (NCCL on CUDA, gloo on CPU).
Every rank builds the same model from the same seed and draws the same batch order; each
takes its contiguous share of every batch (:func:`shard`), and the Barlow Twins
cross-correlation is computed on the batch gathered from all ranks (see
:func:`asma_bench.objectives.barlow_twins.gather_batch`), so the loss is the single-process
loss of the whole batch. BatchNorm layers inside the encoders and projectors use each
rank's share unless converted to SyncBatchNorm (:func:`wrap`, CUDA only).
"""

from __future__ import annotations

import atexit
import inspect
import logging
import os
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.distributed as dist
from torch import nn

from asma_bench.errors import ConfigError

log = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def is_distributed() -> bool:
    """A process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes checkpoints and logs."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def init_from_env(backend: str | None = None) -> torch.device:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``/``MASTER_PORT``); return this rank's device.

    Without those variables (a plain ``python`` run) nothing is initialised and the device
    is ``cuda`` when available, else ``cpu``. ``backend`` defaults to NCCL with CUDA and
    gloo without.
    """
    cuda = torch.cuda.is_available()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return torch.device("cuda" if cuda else "cpu")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
        atexit.register(leave_process_group)
    log.info("rank %d of %d on %s", dist.get_rank(), dist.get_world_size(), device)
    return device


def leave_process_group() -> None:
    """Destroy the process group this process joined, if any (registered to run at exit by
    :func:`init_from_env`). A group left to the interpreter's shutdown can abort it: gloo's
    threads are torn down after the objects they use ("terminate called without an active
    exception", exit status -6), which turns a finished run into a crash."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_generator(seed: int, epoch: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for this rank's random draws (augmentation, masks) in ``epoch``.

    Batches are chosen by a generator every rank shares (so the ranks agree on the batch),
    but each rank must draw its own augmentations and masks for its share: with the shared
    generator, sample i of every rank's share would get the same crop, rotation and mask.
    Seeded from (seed, epoch, rank), so a run resumed at an epoch boundary draws the same.
    """
    mixed = (int(seed) * 1_000_003 + int(epoch) * 10_007 + rank() * 101 + 17) % (2**63)
    return torch.Generator(device=device).manual_seed(mixed)


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous share of a batch of indices (all of it without a group).

    Contiguous shares keep the gathered batch in the batch's own order. The batch size must
    be a multiple of the number of ranks: every rank must hold the same number of samples.
    """
    size = world_size()
    if size == 1:
        return indices
    if len(indices) % size:
        raise ConfigError(
            f"batch of {len(indices)} samples does not split evenly over {size} ranks; "
            f"choose pretrain.batch_size as a multiple of {size}"
        )
    share = len(indices) // size
    return indices[rank() * share : (rank() + 1) * share]


def wrap(module: nn.Module, device: torch.device | str, sync_batchnorm: bool = False) -> nn.Module:
    """``module`` in DistributedDataParallel when a group is initialised, else unchanged.

    ``sync_batchnorm`` converts BatchNorm layers to SyncBatchNorm first (CUDA only), so
    their statistics cover the whole batch as in a single process.
    """
    if not is_distributed():
        return module
    device = torch.device(device)
    if sync_batchnorm:
        if device.type != "cuda":
            raise ConfigError("sync_batchnorm needs CUDA devices (SyncBatchNorm has no CPU kernel)")
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ids = [device.index] if device.type == "cuda" and device.index is not None else None
    # BatchNorm running statistics stay per rank (rank 0 saves them): input normalisation on
    # kept joints replaces its buffers, which a broadcast of stale references would miss
    ddp = nn.parallel.DistributedDataParallel
    params = inspect.signature(ddp.__init__).parameters
    no_sync = {"forward_sync_buffers" if "forward_sync_buffers" in params
               else "broadcast_buffers": False}  # fmt: skip
    return ddp(module, device_ids=ids, **no_sync)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def amp_dtype(
    enabled: bool, device: torch.device | str, dtype: str | None = None
) -> torch.dtype | None:
    """The autocast dtype for a run: None (fp32) unless ``enabled``.

    On CUDA ``dtype`` is ``bf16`` or ``fp16``; by default bf16 where the GPU supports it
    (no loss scaling needed), else fp16 (with a GradScaler). On a CPU: bf16 where the
    processor computes it natively (AVX512-BF16 or AMX, see :func:`cpu_bf16_supported`;
    matrix products and convolutions run 2–4 times faster than in fp32), else fp32 with
    a warning, since emulated bf16 would be slower than fp32.
    """
    if not enabled:
        return None
    kind = torch.device(device).type
    if kind == "cpu":
        if dtype not in (None, "bf16"):
            raise ConfigError(f"amp dtype {dtype!r}: on a CPU autocast runs in bf16 only")
        if cpu_bf16_supported():
            return torch.bfloat16
        log.warning("amp: this CPU has no native bf16 (AVX512-BF16 or AMX); running in fp32")
        return None
    if kind != "cuda":
        return None
    if dtype is None:
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in AMP_DTYPES:
        raise ConfigError(f"amp dtype {dtype!r} is not one of {', '.join(AMP_DTYPES)}")
    return AMP_DTYPES[dtype]


def cpu_bf16_supported() -> bool:
    """Whether oneDNN computes bf16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def autocast(dtype: torch.dtype | None, device: torch.device | str) -> AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op context for fp32."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
