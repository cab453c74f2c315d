"""The linear probe measures features, not the optimiser: standardisation, convergence,
scale invariance, k-NN against a hand computation, and random features above chance on
real NW-UCLA clips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from asma_bench.data.layouts import get_layout
from asma_bench.models.heads import FeatureStandardizer
from asma_bench.protocols import UnitContext
from asma_bench.protocols.linear import linear_probe
from asma_bench.training.data import PreparedData, TensorSet
from asma_bench.training.loop import estimate_bn_stats
from asma_bench.training.probe import (
    ProbeFit,
    choose,
    fit_lbfgs,
    knn_predict,
    stratified_folds,
)


class ScaledEncoder(nn.Module):
    """A fixed random feature map times ``scale``, plus a large common offset (the shape of
    ReLU-pooled features of an untrained network: tiny spread around a shared mean)."""

    def __init__(self, in_dim: int, out_dim: int, scale: float, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("w", torch.randn(in_dim, out_dim, generator=g))
        self.register_buffer("offset", 50.0 + torch.rand(out_dim, generator=g))
        self.scale = scale
        self.out_dim = out_dim
        self.anchor = nn.Parameter(torch.zeros(()))  # something for freeze() to freeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * (self.offset + 1e-3 * torch.tanh(x.flatten(1) @ self.w))


def _toy_data(n_per_class: int = 40, classes: int = 4, seed: int = 0) -> PreparedData:
    """Clips (N, 3, 4, 25, 1) whose mean depends on the class, plus noise."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, 3, 4, 25, 1, generator=g)

    def part(n: int, offset: int) -> TensorSet:
        y = torch.arange(classes).repeat_interleave(n)
        x = centres[y] + 1.5 * torch.randn(len(y), 3, 4, 25, 1, generator=g)
        return TensorSet(x, y, torch.arange(len(y)) + offset)

    train, val, test = part(n_per_class, 0), part(10, 10_000), part(20, 20_000)
    names = [str(c) for c in range(classes)]
    return PreparedData("toy", get_layout("ntu25"), classes, names, train, val, test)


def test_probe_accuracy_does_not_change_when_features_shrink_by_1e3(smoke, tmp_path):
    data = _toy_data()
    cfg = smoke("linear.knn_k=5")
    ctx = UnitContext(data_root=tmp_path, ckpt_dir=tmp_path / "ckpt")
    results = []
    for scale in (1.0, 1e-3):
        encoders = {"encoder": ScaledEncoder(3 * 4 * 25, 24, scale)}
        _, res = linear_probe(cfg, encoders, data, ctx, "single")
        results.append(res)
    a, b = results
    chance = 100.0 / data.num_classes
    assert a.metrics["test_top1"] > chance + 30  # the features are informative...
    np.testing.assert_array_equal(a.predictions["test"].predicted, b.predictions["test"].predicted)
    np.testing.assert_array_equal(
        a.predictions["knn_test"].predicted, b.predictions["knn_test"].predicted
    )
    assert a.metrics["test_top1"] == b.metrics["test_top1"]  # ...and their scale is not
    assert a.metrics["test_knn_top1"] == b.metrics["test_knn_top1"]
    assert a.metrics["test_knn_top1"] > chance + 30


def test_unstandardized_probe_on_tiny_spread_features_learns_nothing(smoke, tmp_path):
    """The failure the standardisation removes: the lineage's raw probe on features whose
    spread is 1e-3 of their mean (Adam, few epochs) predicts about one class."""
    data = _toy_data()
    ctx = UnitContext(data_root=tmp_path, ckpt_dir=tmp_path / "ckpt")
    encoders = {"encoder": ScaledEncoder(3 * 4 * 25, 24, 1.0)}
    raw = smoke("linear.standardize=false", "linear.solver=adam", "linear.epochs=5",
                "linear.weight_decay=0.0")  # fmt: skip
    _, bad = linear_probe(raw, encoders, data, ctx, "single")
    _, good = linear_probe(smoke(), encoders, data, ctx, "single")
    assert good.metrics["test_top1"] > bad.metrics["test_top1"] + 25


