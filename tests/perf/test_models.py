"""One builder for the models ``check`` counts and ``latency`` exports, and one set of timing
helpers: the two tools get the same architecture from the same config."""

from __future__ import annotations

import statistics

import pytest
import torch

from asma_bench.backbones import count_parameters
from asma_bench.data.layouts import get_layout
from asma_bench.objectives import objective_class
from asma_bench.perf import latency as latency_module
from asma_bench.perf.check import (
    MODEL_BODIES,
    MODEL_CHANNELS,
    MODEL_CLASSES,
    MODEL_LAYOUT,
    CheckSettings,
    check_models,
)
from asma_bench.perf.latency import latency_config, latency_models
from asma_bench.perf.models import ModelShapes, teacher_and_student
from asma_bench.perf.timing import calibrate, fastest_ratio, summarize
from asma_bench.protocols.streams import StreamEnsemble
from asma_bench.training.data import PreparedData, TensorSet


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


@pytest.fixture
def check_shaped_data(monkeypatch) -> PreparedData:
    """The latency tool's dataset replaced by clips of the shapes the check builds for."""
    layout = get_layout(MODEL_LAYOUT)
    x = torch.zeros(4, MODEL_CHANNELS, 12, layout.num_joints, MODEL_BODIES)
    part = TensorSet(x, torch.zeros(4, dtype=torch.long), torch.arange(4))
    classes = [str(c) for c in range(MODEL_CLASSES)]
    data = PreparedData("fake", layout, MODEL_CLASSES, classes, part, part, part)
    monkeypatch.setattr(latency_module, "prepare_data", lambda *_args: data)
    return data


def test_check_and_latency_get_the_same_teacher_and_student(check_shaped_data, tmp_path):
    teacher, student, x = check_models(CheckSettings(latency_profile="smoke"))
    cfg = latency_config("smoke", [{"distill": {"teacher_streams": ["joint"]}}])
    l_teacher, l_student, data = latency_models(cfg, tmp_path, train=False)
    assert data is check_shaped_data
    assert _shapes(teacher) == _shapes(l_teacher) and _shapes(student) == _shapes(l_student)
    assert count_parameters(teacher) == count_parameters(l_teacher) > 0
    assert count_parameters(student) == count_parameters(l_student) > 0
    # the encoders by the objective's roles, the teacher frozen, both in eval mode
    assert tuple(teacher.encoders) == objective_class("asma").encoder_roles
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not teacher.training and not student.training and not l_student.training
    # both seed torch with 0 before the one builder: the same initial weights
    for mine, theirs in ((teacher, l_teacher), (student, l_student)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert student(x).shape == (x.shape[0], MODEL_CLASSES)


def test_several_teacher_streams_are_one_ensemble(check_shaped_data):
    cfg = latency_config("smoke")  # joint, bone and motion
    single = cfg.model_copy(
        update={"distill": cfg.distill.model_copy(update={"teacher_streams": ["joint"]})}
    )
    ensemble, student = teacher_and_student(cfg, check_shaped_data)
    one, same_student = teacher_and_student(single, check_shaped_data)
    assert isinstance(ensemble, StreamEnsemble)
    assert list(ensemble.members) == cfg.distill.teacher_streams == ["joint", "bone", "motion"]
    assert count_parameters(ensemble) == 3 * count_parameters(one)
    assert count_parameters(student) == count_parameters(same_student)
    shapes = ModelShapes(check_shaped_data.layout, check_shaped_data.channels, MODEL_CLASSES)
    assert _shapes(teacher_and_student(cfg, shapes)[0]) == _shapes(ensemble)


def test_timing_helpers():
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.0, 6.0]
    s = summarize(values)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    assert (s.n, s.min, s.max, s.median) == (7, 1.0, 9.0, 3.0)
    assert (s.p25, s.p75) == pytest.approx((q1, q3))
    assert s.iqr_spread == pytest.approx((q3 - q1) / 3.0)
    assert s.range_spread == pytest.approx(8.0 / 3.0)
    assert s.std == pytest.approx(statistics.stdev(values))
    ratio, spread = fastest_ratio([2.0, 4.0, 3.0], [1.0, 1.0, 2.0])
    assert ratio == 2.0 and spread == pytest.approx((3.0 - 1.75) / 2.0)
    calls = []
    reps = calibrate(lambda: calls.append(1), min_seconds=1e-3)
    assert 1 <= reps <= 4096 and len(calls) > reps
