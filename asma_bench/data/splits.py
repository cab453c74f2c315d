"""Standard train/test splits, computed from per-sample metadata.

Facts from the datasets' papers: NTU cross-subject uses fixed training performers,
cross-view trains on cameras 2 and 3, NTU-120 cross-setup trains on even setup IDs;
PKU-MMD cross-view tests on the L view (camera 1 here); NW-UCLA trains on views 1 and 2.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

NTU60_XSUB_TRAIN = frozenset(
    [1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38]
)
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN | frozenset(
    [45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85,
     86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103]
)  # fmt: skip

Splits = dict[str, dict[str, list[int]]]


def by_mask(train: np.ndarray) -> dict[str, list[int]]:
    """Turn a boolean training mask into {'train': indices, 'test': indices}."""
    train = np.asarray(train, dtype=bool)
    return {"train": np.flatnonzero(train).tolist(), "test": np.flatnonzero(~train).tolist()}


def ntu_splits(meta: pd.DataFrame) -> Splits:
    """xsub, xview (and xset when the data contain NTU-120 setups > 17)."""
    subject, camera, setup = (meta[c].to_numpy() for c in ("subject", "camera", "setup"))
    ntu120 = bool((setup > 17).any() or (meta["label"].to_numpy() >= 60).any())
    train_subjects = NTU120_XSUB_TRAIN if ntu120 else NTU60_XSUB_TRAIN
    splits: Splits = {
        "xsub": by_mask(np.isin(subject, list(train_subjects))),
        "xview": by_mask(np.isin(camera, [2, 3])),
    }
    if ntu120:
        splits["xset"] = by_mask(setup % 2 == 0)
    return splits


def pku_splits(
    meta: pd.DataFrame,
    xsub_train_videos: Iterable[str] | None = None,
) -> Splits:
    """xview (L view = camera 1 is test); xsub when the official training-video list is given.

    Sample names are ``<video>_<index>``; the video name (e.g. ``0002-L`` or ``A10N08-L``)
    is what the official split files list.
    """
    splits: Splits = {"xview": by_mask(meta["camera"].to_numpy() != 1)}
    if xsub_train_videos is not None:
        videos = set(xsub_train_videos)
        video_of = meta["name"].str.rsplit("_", n=1).str[0]
        splits["xsub"] = by_mask(video_of.isin(videos).to_numpy())
    return splits


def ucla_splits(meta: pd.DataFrame) -> Splits:
    """Cross-view: views 1 and 2 train, view 3 test."""
    return {"xview": by_mask(np.isin(meta["camera"].to_numpy(), [1, 2]))}
