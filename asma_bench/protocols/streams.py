"""Three-stream ensembles: joint, bone and motion models fused by weighted score fusion.

Each stream is pretrained and linearly probed on its own (checkpoints shared with the
single-stream cells of the same grid); their softmax scores are summed with
``streams.weights``. The lineage sums raw scores; probabilities keep one stream with large
logits from dominating, and equal weights reproduce the usual 3s ensemble.
"""

from __future__ import annotations

import numpy as np
import torch

from asma_bench.config import RunConfig
from asma_bench.errors import ConfigError
from asma_bench.protocols.base import PROTOCOLS, ProtocolResult, UnitContext
from asma_bench.protocols.data import prepare_data
from asma_bench.protocols.linear import cached_linear_teacher
from asma_bench.protocols.metrics import Predictions, summarize
from asma_bench.protocols.training import predict


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
