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


def summarize(pred: Predictions, num_classes: int, prefix: str = "") -> dict[str, float]:
    """Top-1 / top-5 accuracy in percent plus mean per-class accuracy."""
    per_class = per_class_accuracy(pred, num_classes)
    return {
        f"{prefix}top1": 100.0 * topk_accuracy(pred.logits, pred.labels, 1),
        f"{prefix}top5": 100.0 * topk_accuracy(pred.logits, pred.labels, 5),
        f"{prefix}mean_class_acc": 100.0 * float(np.nanmean(per_class)),
    }


def knn_metric(metric: str) -> str | None:
    """The k-NN accuracy logged beside a top-1 metric (``test_top1`` → ``test_knn_top1``,
    ``theta_test_top1`` → ``theta_test_knn_top1``); None for any other metric."""
    if not metric.endswith("_top1") or "knn" in metric.split("_"):
        return None
    return f"{metric.removesuffix('_top1')}_knn_top1"
