"""Classification metrics kept for every evaluation: top-1/top-5, per-class, predictions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Predictions:
    """Per-sample outputs on one evaluation set, kept for significance tests (McNemar)."""

    logits: np.ndarray  # (N, K) float32
    labels: np.ndarray  # (N,) int64
    indices: np.ndarray  # (N,) dataset indices, so runs can be paired sample by sample

    @property
    def predicted(self) -> np.ndarray:
        return self.logits.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.labels


def topk_accuracy(
    logits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, k: int
) -> float:
    """Fraction of samples whose label is among the k highest logits (ties broken by index)."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def per_class_accuracy(pred: Predictions, num_classes: int) -> np.ndarray:
    """Accuracy of each class (NaN for classes absent from the set)."""
    acc = np.full(num_classes, np.nan)
    for c in range(num_classes):
        sel = pred.labels == c
        if sel.any():
            acc[c] = pred.correct[sel].mean()
    return acc


def class_probabilities(scores: np.ndarray, kind: str = "logits") -> np.ndarray:
    """(N, K) class probabilities from a classifier's scores: the softmax of ``logits``, or
    each class's share of a k-NN's ``votes`` (a row without votes: uniform)."""
    scores = np.asarray(scores, dtype=np.float64)
    if kind == "logits":
        shifted = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=1, keepdims=True)
    if kind == "votes":
        total = scores.sum(axis=1, keepdims=True)
        uniform = np.full_like(scores, 1.0 / max(scores.shape[1], 1))
        return np.divide(scores, total, out=uniform, where=total > 0)
    raise ValueError(f"unknown score kind {kind!r}; use 'logits' or 'votes'")


def per_sample_scores(pred: Predictions, kind: str = "logits") -> dict[str, np.ndarray]:
    """Each test clip's proper scoring rules (lower is better): ``brier``, the squared
    distance between the predicted distribution and the one-hot label (0 to 2; Brier, 1950),
    and for ``logits`` also ``nll``, the negative log-likelihood of the label. Both use the
    whole predicted distribution, so they vary where 0/1 correctness flips between runs of
    equal skill, and differences between cells are measured with less noise than top-1.
    A k-NN's vote shares give the label probability 0 whenever no neighbour has it, so its
    log-likelihood is undefined and only its Brier score is kept."""
    p = class_probabilities(pred.logits, kind)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(p)), pred.labels] = 1.0
    out = {"brier": ((p - onehot) ** 2).sum(axis=1)}
    if kind == "logits":
        label_p = p[np.arange(len(p)), pred.labels]
        out["nll"] = -np.log(np.clip(label_p, np.finfo(np.float64).tiny, None))
    return out


def summarize(
    pred: Predictions, num_classes: int, prefix: str = "", scores: str = "logits"
) -> dict[str, float]:
    """Top-1 / top-5 accuracy in percent, mean per-class accuracy, and the mean Brier score
    (and for ``scores="logits"`` the mean negative log-likelihood) of :func:`per_sample_scores`."""
    per_class = per_class_accuracy(pred, num_classes)
    out = {
        f"{prefix}top1": 100.0 * topk_accuracy(pred.logits, pred.labels, 1),
        f"{prefix}top5": 100.0 * topk_accuracy(pred.logits, pred.labels, 5),
        f"{prefix}mean_class_acc": 100.0 * float(np.nanmean(per_class)),
    }
    if len(pred.labels):
        for name, values in per_sample_scores(pred, scores).items():
            out[f"{prefix}{name}"] = float(values.mean())
    return out


def knn_metric(metric: str) -> str | None:
    """The k-NN accuracy logged beside a top-1 metric (``test_top1`` → ``test_knn_top1``,
    ``theta_test_top1`` → ``theta_test_knn_top1``); None for any other metric."""
    if not metric.endswith("_top1") or "knn" in metric.split("_"):
        return None
    return f"{metric.removesuffix('_top1')}_knn_top1"