def test_lbfgs_fits_logistic_regression_to_its_optimum():
    """On separable-by-a-margin data with an L2 penalty the objective is strictly convex:
    L-BFGS must reach a point where the gradient vanishes."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    head = nn.Linear(5, 2)
    curve = fit_lbfgs(head, head, x, y, weight_decay=1e-2, max_iter=500)
    loss = nn.functional.cross_entropy(head(x), y)
    objective = loss + 1e-2 * 0.5 * (head.weight**2).sum()
    grads = torch.autograd.grad(objective, list(head.parameters()))
    assert max(float(gr.abs().max()) for gr in grads) < 1e-4
    assert 0 < len(curve) < 500
    assert curve[-1] < curve[0]  # the objective went down...
    assert curve[-1] == pytest.approx(float(objective.detach()), rel=1e-5)  # ...to where it ends
    assert float(loss.detach()) < 0.35  # a good fit of nearly separable data


def test_standardizer_uses_training_statistics_and_a_relative_floor():
    x = torch.tensor([[1.0, 5.0, 7.0], [3.0, 5.0, 9.0]])
    norm = FeatureStandardizer(1, 3).fit(x)
    torch.testing.assert_close(norm.mean[0], torch.tensor([2.0, 5.0, 8.0]))
    # the constant column gets the floor (1e-6 of the largest std), not an absolute eps
    torch.testing.assert_close(norm.std[0], torch.tensor([1.0, 1e-6, 1.0]))
    (out,) = norm(torch.tensor([[4.0, 5.0, 8.0]]))
    torch.testing.assert_close(out, torch.tensor([[2.0, 0.0, 0.0]]))


def test_knn_matches_a_hand_computation():
    # training bank on the unit circle at angles 0°, 10°, 90°, 180° with labels 0, 0, 1, 2
    angles = torch.tensor([0.0, 10.0, 90.0, 180.0]) * math.pi / 180
    norms = torch.tensor([[1.0], [3.0], [2.0], [5.0]])  # cosine ignores them
    bank = torch.stack([angles.cos(), angles.sin()], dim=1) * norms
    labels = torch.tensor([0, 0, 1, 2])
    query = torch.tensor([[math.cos(math.radians(60)), math.sin(math.radians(60))]])
    t, k = 0.5, 2
    scores = knn_predict(bank, labels, query, num_classes=3, k=k, temperature=t)
    # cosines to the query (norms do not matter): cos 60° = 0.5, cos 50°, cos 30°, cos 120°
    # the two nearest: 90° (label 1, cos 30°) and 10° (label 0, cos 50°)
    expected = torch.zeros(1, 3, dtype=torch.float64)
    expected[0, 1] = math.exp(math.cos(math.radians(30)) / t)
    expected[0, 0] = math.exp(math.cos(math.radians(50)) / t)
    torch.testing.assert_close(scores, expected)
    # with k = 3 the 0° neighbour (cos 60°) joins label 0, which then outvotes label 1
    scores3 = knn_predict(bank, labels, query, num_classes=3, k=3, temperature=t)
    assert float(scores3[0, 0]) == pytest.approx(
        math.exp(math.cos(math.radians(50)) / t) + math.exp(0.5 / t)
    )
    assert int(scores3.argmax()) == 0
    # k larger than the bank uses the whole bank
    assert knn_predict(bank, labels, query, 3, k=50, temperature=t)[0, 2] > 0


def test_random_init_probe_is_far_above_chance_on_real_ucla(ucla_dir, tmp_path):
    """The random_init reference: random features + the same evaluation. On NW-UCLA it sat
    at exactly chance (10%) with the lineage's probe; standardised and converged it does
    not."""
    from asma_bench.config import build_config
    from asma_bench.protocols.linear import linear

    cfg = build_config(
        "smoke",
        [f"data.source={ucla_dir}", "data.split=xview", "data.frames=16",
         "pretrain.epochs=0", "data.train_limit=400", "data.test_limit=200"],
    )  # fmt: skip
    ctx = UnitContext(data_root=tmp_path, ckpt_dir=tmp_path / "ckpt")
    res = linear(cfg, ctx)
    assert res.metrics["test_top1"] > 25.0  # chance is 10%
    assert res.metrics["test_knn_top1"] > 20.0
    assert len(set(res.predictions["test"].predicted.tolist())) > 3  # not one class for all


def test_stratified_folds_cover_every_sample_once_and_spread_each_class():
    y = torch.tensor([0] * 11 + [1] * 7 + [2] * 3)
    folds = stratified_folds(y, 5, torch.Generator().manual_seed(0))
    assert len(folds) == 5
    joined = torch.cat(folds).sort().values
    assert torch.equal(joined, torch.arange(len(y)))  # a partition
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for c, count in ((0, 11), (1, 7), (2, 3)):
        per_fold = [int((y[f] == c).sum()) for f in folds]
        assert set(per_fold) <= {count // 5, -(-count // 5)}
    assert len(stratified_folds(y[:3], 5, torch.Generator().manual_seed(0))) == 3


def test_cross_validation_picks_the_penalty_with_the_lowest_held_out_loss():
    fits = [
        ProbeFit(1e-3, 0.1, 99.0, 80.0, 0.9, [], cv_loss=0.7),
        ProbeFit(1e-2, 0.2, 95.0, 78.0, 0.8, [], cv_loss=0.5),
        ProbeFit(1e-1, 0.5, 90.0, 70.0, 0.6, [], cv_loss=0.5),
    ]
    assert choose(fits, by="val") == 2
    assert choose(fits, by="cv") == 2  # the tie goes to the stronger penalty
    fits[2].cv_loss = 0.51
    assert choose(fits, by="cv") == 1


def test_probe_chooses_by_cross_validation_and_logs_it(smoke, tmp_path):
    data = _toy_data()
    ctx = UnitContext(data_root=tmp_path, ckpt_dir=tmp_path / "ckpt")
    encoders = {"encoder": ScaledEncoder(3 * 4 * 25, 24, 1.0)}
    cfg = smoke("linear.weight_decay=[1e-4, 1.0, 100.0]", "linear.cv_folds=4")
    _, res = linear_probe(cfg, encoders, data, ctx, "single")
    assert res.metrics["linear_weight_decay"] < 100.0  # a crushing penalty loses held out
    assert 0 < res.metrics["linear_cv_loss"] < math.log(data.num_classes)
    by_val_cfg = smoke("linear.weight_decay=[1e-4, 1.0, 100.0]", "linear.selection=val")
    _, by_val = linear_probe(by_val_cfg, encoders, data, ctx, "single")
    assert "linear_cv_loss" not in by_val.metrics


def test_untrained_encoder_batchnorm_statistics_are_averaged_over_the_data():
    """random_init's BatchNorm layers normalise with the training clips' statistics (as a
    pretrained encoder's do), computed without touching a weight or drawing dropout."""
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.9), nn.BatchNorm1d(4))
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k}
    x = torch.randn(50, 3) * 5 + 2
    assert estimate_bn_stats(net, x, batch_size=16) == 2
    with torch.no_grad():
        h = net[0](x)
    # 50 clips in batches of 16 go as 4 batches of 12-13: the average of their statistics
    torch.testing.assert_close(net[1].running_mean, h.mean(0), rtol=0.02, atol=0.02)
    torch.testing.assert_close(net[1].running_var, h.var(0), rtol=0.15, atol=0.02)
    assert net[1].momentum == 0.1 and not net.training  # restored, eval mode
    for k, v in weights.items():
        if "num_batches" not in k:
            torch.testing.assert_close(net.state_dict()[k], v)
    with torch.no_grad():  # dropout was off: the second BN saw the first one's output
        z = (h - net[1].running_mean) / (net[1].running_var + 1e-5).sqrt()
        z = z * net[1].weight + net[1].bias
    assert float(net[3].running_mean.sub(z.mean(0)).abs().max()) < 0.05


