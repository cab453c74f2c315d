"""Practical evaluation (PSTL): accuracy of the linear-probed model when joints are missing
or noisy at test time. Corruptions are drawn per sample from a fixed seed, so every cell
and seed is tested on the same corrupted clips."""

from __future__ import annotations

import torch

from asma_bench.config import RunConfig
from asma_bench.protocols.base import PROTOCOLS, ProtocolResult, UnitContext
from asma_bench.protocols.linear import cached_linear_teacher
from asma_bench.training.data import prepare_data
from asma_bench.training.loop import predict
from asma_bench.training.metrics import summarize

CORRUPTION_SEED = 20240


def drop_joints(x: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Zero ``count`` joints per sample (the same joints in every frame and body)."""
    n, _, _, v, _ = x.shape
    if count <= 0:
        return x
    scores = torch.rand(n, v, generator=generator)
    missing = torch.zeros(n, v, dtype=torch.bool)
    missing.scatter_(1, scores.topk(min(count, v), dim=1).indices, True)
    return x * (~missing)[:, None, None, :, None].to(x.dtype)


def add_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise on every joint of the bodies present in a frame.

    Zero-filled absent bodies and padding frames stay zero. Presence is decided per (frame,
    body), not per joint: after centring, the centre joint of the first frame is exactly
    zero and must be noised like the others.
    """
    if std <= 0:
        return x
    present = (x != 0).any(dim=1, keepdim=True).any(dim=3, keepdim=True)
    return x + std * torch.randn(x.shape, generator=generator) * present


@PROTOCOLS.register("robustness")
def robustness(cfg: RunConfig, ctx: UnitContext) -> ProtocolResult:
    data = prepare_data(cfg.data, cfg.seed, ctx.data_root)
    model = cached_linear_teacher(cfg, data, ctx)
    t = data.test
    clean = predict(model, t.x, t.y, t.index, 256, ctx.device)
    metrics = summarize(clean, data.num_classes, "test_")
    predictions = {"test": clean}
    for count in cfg.robustness.missing_joints:
        if count == 0:
            continue
        x = drop_joints(t.x, count, torch.Generator().manual_seed(CORRUPTION_SEED + count))
        pred = predict(model, x, t.y, t.index, 256, ctx.device)
        metrics[f"missing{count}_top1"] = summarize(pred, data.num_classes)["top1"]
        predictions[f"missing{count}"] = pred
    for std in cfg.robustness.noise_std:
        if std == 0:
            continue
        x = add_noise(t.x, std, torch.Generator().manual_seed(CORRUPTION_SEED))
        pred = predict(model, x, t.y, t.index, 256, ctx.device)
        metrics[f"noise{std:g}_top1"] = summarize(pred, data.num_classes)["top1"]
        predictions[f"noise{std:g}"] = pred
    return ProtocolResult(metrics, predictions)
