"""Evaluation of frozen features: a standardised probe trained to convergence, and k-NN.

A linear probe measures features only when it is trained well. Two things in the lineage's
probes make the number depend on the optimiser rather than the features:

* **Scale.** A randomly initialised or briefly pretrained encoder can emit features whose
  per-dimension spread is 10⁻³ of their mean; a head trained on them un-normalised with a
  fixed learning rate learns nothing in a few epochs and predicts one class. Every probe
  here standardises each feature dimension with statistics of the *training* split (mean
  and standard deviation, as MAE's linear probe does with a BatchNorm without affine
  parameters), so multiplying every feature by a constant changes no prediction.
* **Under-fitting.** Features are cached, so the head of a linear probe is fitted by
  full-batch L-BFGS until its gradient vanishes (a convex problem: multinomial logistic
  regression with an L2 penalty); the alignment module (eqs. 10–12, not convex) trains
  with Adam for many epochs. The final training loss is logged so under-fitting shows.

The L2 penalty is chosen from a small list, never on the test split. For the convex linear
head the choice is by stratified k-fold cross-validation on the training split (mean
held-out cross-entropy; the chosen penalty is then refitted on the training split, which
is the dataset's training part minus the ``data.val_fraction`` carved off for validation:
those clips stay out of the head too, so ``val_top1`` remains a held-out number for
tuning and pruning, at the cost of about a point of test accuracy on NW-UCLA,
docs/calibration.md),
as scikit-learn's ``LogisticRegressionCV`` does: the validation split carved from a small
dataset holds about a hundred clips, and a choice made on it alone moved NW-UCLA's probe
by up to 7 points between seeds of the same checkpoint quality. The alignment module,
trained by Adam for many epochs, is chosen by the validation split's cross-entropy
(``linear.selection``).

k-NN accuracy (Wu et al. 2018, InstDisc; Caron et al. 2021, DINO) is a second number with
no head to train: each test clip's k = 20 nearest training clips by cosine similarity vote
for their class with weight exp(s / T), T = 0.07. Features are standardised with the
same training statistics before the cosine, which removes the large common component of
ReLU-pooled features that would otherwise make every pair similar (a documented choice:
DINO's transformer features need no centring; ``linear.standardize=false`` gives raw
cosine).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from asma_bench.training.loop import check_finite
from asma_bench.training.metrics import Predictions


@dataclass
class ProbeFit:
    """A fitted head and what its training says about it."""

    weight_decay: float
    train_loss: float
    train_top1: float
    val_top1: float
    val_loss: float
    curve: list[float]  # the training objective per iteration (L-BFGS) or epoch (Adam)
    cv_loss: float = math.nan  # mean held-out cross-entropy over the folds (selection=cv)

    @property
    def iterations(self) -> int:
        return len(self.curve)


def _l2(head: nn.Module) -> torch.Tensor:
    """½‖W‖² over weight matrices (biases and standardisation buffers are not penalised)."""
    return 0.5 * sum((p**2).sum() for p in head.parameters() if p.requires_grad and p.ndim > 1)


def fit_lbfgs(
    head: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    weight_decay: float,
    max_iter: int,
    stage: str = "linear",
) -> list[float]:
    """Full-batch L-BFGS (strong Wolfe line search) on cross-entropy + weight_decay·½‖W‖².

    Stops when the gradient's largest entry is below 1e-6 or after ``max_iter`` iterations.
    Returns the objective after each iteration (its length is the number of iterations).
    """
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.LBFGS(
        params, lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-6, tolerance_change=1e-10,
    )  # fmt: skip
    by_iteration: dict[int, float] = {}

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(forward(x), y) + weight_decay * _l2(head)
        check_finite(loss, stage, 0)
        loss.backward()
        state = opt.state[params[0]] if params else {}
        by_iteration[int(state.get("n_iter", 0))] = float(loss.detach())
        return loss

    head.train()
    if params:
        opt.step(closure)
    head.eval()
    return [by_iteration[i] for i in sorted(by_iteration)]


def choose(fits: Sequence[ProbeFit], by: str = "val") -> int:
    """Index of the fit with the lowest held-out cross-entropy (``by`` = ``"val"``: the
    validation split's; ``"cv"``: the folds' mean); ties go to the stronger penalty (the
    simpler model). Without held-out data (every loss NaN) the first fit is kept: the first
    value of ``linear.weight_decay``.

    Cross-entropy rather than accuracy: it is a proper scoring rule and continuous, where
    the accuracy of a validation split of a hundred clips moves in steps of 1% and ties
    often, so that the pick would follow the tie-break more than the data.
    """
    losses = [f.cv_loss if by == "cv" else f.val_loss for f in fits]
    if all(math.isnan(v) for v in losses):
        return 0
    return min(
        range(len(fits)),
        key=lambda i: (math.inf if math.isnan(losses[i]) else losses[i], -fits[i].weight_decay),
    )


def stratified_folds(y: torch.Tensor, k: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``k`` disjoint index sets covering ``range(len(y))``, each class spread evenly.

    Each class's samples are shuffled with ``generator`` and dealt to the folds in turn,
    continuing where the previous class stopped, so fold sizes differ by at most one and a
    class of c samples has ⌊c/k⌋ or ⌈c/k⌉ in every fold. Empty folds are dropped (k is
    capped at the number of samples).
    """
    y = y.cpu().long()
    k = max(1, min(k, len(y)))
    order = []
    for c in torch.unique(y).tolist():
        members = torch.nonzero(y == c).flatten()
        order.append(members[torch.randperm(len(members), generator=generator)])
    dealt = torch.cat(order) if order else torch.zeros(0, dtype=torch.long)
    folds = [dealt[i::k].sort().values for i in range(k)]
    return [f for f in folds if len(f)]


@torch.no_grad()
def knn_predict(
    train: torch.Tensor,
    train_y: torch.Tensor,
    query: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> torch.Tensor:
    """Weighted k-NN class scores (N_query, num_classes) by cosine similarity.

    Each query's ``k`` most similar training features (cosine) add exp(s / ``temperature``)
    to their class's score (DINO's ``knn_classifier``; InstDisc's weighted k-NN). ``k`` is
    capped at the number of training samples. Ties in similarity go to the lower index.
    """
    bank = nn.functional.normalize(train.double(), dim=1)
    labels = train_y.long()
    k = min(k, len(bank))
    out = []
    for start in range(0, len(query), chunk):
        q = nn.functional.normalize(query[start : start + chunk].double(), dim=1)
        sim = q @ bank.T
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(len(q), num_classes, dtype=torch.float64)
        votes.scatter_add_(1, labels[idx], (top / temperature).exp())
        out.append(votes)
    return torch.cat(out) if out else torch.zeros(0, num_classes, dtype=torch.float64)


def knn_predictions(
    train: torch.Tensor,
    train_y: torch.Tensor,
    test: torch.Tensor,
    test_y: torch.Tensor,
    test_index: torch.Tensor,
    num_classes: int,
    k: int,
    temperature: float,
) -> Predictions:
    """:func:`knn_predict` as per-sample predictions (vote scores stand in for logits)."""
    scores = knn_predict(train, train_y, test, num_classes, k, temperature)
    return Predictions(scores.float().numpy(), test_y.cpu().numpy(), test_index.cpu().numpy())
