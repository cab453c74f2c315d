"""A protocol: k-NN evaluation of the pretrained features, with no head to train."""

from __future__ import annotations

from asma_bench.config import RunConfig
from asma_bench.models.heads import FeatureStandardizer
from asma_bench.protocols.base import PROTOCOLS, ProtocolResult, UnitContext
from asma_bench.protocols.linear import extract
from asma_bench.training.data import prepare_data
from asma_bench.training.loop import freeze
from asma_bench.training.metrics import summarize
from asma_bench.training.pretrain import pretrain_for_unit
from asma_bench.training.probe import knn_predictions


@PROTOCOLS.register("knn")
def knn(cfg: RunConfig, ctx: UnitContext) -> ProtocolResult:
    """Pretrain (or reuse the cell's checkpoint), freeze, and score the test split by a
    cosine k-NN vote over the training split (``linear.knn_k``, ``linear.knn_temperature``)
    on features standardised with training statistics."""
    data = prepare_data(cfg.data, cfg.seed, ctx.data_root)
    pre = pretrain_for_unit(cfg, data, ctx)
    for encoder in pre.encoders.values():
        freeze(encoder)
    mode = "single" if len(pre.encoders) == 1 else "concat"
    train, test = (extract(pre.encoders, s, mode, ctx.device) for s in (data.train, data.test))
    norm = FeatureStandardizer(1, train.shape[1]).fit(train)
    bank, query = norm(train)[0], norm(test)[0]
    p = cfg.linear
    pred = knn_predictions(bank, data.train.y, query, data.test.y, data.test.index,
                           data.num_classes, p.knn_k, p.knn_temperature)  # fmt: skip
    metrics = summarize(pred, data.num_classes, "test_")
    return ProtocolResult({**pre.metrics, **metrics}, {"test": pred})
