"""A torch ``Dataset`` over a canonical skeleton dataset: normalise, crop/resize, stream.

Each ``__getitem__`` reads one sample from the memory-mapped array (never the whole
array), cut to its valid length, and returns ``(x, label)`` with x float32 (C, T, V, M):

1. normalise (``normalize``, see :data:`NORMALIZATIONS`);
2. crop the valid frames and resize them to ``frames`` by linear interpolation — in eval
   mode the centred ``eval_crop_ratio`` of the valid length (all of it by default), in
   train mode a random fraction ~ U(``crop_ratio``, default 0.5–1 as CTR-GCN's
   ``valid_crop_resize``) at a random offset, drawn from a generator seeded by (seed,
   epoch, sample index) so results do not depend on worker count or order (call
   :meth:`SkeletonFeeder.set_epoch` each epoch);
3. compute the stream (joint / bone / motion) on the resized clip.

The layout, joint count and body count come from the dataset (NTU-25 with two bodies,
Kinect-20 with one, ...). The feeder pickles without its memory map, so DataLoader workers
reopen the dataset themselves, under any start method.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from asma_bench.config import NORMALIZATIONS as CONFIG_NORMALIZATIONS
from asma_bench.data.layouts import SkeletonLayout
from asma_bench.data.store import SkeletonDataset
from asma_bench.data.streams import STREAMS, to_stream
from asma_bench.data.transforms import resize_frames
from asma_bench.errors import ConfigError

#: (the one list, kept in config.py so that a bad value is refused when a config is read)
NORMALIZATIONS = CONFIG_NORMALIZATIONS
"""Choices for ``normalize``; the centre joint is the layout's (NTU joint 21, spine shoulder).

* ``none``: coordinates as stored.
* ``center_first_frame``: subtract the centre joint of body 1 in its first frame from every
  joint of every frame and body (a translation; motion is kept).
* ``center_every_frame``: subtract body 1's centre joint of the same frame (the SSL
  lineage's 50-frame files; frames where it is missing reuse the last known centre).
* ``center_every_frame_rotate``: as ``center_every_frame``, then rotate about the vertical
  (y) axis so that body 1's shoulder line (left → right shoulder, first frame where both
  are present) is parallel to +x — the full recipe of those 50-frame files.
* ``center_first_frame_rotate``: as ``center_first_frame`` (the body's path through the
  room is kept), then the same turn about the vertical axis: every clip seen from the
  front, whatever camera recorded it.