def test_probe_can_renormalise_a_pretrained_encoder_on_clean_clips(smoke, tmp_path):
    """linear.bn_stats=data gives a pretrained encoder random_init's BatchNorm statistics
    (clean training clips) in place of pretraining's running averages over augmented,
    masked views; the default keeps the running averages."""

    class BNEncoder(nn.Module):
        out_dim = 4

        def __init__(self):
            super().__init__()
            self.lin, self.bn = nn.Linear(300, 4), nn.BatchNorm1d(4)
            self.bn.running_mean.fill_(7.0)  # what pretraining left behind

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.lin(x.flatten(1)))

    data = _toy_data()
    ctx = UnitContext(data_root=tmp_path, ckpt_dir=tmp_path / "ckpt")
    kept, renormed = BNEncoder(), BNEncoder()
    renormed.load_state_dict(kept.state_dict())
    linear_probe(smoke(), {"encoder": kept}, data, ctx, "single")
    assert torch.equal(kept.bn.running_mean, torch.full((4,), 7.0))
    linear_probe(smoke("linear.bn_stats=data"), {"encoder": renormed}, data, ctx, "single")
    with torch.no_grad():
        h = renormed.lin(data.train.x.flatten(1))
    torch.testing.assert_close(renormed.bn.running_mean, h.mean(0), rtol=0.02, atol=0.02)
