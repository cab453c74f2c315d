"""The student is ST-GCN with three other defaults: its sizes, weights for a seed and output
are those the former stand-alone ``Student`` class produced (recorded values)."""

from __future__ import annotations

import pytest
import torch

from asma_bench.backbones import STGCN, Student, count_parameters, create_backbone
from asma_bench.errors import ConfigError


def _build(**params: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_backbone("student", layout="ntu25", **params)


def _weight_sum(model: torch.nn.Module) -> float:
    return float(sum(t.double().sum() for t in model.state_dict().values()))


# params, channels, sum of the state_dict for seed 0, as the former class built them
@pytest.mark.parametrize(
    ("params", "count", "channels", "weight_sum"),
    [
        ({}, 456853, (32, 32, 64, 128, 128), 11482.069252803272),
        (dict(base_channels=4, num_blocks=2, out_dim=8), 5444, (8, 8), 3988.240553517913),
        (dict(base_channels=4, num_blocks=2, out_dim=None), 157572, (8, 128), 4717.71367285498),
        (dict(channels=[8, 16], strides=[1, 2]), 7604, (8, 16), 4043.5191069163848),
    ],
)
def test_student_matches_the_former_class(params, count, channels, weight_sum) -> None:
    model = _build(**params)
    assert isinstance(model, STGCN) and model.channels == channels
    assert count_parameters(model) == count
    assert _weight_sum(model) == pytest.approx(weight_sum, rel=1e-12)


def test_student_output_for_a_seed_is_unchanged() -> None:
    model = _build(base_channels=4, num_blocks=2, out_dim=8).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        y = model(torch.randn(2, 3, 16, 25, 2))
    assert float(y.double().sum()) == pytest.approx(1.4222029950469732, rel=1e-6)
    torch.manual_seed(0)
    direct = Student("ntu25", base_channels=4, num_blocks=2, out_dim=8)
    assert _weight_sum(direct) == _weight_sum(_build(base_channels=4, num_blocks=2, out_dim=8))


def test_student_rejects_unknown_parameters_by_name() -> None:
    with pytest.raises(ConfigError, match="backbone 'student': unknown parameter 'widht'"):
        create_backbone("student", widht=3)
