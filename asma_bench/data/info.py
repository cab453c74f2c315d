"""Summaries of a canonical dataset: counts per split and class, lengths, motion by degree."""

from __future__ import annotations

import numpy as np
import pandas as pd

from asma_bench.data.store import SkeletonDataset
from asma_bench.errors import ConfigError


def joint_motion(x: np.ndarray, length: int) -> np.ndarray:
    """Mean per-frame displacement of each joint, (V,), over the valid frames of bodies present.

    The displacement is the Euclidean norm of x_{t+1} − x_t over the coordinates; frames
    where a joint is missing (all-zero) at either end are ignored, so dropped joints and
    absent bodies do not show up as huge jumps.
    """
    x = np.asarray(x[:, :length], dtype=np.float64)  # (C, T, V, M)
    if x.shape[1] < 2:
        return np.zeros(x.shape[2])
    present = np.abs(x).sum(axis=0) > 0  # (T, V, M)
    step = np.linalg.norm(np.diff(x, axis=1), axis=0)  # (T-1, V, M)
    valid = present[1:] & present[:-1]
    total = (step * valid).sum(axis=(0, 2))
    count = valid.sum(axis=(0, 2))
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def summarize(ds: SkeletonDataset, max_motion_samples: int = 2000, seed: int = 0) -> dict:
    """Tables describing ``ds``: ``splits``, ``classes``, ``lengths``, ``motion``.

    Motion statistics use at most ``max_motion_samples`` samples drawn at random (seeded),
    so ``info`` stays quick on a memory-mapped NTU-120.
    """
    if max_motion_samples < 1:
        raise ConfigError(f"max_motion_samples must be >= 1, got {max_motion_samples}")
    meta = ds.meta
    names = ds.info.get("class_names") or [str(i) for i in range(ds.num_classes)]
    split_rows = []
    class_counts = pd.DataFrame(
        {"class": range(ds.num_classes), "name": names[: ds.num_classes]}
    ).set_index("class")
    class_counts["all"] = meta["label"].value_counts().reindex(class_counts.index, fill_value=0)
    for split in ds.split_names:
        for part in ("train", "test"):
            idx = ds.split(split, part)
            split_rows.append(
                {
                    "split": split,
                    "part": part,
                    "samples": len(idx),
                    "subjects": meta["subject"].iloc[idx].nunique(),
                    "cameras": meta["camera"].iloc[idx].nunique(),
                }
            )
            class_counts[f"{split}/{part}"] = (
                meta["label"].iloc[idx].value_counts().reindex(class_counts.index, fill_value=0)
            )
    lengths = meta["length"].describe(percentiles=[0.05, 0.5, 0.95]).to_frame("frames").T

    rng = np.random.default_rng(seed)
    n = len(ds)
    pick = np.sort(rng.choice(n, size=min(n, max_motion_samples), replace=False))
    dims = ds.layout.dims  # coordinates only: a score channel is not motion
    motion = np.mean([joint_motion(ds.data[i][:dims], int(ds.lengths[i])) for i in pick], axis=0)
    layout = ds.layout
    per_joint = pd.DataFrame(
        {"joint": layout.joint_names, "degree": layout.degrees, "motion": motion}
    )
    by_degree = per_joint.groupby("degree")["motion"].agg(["count", "mean", "std"])
    return {
        "splits": pd.DataFrame(split_rows),
        "classes": class_counts,
        "lengths": lengths,
        "motion_joints": per_joint,
        "motion_degree": by_degree,
        "motion_samples": len(pick),
    }


def check_samples(ds: SkeletonDataset, chunk: int = 256) -> pd.DataFrame:
    """Every problem of every sample, one row each: index, name, problem.

    Looks for what training must never see silently: non-finite values, zero valid
    length, a length beyond the array, samples whose bodies are all zero, non-zero
    padding after the valid length, and labels outside the class range.
    """
    rows: list[dict] = []
    lengths = ds.lengths
    labels = ds.labels
    names = ds.meta["name"].astype(str).tolist()
    t_max = ds.data.shape[2]

    def bad(i: int, problem: str) -> None:
        rows.append({"index": i, "name": names[i], "problem": problem})

    for start in range(0, len(ds), chunk):
        block = np.asarray(ds.data[start : start + chunk])
        finite = np.isfinite(block).all(axis=(1, 2, 3, 4))
        for j in range(len(block)):
            i = start + j
            length = int(lengths[i])
            if not finite[j]:
                bad(i, "contains NaN or inf")
                continue
            if length <= 0:
                bad(i, "zero valid length")
                continue
            if length > t_max:
                bad(i, f"valid length {length} exceeds the array's {t_max} frames")
                continue
            if not np.any(block[j, :, :length]):
                bad(i, "all bodies are zero in every frame")
            if np.any(block[j, :, length:]):
                bad(i, f"non-zero values after the valid length {length}")
    for i in np.flatnonzero((labels < 0) | (labels >= ds.num_classes)):
        bad(int(i), f"label {int(labels[i])} outside 0..{ds.num_classes - 1}")
    return pd.DataFrame(rows, columns=["index", "name", "problem"])
