"""Distillation (ASMa Section 3.5): a frozen teacher — both encoders + alignment module,
linear-probed or fine-tuned — teaches a small ST-GCN student through temperature-softened
logits only (eqs. 13–14; no ground-truth term)."""

from __future__ import annotations

import torch
from torch import nn

from asma_bench.backbones import create_backbone
from asma_bench.config import RunConfig
from asma_bench.data.transforms import Augment
from asma_bench.errors import ConfigError
from asma_bench.models.classifier import EncoderClassifier, make_head
from asma_bench.objectives.distillation import distillation_loss
from asma_bench.protocols.base import PROTOCOLS, ProtocolResult, UnitContext
from asma_bench.protocols.finetune import finetuned_classifier
from asma_bench.protocols.linear import cached_linear_teacher, linear_probe
from asma_bench.protocols.streams import StreamEnsemble
from asma_bench.training.checkpoints import (
    checkpoint_part,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from asma_bench.training.data import PreparedData, prepare_data
from asma_bench.training.loop import (
    assert_frozen,
    fit_classifier,
    freeze,
    predict,
    seed_everything,
)
from asma_bench.training.metrics import summarize


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_teacher(cfg: RunConfig, data: PreparedData, ctx: UnitContext) -> nn.Module:
    """The frozen teacher: both encoders + alignment module + head, linear-probed or
    fine-tuned; with several ``distill.teacher_streams`` one such teacher per stream, fused
    (3s-ASMa, the teacher of the paper's Table 2), taking the joint clip."""
    streams = list(cfg.distill.teacher_streams)
    if streams == [cfg.data.stream]:
        return _stream_teacher(cfg, data, ctx)
    if cfg.data.stream != "joint":
        raise ConfigError("distill.teacher_streams needs data.stream=joint (the student's input)")
    members = {}
    for name in streams:
        cfg_s = cfg.model_copy(update={"data": cfg.data.model_copy(update={"stream": name})})
        data_s = prepare_data(cfg_s.data, cfg.seed, ctx.data_root)
        members[name] = _stream_teacher(cfg_s, data_s, ctx)
    weights = dict(zip(cfg.streams.names, cfg.streams.weights, strict=True))
    ensemble = StreamEnsemble(members, data.layout, [weights.get(n, 1.0) for n in streams])
    return freeze(ensemble.to(ctx.device))


def _stream_teacher(cfg: RunConfig, data: PreparedData, ctx: UnitContext) -> EncoderClassifier:
    if cfg.distill.teacher == "linear":
        return cached_linear_teacher(cfg, data, ctx)
    return finetuned_classifier(cfg, data, ctx)[0]


def build_student(cfg: RunConfig, data: PreparedData) -> EncoderClassifier:
    params = {"num_blocks": cfg.distill.student_depth, **cfg.distill.student_params}
    student = create_backbone("student", layout=data.layout, in_channels=data.channels, **params)
    # a feature-distilled student is classified by the linear probe (standardised features)
    probe = cfg.distill.kind == "feature" and cfg.linear.standardize
    head = make_head("single", student.out_dim, data.num_classes, standardize=probe)
    return EncoderClassifier({"encoder": student}, head, "single")


def distill_student(
    cfg: RunConfig, data: PreparedData, teacher: nn.Module, ctx: UnitContext
) -> tuple[EncoderClassifier, dict[str, float]]:
    """Train the student of ``cfg`` on ``teacher``'s softened logits (eqs. 13–14).

    Cached in ``ctx.ckpt_dir`` by the config's digest, so the ``latency`` report and the
    ``distill`` protocol share one trained student.
    """
    path = ctx.ckpt_dir / f"student-{cfg.digest(exclude=['device'])}.pt"
    gen = seed_everything(cfg.seed + 3, cfg.deterministic)
    student = build_student(cfg, data).to(ctx.device)
    if path.is_file():
        state = load_checkpoint(path)
        load_weights(student, checkpoint_part(state, path, "student"), path, "student")
        return student.eval(), dict(state.get("metrics", {}))
    assert_frozen(teacher, "teacher")
    if cfg.distill.kind == "feature":
        last = _feature_distillation(cfg, data, teacher, student, gen, ctx)
        save_checkpoint({"student": student.state_dict(), "metrics": last}, path)
        return student.eval(), last
    tau = cfg.distill.tau

    def loss_fn(logits: torch.Tensor, _y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = teacher(x)
        return distillation_loss(
            logits, target, tau, cfg.distill.tau_squared, cfg.distill.kl_direction
        )

    d = cfg.distill
    last = fit_classifier(
        student, student, (data.train.x, data.train.y), (data.val.x, data.val.y),
        epochs=d.epochs, lr=d.lr, batch_size=d.batch_size, generator=gen, device=ctx.device,
        stage="distill", on_epoch=ctx.on_epoch, augment=Augment(data.layout),
        frozen={"teacher": teacher}, loss_fn=loss_fn, progress=ctx.stage_progress("distill"),
    )  # fmt: skip
    save_checkpoint({"student": student.state_dict(), "metrics": last}, path)
    return student.eval(), last


def teacher_features(teacher: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The teacher's penultimate features (N, D): after the alignment module's pooling
    (eqs. 10–11) for an aligned teacher, the pooled encoder features otherwise."""
    if not isinstance(teacher, EncoderClassifier):
        raise ConfigError(
            "feature-level distillation needs a single-stream teacher (distill.teacher_streams)"
        )
    feats = teacher.features(x)
    if teacher.mode == "aligned":
        return teacher.head.features(feats[:, 0], feats[:, 1])
    return feats


def _feature_distillation(
    cfg: RunConfig,
    data: PreparedData,
    teacher: nn.Module,
    student: EncoderClassifier,
    gen: torch.Generator,
    ctx: UnitContext,
) -> dict[str, float]:
    """Feature-level distillation, the alternative of the paper's Table 11.

    The student's encoder, through a linear adapter to the teacher's width (discarded
    afterwards), is trained to maximise the cosine similarity of its features with the
    teacher's penultimate features; labels are not used. Its classifier is then a linear
    probe on the frozen student encoder (``linear`` settings), as students are evaluated.
    """
    d = cfg.distill
    encoder = student.encoders["encoder"]
    with torch.no_grad():
        width = teacher_features(teacher, data.train.x[:2].to(ctx.device)).shape[1]
    adapter = nn.Linear(encoder.out_dim, width).to(ctx.device)
    trained = nn.ModuleDict({"encoder": encoder, "adapter": adapter})

    def project(x: torch.Tensor) -> torch.Tensor:
        return adapter(encoder(x))

    def cosine_loss(z: torch.Tensor, _y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = teacher_features(teacher, x)
        return 1.0 - nn.functional.cosine_similarity(z, target, dim=1).mean()

    last = fit_classifier(
        trained, project, (data.train.x, data.train.y), None,
        epochs=d.epochs, lr=d.lr, batch_size=d.batch_size, generator=gen, device=ctx.device,
        stage="distill", on_epoch=ctx.on_epoch, augment=Augment(data.layout),
        frozen={"teacher": teacher}, loss_fn=cosine_loss, progress=ctx.stage_progress("distill"),
    )  # fmt: skip
    freeze(encoder)
    # the same linear evaluation as every pretrained encoder (standardised, converged)
    probed, result = linear_probe(cfg, {"encoder": encoder}, data, ctx, "single", "distill_probe")
    student.head.load_state_dict(probed.head.state_dict())
    last.update({k: v for k, v in result.metrics.items() if k.startswith("distill_probe_")})
    last["distill_val_top1"] = result.metrics["val_top1"]
    return last


@PROTOCOLS.register("distill")
def distill(cfg: RunConfig, ctx: UnitContext) -> ProtocolResult:
    """Train the student on the teacher's softened logits; report both on the test split."""
    data = prepare_data(cfg.data, cfg.seed, ctx.data_root)
    teacher = build_teacher(cfg, data, ctx)
    assert_frozen(teacher, "teacher")
    teacher_pred = predict(teacher, data.test.x, data.test.y, data.test.index, 256, ctx.device)
    student, last = distill_student(cfg, data, teacher, ctx)
    pred = predict(student, data.test.x, data.test.y, data.test.index, 256, ctx.device)
    metrics = {
        **summarize(pred, data.num_classes, "test_"),
        **summarize(teacher_pred, data.num_classes, "teacher_test_"),
        "val_top1": last.get("distill_val_top1", float("nan")),
        "student_params": float(count_parameters(student)),
        "teacher_params": float(count_parameters(teacher)),
        "agreement": 100.0 * float((pred.predicted == teacher_pred.predicted).mean()),
    }
    return ProtocolResult(metrics, {"test": pred, "teacher_test": teacher_pred})
