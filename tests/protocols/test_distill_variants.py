"""Distillation variants: feature-level (Table 11) and a three-stream teacher (Table 2)."""

import torch

from asma_bench.protocols import UnitContext, run_protocol
from asma_bench.protocols.distill import build_teacher, teacher_features
from asma_bench.protocols.streams import StreamEnsemble
from asma_bench.training.data import prepare_data


def test_feature_distillation_aligns_features_then_probes(smoke, data_root, tmp_path):
    cfg = smoke("pretrain.objective=asma", "distill.kind=feature", "distill.epochs=3")
    curves: list[dict] = []
    ctx = UnitContext(data_root, tmp_path / "ckpt", on_epoch=lambda e, m: curves.append(m))
    result = run_protocol("distill", cfg, ctx)
    pred = result.predictions["test"]
    assert result.metrics["test_top1"] == 100.0 * float(pred.correct.mean())
    cosine = [m["distill_loss"] for m in curves if "distill_loss" in m]  # 1 − cos, per epoch
    assert len(cosine) == 3 and 0 <= cosine[-1] < cosine[0] <= 2
    assert any("distill_probe_val_top1" in m for m in curves)  # then a linear probe
    data = prepare_data(cfg.data, cfg.seed, data_root)
    teacher = build_teacher(cfg, data, ctx)
    feats = teacher_features(teacher, data.test.x[:4])
    alignment = teacher.head.head  # behind the probe's standardisation
    assert feats.shape == (4, alignment.head.in_features)  # the aligned, pooled features


def test_three_stream_teacher_fuses_stream_teachers(smoke, ctx, data_root):
    # a one-encoder teacher per stream keeps the test small; ASMa's works the same way
    cfg = smoke("distill.teacher_streams=[joint, bone, motion]", "streams.weights=[2, 1, 1]")
    data = prepare_data(cfg.data, cfg.seed, data_root)
    teacher = build_teacher(cfg, data, ctx)
    assert isinstance(teacher, StreamEnsemble)
    assert list(teacher.members) == ["joint", "bone", "motion"]
    assert teacher.weights == [0.5, 0.25, 0.25]  # the streams protocol's fusion weights
    single = build_teacher(smoke(), data, ctx)  # the joint member is the one-stream teacher
    x = data.test.x[:4]
    torch.testing.assert_close(teacher.members["joint"](x), single(x))
    assert all(not p.requires_grad for p in teacher.parameters())
