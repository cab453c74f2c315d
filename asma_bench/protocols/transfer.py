"""Transfer: pretrain on dataset A (``data``), then fine-tune or probe on dataset B
(``transfer.target``), e.g. clean synthetic → noisy synthetic, or NTU-60 → PKU-MMD II."""

from __future__ import annotations

from asma_bench.config import RunConfig
from asma_bench.errors import ConfigError
from asma_bench.protocols.base import PROTOCOLS, ProtocolResult, UnitContext
from asma_bench.protocols.finetune import finetune_encoders
from asma_bench.protocols.linear import linear_probe
from asma_bench.training.data import prepare_data
from asma_bench.training.pretrain import encoder_names, pretrain_for_unit


@PROTOCOLS.register("transfer")
def transfer(cfg: RunConfig, ctx: UnitContext) -> ProtocolResult:
    if cfg.transfer.target is None:
        raise ConfigError("transfer.target must name the target dataset (a data section)")
    source = prepare_data(cfg.data, cfg.seed, ctx.data_root)
    target = prepare_data(cfg.transfer.target, cfg.seed, ctx.data_root)
    if source.layout.name != target.layout.name:  # (planning refuses it first)
        raise ConfigError(
            f"transfer: source layout {source.layout.name} differs from target "
            f"layout {target.layout.name}"
        )
    pre = pretrain_for_unit(cfg, source, ctx)
    if cfg.transfer.mode == "finetune":
        _, result = finetune_encoders(cfg, pre.encoders, target, ctx)
    else:
        mode = "aligned" if len(encoder_names(cfg)) == 2 else "single"
        _, result = linear_probe(cfg, pre.encoders, target, ctx, mode)
    return result
