"""The models the measurement tools count and time: ASMa's teacher and its distilled student.

One builder for ``asma-bench check`` (untrained models at a profile's sizes, on a fixed
layout) and ``asma-bench latency`` (the models the ``distill`` protocol trains, or with
``--no-train`` untrained ones at the data's shapes).

The teacher is, for each stream of ``distill.teacher_streams``, the encoders of the ASMa
objective (its ``encoder_roles``), the alignment module and its head: an
:class:`~asma_bench.models.classifier.EncoderClassifier` in ``aligned`` mode. A single
stream equal to ``data.stream`` is that model; several are fused by a
:class:`~asma_bench.protocols.streams.StreamEnsemble` that takes the joint clip (3s-ASMa,
the teacher of the paper's Table 2). The student is the ``distill`` protocol's
(:func:`~asma_bench.protocols.distill.build_student`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from asma_bench.config import RunConfig
from asma_bench.data.layouts import SkeletonLayout
from asma_bench.errors import ConfigError
from asma_bench.models.classifier import EncoderClassifier, make_head
from asma_bench.objectives import objective_class
from asma_bench.protocols.base import UnitContext
from asma_bench.protocols.distill import build_student, build_teacher, distill_student
from asma_bench.protocols.streams import StreamEnsemble
from asma_bench.training.data import PreparedData
from asma_bench.training.loop import freeze
from asma_bench.training.pretrain import build_encoder

#: The objective whose encoders the teacher holds.
TEACHER_OBJECTIVE = "asma"


@dataclass(frozen=True)
class ModelShapes:
    """What the models' shapes depend on, without a dataset: the skeleton layout, the
    clips' channels C and the number of classes (the attributes of the same names of a
    :class:`~asma_bench.training.data.PreparedData`)."""

    layout: SkeletonLayout
    channels: int
    num_classes: int


def teacher_roles() -> tuple[str, ...]:
    """The teacher's encoders, by role, as the ASMa objective declares them."""
    return objective_class(TEACHER_OBJECTIVE).encoder_roles


def untrained_teacher(cfg: RunConfig, data: ModelShapes | PreparedData) -> nn.Module:
    """The teacher of ``cfg`` with initial weights, frozen (eval mode, no gradients).

    The weights are drawn from torch's global generator: seed it first for fixed weights.
    """
    roles = teacher_roles()
    members: dict[str, nn.Module] = {}
    for stream in cfg.distill.teacher_streams:
        encoders = {role: build_encoder(cfg, data.layout, data.channels) for role in roles}
        dim = encoders[roles[0]].out_dim
        head = make_head("aligned", dim, data.num_classes, cfg.linear.heads)
        members[stream] = EncoderClassifier(encoders, head, "aligned")
    if list(members) == [cfg.data.stream]:
        return freeze(members[cfg.data.stream])
    return freeze(StreamEnsemble(members, data.layout))


def teacher_and_student(
    cfg: RunConfig, data: ModelShapes | PreparedData, trained_in: UnitContext | None = None
) -> tuple[nn.Module, nn.Module]:
    """(teacher, student) of ``cfg`` for ``data``'s shapes, on the CPU in eval mode, the
    teacher frozen.

    Without ``trained_in``: both with initial weights drawn from torch's global generator
    (the teacher first), as sizes, FLOPs and latency do not depend on the weights. With a
    unit context (``data`` must then be the prepared dataset): the linear-probed or
    fine-tuned teacher of the ``distill`` protocol and the student trained on it by logit
    or feature distillation, reusing the pretraining, probe and student checkpoints under
    its ``ckpt_dir``; the teacher must use the alignment module.
    """
    if trained_in is None:
        teacher = untrained_teacher(cfg, data)
        # build_student reads only the layout, channels and number of classes of the data
        return teacher, build_student(cfg, data).eval()  # type: ignore[arg-type]
    if not isinstance(data, PreparedData):
        raise ConfigError("training the teacher and the student needs the prepared dataset")
    teacher = build_teacher(cfg, data, trained_in)
    modes = {getattr(m, "mode", None) for m in getattr(teacher, "members", {"": teacher}).values()}
    if modes != {"aligned"}:
        raise ConfigError(
            f"the teacher must use the alignment module (linear.features="
            f"aligned), got {', '.join(sorted(map(str, modes)))}"
        )
    student = distill_student(cfg, data, teacher, trained_in)[0]
    return teacher.cpu().eval(), student.cpu().eval()
