"""PYSKL annotation pickles (``ntu60_3danno.pkl`` etc.) → the canonical dataset.

The pickle is ``dict(split={xsub_train: [names], xsub_val: [...], ...}, annotations=[{
frame_dir, label, keypoint (M, T, V, C) float16, total_frames, ...}])``; it is loaded with
the restricted unpickler. ``*_train`` lists become the train part and ``*_val`` (or
``*_test``) the test part of the split named by the prefix. Only 3D keypoints of a known
layout (25 NTU joints, 20 Kinect-v1 joints) are accepted; bodies beyond two are dropped and
a single body is padded with a zero second body.

>>> convert(Path("ntu60_3danno.pkl"), Path("data/ntu60"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from asma_bench.data.layouts import LAYOUTS
from asma_bench.data.readers._common import (
    DEFAULT_OPTIONS,
    ConvertOptions,
    ntu_name_fields,
    progress_bar,
    require_exists,
)
from asma_bench.data.readers.safe_pickle import load_pickle
from asma_bench.data.store import DatasetWriter, SampleMeta
from asma_bench.errors import DataFormatError

log = logging.getLogger(__name__)

MAX_BODIES = 2
PART_SUFFIXES = {"_train": "train", "_val": "test", "_test": "test"}


def _layout_for(num_joints: int) -> str | None:
    for name, layout in LAYOUTS.items():
        if layout.num_joints == num_joints:
            return name
    return None


def keypoints_to_sample(keypoint: np.ndarray, bodies: int = MAX_BODIES) -> np.ndarray:
    """(M, T, V, C) → (C, T, V, bodies): the first ``bodies`` bodies, zero-padded."""
    kp = np.asarray(keypoint, dtype=np.float32)[:bodies]
    x = np.zeros((kp.shape[3], kp.shape[1], kp.shape[2], bodies), dtype=np.float32)
    x[..., : kp.shape[0]] = kp.transpose(3, 1, 2, 0)
    return x


def split_indices(
    path: Path,
    split: Mapping[str, Any],
    index: Mapping[str, int],
    ignore: Collection[str] = (),
) -> dict:
    """``{xsub_train: names, xsub_val: names}`` → ``{xsub: {train: idx, test: idx}}``.

    Names in ``ignore`` (annotations skipped as bad) are left out without a warning.
    """
    splits: dict[str, dict[str, list[int]]] = {}
    for key, names in split.items():
        suffix = next((s for s in PART_SUFFIXES if str(key).endswith(s)), None)
        if suffix is None:
            log.info("%s: ignoring split list %r", path, key)
            continue
        if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
            raise DataFormatError(path, f"split[{key!r}] is not a list of names")
        wanted = [str(n) for n in names if str(n) not in ignore]
        idx = [index[n] for n in wanted if n in index]
        if len(idx) < len(wanted):
            log.warning(
                "%s: %d names of split %r have no annotation", path, len(wanted) - len(idx), key
            )
        name = str(key)[: -len(suffix)]
        part = PART_SUFFIXES[suffix]
        splits.setdefault(name, {"train": [], "test": []})[part].extend(idx)
    return splits


def convert(
    source: Path,
    out: Path,
    opts: ConvertOptions = DEFAULT_OPTIONS,
) -> Path:
    """A PYSKL pickle → dataset with the pickle's own splits.

    With ``skip_bad`` a bad annotation (missing keys, NaN/inf or empty keypoints, a joint
    count other than the first good annotation's, a bad label) is listed in the dataset's
    ``skipped.csv`` and left out of every split instead of stopping the conversion.
    """
    opts.refuse("pyskl", "labels", "missing", "split_file")
    source, out = Path(source), Path(out)
    require_exists(source)
    obj = load_pickle(source)
    if not isinstance(obj, dict) or not isinstance(obj.get("annotations"), list):
        raise DataFormatError(source, "expected dict(split=..., annotations=[...])")
    annotations = obj["annotations"]
    split = obj.get("split", {})
    if not isinstance(split, dict):
        raise DataFormatError(source, "split must be a dict of name lists")
    if not annotations:
        raise DataFormatError(source, "annotations list is empty")
    checked: list[tuple[str, int, np.ndarray]] = []
    index: dict[str, int] = {}  # frame_dir → position among the kept annotations
    skipped: list[tuple[str, str]] = []
    first: tuple[int, int] | None = None  # (annotation number, joints) of the first good one
    for i, ann in enumerate(annotations):
        try:
            name, label, kp = _check(source, i, ann)
            if first is None:
                first = (i, kp.shape[2])
            elif kp.shape[2] != first[1]:
                raise DataFormatError(
                    source,
                    f"annotations[{i}] ({name}) has {kp.shape[2]} joints, "
                    f"annotations[{first[0]}] {first[1]}",
                )
        except DataFormatError as exc:
            if not opts.skip_bad:
                raise
            frame_dir = ann.get("frame_dir") if isinstance(ann, dict) else None
            skipped.append((str(frame_dir or f"annotations[{i}]"), str(exc)))
            log.warning("skipped %s", exc)
            continue
        if name in index:  # not a bad sample but a broken file: which one is right?
            raise DataFormatError(source, f"annotations[{i}]: frame_dir {name!r} repeats")
        index[name] = len(checked)
        checked.append((name, label, kp))
    if first is None:
        raise DataFormatError(source, f"no usable annotation ({len(skipped)} bad ones skipped)")
    num_joints = first[1]
    layout = _layout_for(num_joints)
    if layout is None:
        raise DataFormatError(
            source,
            f"keypoints have {num_joints} joints; known layouts have "
            f"{', '.join(str(v.num_joints) for v in LAYOUTS.values())}",
        )
    splits = split_indices(source, split, index, ignore={name for name, _ in skipped})
    if not splits:
        log.warning("%s: no *_train / *_val split lists", source)
    with DatasetWriter(
        out,
        layout=layout,
        source=f"pyskl:{source.name}",
        bodies=MAX_BODIES,
        overwrite=opts.overwrite,
        skip_bad=opts.skip_bad,
    ) as writer:
        writer.skipped.extend(skipped)
        for name, label, kp in progress_bar(
            checked, progress=opts.progress, desc="pyskl", unit="sample"
        ):
            fields = ntu_name_fields(name) or {}
            fields.pop("label", None)
            writer.add(keypoints_to_sample(kp), SampleMeta(name=name, label=label, **fields))
        writer.set_splits(splits)
    return out


def _check(path: Path, i: int, ann: Any) -> tuple[str, int, np.ndarray]:
    """(name, label, keypoint) of one annotation, validated; errors name the entry."""
    if not isinstance(ann, dict):
        raise DataFormatError(path, f"annotations[{i}] is not a dict")
    for key in ("frame_dir", "label", "keypoint"):
        if key not in ann:
            raise DataFormatError(path, f"annotations[{i}] has no {key!r}")
    name = str(ann["frame_dir"])
    where = f"annotations[{i}] ({name})"
    kp = ann["keypoint"]
    if not isinstance(kp, np.ndarray) or kp.ndim != 4 or kp.dtype.kind not in "fiu":
        raise DataFormatError(path, f"{where}: keypoint must be a real (M, T, V, C) array")
    if kp.shape[3] != 3:
        raise DataFormatError(
            path, f"{where}: keypoint has C={kp.shape[3]}; only 3D (C=3) skeletons are supported"
        )
    if kp.shape[0] == 0 or kp.shape[1] == 0:
        raise DataFormatError(path, f"{where}: keypoint has shape {kp.shape} (no body or frame)")
    if not np.isfinite(kp[:MAX_BODIES]).all():
        raise DataFormatError(path, f"{where}: keypoint contains NaN or inf")
    try:
        label = int(ann["label"])
    except (TypeError, ValueError, OverflowError):
        raise DataFormatError(path, f"{where}: label {ann['label']!r} is not an integer") from None
    if label < 0:
        raise DataFormatError(path, f"{where}: negative label {label}")
    total = ann.get("total_frames")
    try:
        total = None if total is None else int(total)
    except (TypeError, ValueError, OverflowError):
        raise DataFormatError(
            path, f"{where}: total_frames {str(total)[:40]!r} is not an integer"
        ) from None
    if total is not None and total != kp.shape[1]:
        log.debug(
            "%s: %s total_frames %s but keypoint has %d frames", path, where, total, kp.shape[1]
        )
    return name, label, kp
