"""benchmarks/cross_view_validation.py: the validation the quick profile was chosen on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cross_view_validation.py"


def _module():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("cross_view_validation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clips(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three classes in 8-d features, 60 clips in each of three views."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat(60)
    views = torch.tensor([1, 2, 3]).repeat_interleave(60)
    centres = torch.randn(3, 8, generator=g) * 3
    return centres[labels] + torch.randn(180, 8, generator=g), labels, views


def test_a_probe_fitted_on_one_view_is_scored_on_the_other_only():
    xv = _module().cross_view_accuracy
    features, labels, views = _clips()
    assert xv(features, labels, views, 1, 2, 1e-2, 3) > 90.0
    assert xv(features, labels, views, 2, 1, 1e-2, 3) > 90.0
    # the test view plays no part: garbage there changes nothing
    spoiled = features.clone()
    spoiled[views == 3] = torch.randn(60, 8) * 100
    assert xv(spoiled, labels, views, 1, 2, 1e-2, 3) == xv(features, labels, views, 1, 2, 1e-2, 3)
    # labels that mean nothing in the fitting view give chance on the other
    shuffled = labels.clone()
    fit = views == 1
    shuffled[fit] = labels[fit][torch.randperm(60, generator=torch.Generator().manual_seed(1))]
    assert xv(features, shuffled, views, 1, 2, 1e-2, 3) < 60.0
