"""Three-stream ensembles: joint, bone and motion models fused by weighted score fusion.

Each stream is pretrained and linearly probed on its own (checkpoints shared with the
single-stream cells of the same grid); their softmax scores are summed with
``streams.weights``. The lineage sums raw scores; probabilities keep one stream with large
logits from dominating, and equal weights reproduce the usual 3s ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from asma_bench.config import RunConfig
from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.data.streams import STREAMS
from asma_bench.errors import ConfigError
from asma_bench.protocols.base import PROTOCOLS, ProtocolResult, UnitContext
from asma_bench.protocols.linear import cached_linear_teacher
from asma_bench.training.data import prepare_data
from asma_bench.training.loop import predict
from asma_bench.training.metrics import Predictions, summarize


def fuse(predictions: list[Predictions], weights: list[float]) -> Predictions:
    """Weighted sum of softmax scores of predictions on the same samples."""
    if len(predictions) != len(weights):
        raise ConfigError("streams.weights must give one weight per stream")
    first = predictions[0]
    for p in predictions[1:]:
        if not np.array_equal(p.indices, first.indices):
            raise ConfigError("streams were evaluated on different test samples")
    scores = sum(
        w * torch.softmax(torch.as_tensor(p.logits), dim=1).numpy()
        for p, w in zip(predictions, weights, strict=True)
    )
    return Predictions(np.asarray(scores, dtype=np.float32), first.labels, first.indices)


class StreamEnsemble(nn.Module):
    """A multi-stream classifier (3s-ASMa) that takes the joint clip alone.

    Each member is a classifier of one stream; the bone and motion streams are derived
    inside the model from the joint clip, exactly as the feeder derives them (bone: x_v −
    x_parent(v); motion: x_{t+1} − x_t with the last frame zero), so the ensemble exports to
    ONNX as one model with the joint clip as its input, as deployed. The output is the log
    of the weighted mean of the members' softmax scores (the fusion of :func:`fuse`): its
    argmax is the fused prediction and its softmax the fused distribution, so it serves as
    a distillation teacher's logits.
    """

    def __init__(
        self,
        members: dict[str, nn.Module],
        layout: SkeletonLayout | str,
        weights: Sequence[float] | None = None,
    ):
        super().__init__()
        bad = [name for name in members if name not in STREAMS]
        if bad or not members:
            raise ConfigError(f"stream ensemble: members must be among {', '.join(STREAMS)}")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or sum(weights) <= 0:
            raise ConfigError("stream ensemble: one non-negative weight per member, sum > 0")
        self.members = nn.ModuleDict(members)
        self.weights = [w / sum(weights) for w in weights]
        parents = [p for _, p in get_layout(layout).bone_pairs]
        self.register_buffer("parents", torch.as_tensor(parents, dtype=torch.long))

    def stream(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if name == "bone":
            return x - x.index_select(3, self.parents)
        if name == "motion":
            return torch.cat([x[:, :, 1:] - x[:, :, :-1], torch.zeros_like(x[:, :, :1])], dim=2)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = None
        for (name, model), w in zip(self.members.items(), self.weights, strict=True):
            p = w * torch.softmax(model(self.stream(x, name)), dim=1)
            scores = p if scores is None else scores + p
        return torch.log(scores.clamp_min(1e-12))


@PROTOCOLS.register("streams")
def streams(cfg: RunConfig, ctx: UnitContext) -> ProtocolResult:
    preds, metrics = [], {}
    for name in cfg.streams.names:
        cfg_s = cfg.model_copy(update={"data": cfg.data.model_copy(update={"stream": name})})
        data = prepare_data(cfg_s.data, cfg.seed, ctx.data_root)
        model = cached_linear_teacher(cfg_s, data, ctx)
        pred = predict(model, data.test.x, data.test.y, data.test.index, 256, ctx.device)
        metrics[f"{name}_test_top1"] = summarize(pred, data.num_classes)["top1"]
        preds.append(pred)
    fused = fuse(preds, cfg.streams.weights)
    metrics.update(summarize(fused, data.num_classes, "test_"))
    return ProtocolResult(metrics, {"test": fused})