Joints that are exactly zero (absent bodies, dropped joints) stay zero.
"""


def normalize_sample(x: np.ndarray, layout: SkeletonLayout, mode: str) -> np.ndarray:
    """Normalise one sample (C, T, V, M) cut to its valid length (see :data:`NORMALIZATIONS`)."""
    if mode not in NORMALIZATIONS:
        raise ConfigError(f"normalize {mode!r}; available: {', '.join(NORMALIZATIONS)}")
    if mode == "none":
        return x
    present = (x != 0).any(axis=0)  # (T, V, M)
    has_center = present[:, layout.center, 0]
    if not has_center.any():
        return x
    frames = np.arange(x.shape[1])
    if mode.startswith("center_first_frame"):
        origin = x[:, int(np.argmax(has_center)), layout.center, 0][:, None]  # (C, 1)
    else:
        # carry the last known centre forward (and the first one backward)
        last = np.maximum.accumulate(np.where(has_center, frames, -1))
        last = np.where(last < 0, int(np.argmax(has_center)), last)
        origin = x[:, last, layout.center, 0]  # (C, T)
    origin = origin.copy()
    origin[layout.dims :] = 0  # only coordinates move; a confidence channel stays as it is
    x = np.where(present[None], x - origin[:, :, None, None], 0.0).astype(np.float32)
    if mode.endswith("_rotate"):
        x = _align_shoulders(x, layout, present, mode)
    return x


def _align_shoulders(
    x: np.ndarray, layout: SkeletonLayout, present: np.ndarray, mode: str
) -> np.ndarray:
    left, right = _shoulders(layout, mode)
    both = present[:, left, 0] & present[:, right, 0]
    if not both.any():
        return x
    t = int(np.argmax(both))
    d = x[:, t, right, 0] - x[:, t, left, 0]
    theta = np.arctan2(d[2], d[0])
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=np.float32)
    out = x.copy()
    out[:3] = np.einsum("ck,ktvm->ctvm", rot, x[:3])
    return out


def rotation_blocker(layout: SkeletonLayout) -> str | None:
    """Why the ``*_rotate`` normalisations cannot turn skeletons of ``layout`` (2-D, or no
    left/right shoulder joints), or None when they can."""
    if layout.dims != 3:
        return f"layout {layout.name!r} is 2-D"
    if not {"left_shoulder", "right_shoulder"} <= set(layout.joint_names):
        return f"layout {layout.name!r} has no left_shoulder/right_shoulder joints"
    return None


def _shoulders(layout: SkeletonLayout, mode: str) -> tuple[int, int]:
    """(left, right) shoulder joints of a layout ``mode`` can turn; else one ConfigError
    line naming why and the mode without the turn."""
    why = rotation_blocker(layout)
    if why is not None:
        raise ConfigError(
            f"normalize {mode!r} cannot turn these skeletons ({why}); use "
            f"{mode.removesuffix('_rotate')!r}"
        )
    return layout.joint_names.index("left_shoulder"), layout.joint_names.index("right_shoulder")


def eval_window(length: int, eval_crop_ratio: float = 1.0, min_frames: int = 2) -> tuple[int, int]:
    """(start, length) of the frames an eval-mode clip of ``length`` valid frames is resized
    from: the centred ``eval_crop_ratio`` of them, at least ``min_frames``."""
    floor = min(min_frames, length)
    crop = min(max(int(np.floor(length * eval_crop_ratio)), floor), length)
    return (length - crop) // 2, crop


def make_clip(
    x: np.ndarray, layout: SkeletonLayout, start: int, crop: int, *, frames: int,
    normalize: str, stream: str,
) -> torch.Tensor:  # fmt: skip
    """One item of a feeder from a sample (C, T, V, M) cut to its valid length: normalised,
    frames ``start`` … ``start + crop`` resized to ``frames``, then the stream (float32)."""
    x = normalize_sample(np.asarray(x, dtype=np.float32), layout, normalize)
    clip = resize_frames(torch.from_numpy(x), crop, frames, starts=start)
    return to_stream(clip, stream, layout).to(torch.float32).contiguous()


def eval_clip(
    sample: np.ndarray, length: int, layout: SkeletonLayout, *, frames: int,
    normalize: str, stream: str, eval_crop_ratio: float = 1.0, min_frames: int = 2,
) -> torch.Tensor:  # fmt: skip
    """What ``SkeletonFeeder(..., train=False)[k]`` gives for a stored sample (C, T, V, M)
    with ``length`` valid frames (clipped to 1..T): the test-time pre-processing, for clips
    that are not in a dataset folder."""
    length = int(np.clip(length, 1, sample.shape[1]))
    x = np.array(sample[:, :length], dtype=np.float32)
    start, crop = eval_window(length, eval_crop_ratio, min_frames)
    return make_clip(x, layout, start, crop, frames=frames, normalize=normalize, stream=stream)


class SkeletonFeeder(Dataset):
    """Samples of a :class:`SkeletonDataset` as fixed-length clips (C, frames, V, M).

    Pick samples with ``split``/``part`` (e.g. ``"xsub"``, ``"train"``) or with absolute
    dataset ``indices`` (not both; neither means every sample). ``train=False`` is
    deterministic (centre crop of ``eval_crop_ratio`` of the valid length, resized);
    ``train=True`` draws a crop ratio per item from a generator seeded by
    (``seed``, epoch, index).

    >>> feeder = SkeletonFeeder(ds, "xsub", "train", frames=50)  # doctest: +SKIP
    >>> x, label = feeder[0]
    """

    def __init__(
        self,
        dataset: SkeletonDataset | str | os.PathLike[str],
        split: str | None = None,
        part: str = "train",
        *,
        indices: Sequence[int] | np.ndarray | None = None,
        frames: int = 50,
        normalize: str = "center_first_frame",
        stream: str = "joint",
        train: bool = False,
        crop_ratio: tuple[float, float] = (0.5, 1.0),
        eval_crop_ratio: float = 1.0,
        min_frames: int = 2,
        seed: int = 0,
    ):
        ds = dataset if isinstance(dataset, SkeletonDataset) else SkeletonDataset(dataset)
        if frames < 1:
            raise ConfigError(f"frames must be >= 1, got {frames}")
        if normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize {normalize!r}; available: {', '.join(NORMALIZATIONS)}")
        if normalize.endswith("_rotate"):
            _shoulders(ds.layout, normalize)
        if stream not in STREAMS:
            raise ConfigError(f"stream {stream!r}; available: {', '.join(STREAMS)}")
        lo, hi = (float(v) for v in crop_ratio)
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"crop_ratio must satisfy 0 < low <= high <= 1, got {crop_ratio}")
        if not 0 < eval_crop_ratio <= 1:
            raise ConfigError(f"eval_crop_ratio must be in (0, 1], got {eval_crop_ratio}")
        if min_frames < 1:
            raise ConfigError(f"min_frames must be >= 1, got {min_frames}")
        if split is not None and indices is not None:
            raise ConfigError("give either split/part or indices, not both")
        if split is not None:
            idx = ds.split(split, part)
        elif indices is not None:
            idx = np.asarray(indices, dtype=np.int64).reshape(-1)
            if idx.size and (idx.min() < 0 or idx.max() >= len(ds)):
                raise ConfigError(
                    f"indices must be in [0, {len(ds)}), got {idx.min()}..{idx.max()}"
                )
        else:
            idx = np.arange(len(ds), dtype=np.int64)
        self.root = ds.root
        self._dataset: SkeletonDataset | None = ds
        self.indices = idx
        self.labels = ds.labels[idx]
        self.lengths = np.clip(ds.lengths[idx], 1, ds.data.shape[2])
        self.layout: SkeletonLayout = ds.layout
        self.num_classes = ds.num_classes
        self.class_names = list(ds.info.get("class_names") or range(ds.num_classes))
        self.channels, self.bodies = int(ds.data.shape[1]), int(ds.data.shape[4])
        self.frames, self.normalize, self.stream = int(frames), normalize, stream
        self.train, self.crop_ratio, self.eval_crop_ratio = bool(train), (lo, hi), eval_crop_ratio
        self.min_frames, self.seed, self.epoch = int(min_frames), int(seed), 0

    # -- dataset protocol
    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= k < len(self):
            raise IndexError(f"index {k} out of range for {len(self)} samples")
        i, length = int(self.indices[k]), int(self.lengths[k])
        x = np.array(self.dataset.data[i, :, :length], dtype=np.float32)  # one sample only
        start, crop = self.window(k)
        clip = make_clip(x, self.layout, start, crop, frames=self.frames,
                         normalize=self.normalize, stream=self.stream)  # fmt: skip
        return clip, int(self.labels[k])

    def window(self, k: int) -> tuple[int, int]:
        """(start, length) of the frames item ``k`` is resized from."""
        length = int(self.lengths[k])
        floor = min(self.min_frames, length)
        if not self.train:
            return eval_window(length, self.eval_crop_ratio, self.min_frames)
        rng = np.random.default_rng([self.seed, self.epoch, int(self.indices[k])])
        crop = min(max(int(np.floor(length * rng.uniform(*self.crop_ratio))), floor), length)
        return int(rng.integers(0, length - crop + 1)), crop

    # -- helpers
    @property
    def dataset(self) -> SkeletonDataset:
        if self._dataset is None:  # reopened lazily after unpickling (DataLoader workers)
            self._dataset = SkeletonDataset(self.root)
        return self._dataset

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Shape (C, T, V, M) of one item."""
        return self.channels, self.frames, self.layout.num_joints, self.bodies

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose random crops train mode draws."""
        self.epoch = int(epoch)

    def subset(self, positions: Sequence[int] | np.ndarray) -> SkeletonFeeder:
        """A feeder over some of this feeder's items (positions 0..len-1), e.g. a
        semi-supervised label fraction; settings are shared."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        if pos.size and (pos.min() < -len(self) or pos.max() >= len(self)):
            raise ConfigError(f"subset positions must be in [0, {len(self)})")
        out = copy.copy(self)
        out.indices, out.labels, out.lengths = (
            self.indices[pos],
            self.labels[pos],
            self.lengths[pos],
        )
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_dataset"] = None  # a memmap would pickle as a full in-memory copy
        return state

    def __repr__(self) -> str:
        return (
            f"SkeletonFeeder({self.root.name!r}, {len(self)} samples, frames={self.frames}, "
            f"normalize={self.normalize!r}, stream={self.stream!r}, train={self.train})"
        )
