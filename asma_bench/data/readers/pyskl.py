"""PYSKL annotation pickles (``ntu60_3danno.pkl`` etc.) → the canonical dataset.

The pickle is ``dict(split={xsub_train: [names], xsub_val: [...], ...}, annotations=[{
frame_dir, label, keypoint (M, T, V, C) float16, total_frames, ...}])``; it is loaded with
the restricted unpickler. ``*_train`` lists become the train part and ``*_val`` (or
``*_test``) the test part of the split named by the prefix; bare ``train``/``val``/``test``
lists (GYM, Diving48) make the split ``default`` and ``train1``/``test1`` … (UCF101,
HMDB51) the splits ``split1`` …. Bodies beyond two are dropped and a single body is padded
with a zero second body.

The layout is ``layout`` (``--layout``: a name or layout file) or, when not given, the
built-in layout with the keypoints' joint count: 25 → ``ntu25``, 20 → ``kinect20`` (3-D,
``*_3danno.pkl``), 17 → ``coco17`` (2-D, the HRNet ``*_hrnet.pkl`` files). A 2-D annotation's
``keypoint_score`` (M, T, V) becomes a third channel after x and y (a detector's confidence,
carried as a feature: see :mod:`asma_bench.data.layouts`); keypoints that already hold it
(C = dims + 1, Kinetics' x, y, score) are taken as they are. Coordinates are stored as the
pickle has them (pixels for 2-D keypoints: x right, y down; ``img_shape`` is not applied).

>>> convert(Path("ntu60_3danno.pkl"), Path("data/ntu60"))  # doctest: +SKIP
>>> convert(Path("ntu60_hrnet.pkl"), Path("data/ntu60-2d"))  # coco17, x, y, score  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from asma_bench.data.layouts import LAYOUTS, SkeletonLayout, get_layout
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
#: split lists without a ``<name>_`` prefix: ``train``/``val``/``test`` (GYM, Diving48) and
#: ``train1``/``test1`` … (UCF101, HMDB51: three official splits)
BARE_PART = re.compile(r"(train|val|test)(\d*)")


def _layout_for(num_joints: int, channels: int) -> SkeletonLayout | None:
    """The built-in layout with ``num_joints`` joints that takes ``channels`` channels
    (its coordinates, or one more for a confidence); else the first with that many joints
    (its channel check then names the mismatch); None when no layout has them."""
    fits = [lay for lay in LAYOUTS.values() if lay.num_joints == num_joints]
    for lay in fits:
        if channels in (lay.dims, lay.dims + 1):
            return lay
    return fits[0] if fits else None


def keypoints_to_sample(
    keypoint: np.ndarray, bodies: int = MAX_BODIES, score: np.ndarray | None = None
) -> np.ndarray:
    """(M, T, V, C) → (C, T, V, bodies): the first ``bodies`` bodies, zero-padded; a
    ``score`` (M, T, V) becomes one more channel after the keypoint's C."""
    kp = np.asarray(keypoint, dtype=np.float32)[:bodies]
    if score is not None:
        kp = np.concatenate([kp, np.asarray(score, dtype=np.float32)[:bodies, ..., None]], axis=3)
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
        bare = BARE_PART.fullmatch(str(key))
        if suffix is None and bare is None:
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
        if bare is not None:
            name = f"split{bare.group(2)}" if bare.group(2) else "default"
            part = "train" if bare.group(1) == "train" else "test"
        else:
            name = str(key)[: -len(suffix)]
            part = PART_SUFFIXES[suffix]
        splits.setdefault(name, {"train": [], "test": []})[part].extend(idx)
    return splits


def convert(
    source: Path,
    out: Path,
    opts: ConvertOptions = DEFAULT_OPTIONS,
    layout: str | Path | SkeletonLayout | None = None,
) -> Path:
    """A PYSKL pickle → dataset with the pickle's own splits, on ``layout`` (default: the
    built-in layout with the keypoints' joint count).

    With ``skip_bad`` a bad annotation (missing keys, NaN/inf or empty keypoints, a joint
    or channel count other than the first good annotation's, a bad label) is listed in the
    dataset's ``skipped.csv`` and left out of every split instead of stopping the conversion.
    """
    opts.refuse("pyskl", "labels", "missing", "split_file")
    source, out = Path(source), Path(out)
    skeleton = None if layout is None else get_layout(layout)
    given = skeleton is not None
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
    # the arrays as the pickle holds them (float16 for pyskl's files): cast one at a time
    checked: list[tuple[str, int, np.ndarray, np.ndarray | None]] = []
    index: dict[str, int] = {}  # frame_dir → position among the kept annotations
    skipped: list[tuple[str, str]] = []
    first: tuple[int, int] | None = None  # (annotation number, channels) of the first good one
    layout_from = 0  # the annotation an inferred layout was read from
    for i, ann in enumerate(annotations):
        try:
            name, label, kp, score = _check(source, i, ann)
            if skeleton is None:  # the first annotation that reads fixes the layout
                skeleton = _layout_for(kp.shape[2], kp.shape[3])
                if skeleton is None:
                    raise _UnknownLayout(
                        source,
                        f"keypoints have {kp.shape[2]} joints; known layouts have "
                        f"{', '.join(str(v.num_joints) for v in LAYOUTS.values())} "
                        "(or pass --layout with a layout file)",
                    )
                layout_from = i
            where = f"annotations[{i}] ({name})"
            if kp.shape[2] != skeleton.num_joints:
                than = (
                    f"; layout {skeleton.name!r} has" if given else f", annotations[{layout_from}]"
                )
                raise DataFormatError(
                    source, f"{where} has {kp.shape[2]} joints{than} {skeleton.num_joints}"
                )
            channels, score = _channels(source, where, kp, score, skeleton)
            if first is None:
                first = (i, channels)
            elif channels != first[1]:
                dims = _channel_names(skeleton)
                raise DataFormatError(
                    source,
                    f"{where}: {channels} channels ({dims[channels - skeleton.dims]}), "
                    f"annotations[{first[0]}] {first[1]} ({dims[first[1] - skeleton.dims]}): "
                    "every annotation needs keypoint_score, or none",
                )
        except _UnknownLayout:
            raise
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
        checked.append((name, label, kp, score))
    if first is None or skeleton is None:
        raise DataFormatError(source, f"no usable annotation ({len(skipped)} bad ones skipped)")
    splits = split_indices(source, split, index, ignore={name for name, _ in skipped})
    if not splits:
        log.warning("%s: no *_train / *_val (or train / val) split lists", source)
    with DatasetWriter(
        out,
        layout=skeleton,
        source=f"pyskl:{source.name}",
        channels=first[1],
        bodies=MAX_BODIES,
        overwrite=opts.overwrite,
        skip_bad=opts.skip_bad,
        extra_info={"name": source.stem},
    ) as writer:
        writer.skipped.extend(skipped)
        for name, label, kp, score in progress_bar(
            checked, progress=opts.progress, desc="pyskl", unit="sample"
        ):
            fields = ntu_name_fields(name) or {}
            fields.pop("label", None)
            writer.add(
                keypoints_to_sample(kp, score=score), SampleMeta(name=name, label=label, **fields)
            )
        writer.set_splits(splits)
    return out


class _UnknownLayout(DataFormatError):
    """No layout has the keypoints' joint count: the whole file, not one annotation."""


def _channel_names(layout: SkeletonLayout) -> tuple[str, str]:
    """What ``dims`` and ``dims + 1`` channels hold: ("x, y", "x, y, score") for 2-D."""
    coords = "x, y" if layout.dims == 2 else "x, y, z"
    return coords, f"{coords}, score"


def _channels(
    path: Path, where: str, kp: np.ndarray, score: np.ndarray | None, layout: SkeletonLayout
) -> tuple[int, np.ndarray | None]:
    """(channels of the stored sample, the score to append or None): the keypoint's
    coordinates plus ``keypoint_score`` as one more channel, or keypoints that already
    carry the score (C = dims + 1) as they are."""
    c, dims = kp.shape[3], layout.dims
    if c == dims:
        return (dims + 1, score) if score is not None else (dims, None)
    if c == dims + 1:
        if score is not None:
            log.debug("%s: %s has C=%d: keypoint_score left out", path, where, c)
        return c, None
    if dims == 3:
        raise DataFormatError(
            path,
            f"{where}: keypoint has C={c}; only 3D (C=3, or 4 with a confidence) keypoints "
            f"fit the 3-D layout {layout.name!r}",
        )
    raise DataFormatError(
        path,
        f"{where}: keypoint has C={c}; the 2-D layout {layout.name!r} takes C=2 (x, y; "
        "keypoint_score becomes a third channel) or C=3 (x, y, score)",
    )


def _check(path: Path, i: int, ann: Any) -> tuple[str, int, np.ndarray, np.ndarray | None]:
    """(name, label, keypoint, keypoint_score or None) of one annotation, validated; errors
    name the entry."""
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
    if kp.shape[0] == 0 or kp.shape[1] == 0:
        raise DataFormatError(path, f"{where}: keypoint has shape {kp.shape} (no body or frame)")
    if not np.isfinite(kp[:MAX_BODIES]).all():
        raise DataFormatError(path, f"{where}: keypoint contains NaN or inf")
    score = ann.get("keypoint_score")
    if score is not None:
        if (
            not isinstance(score, np.ndarray)
            or score.dtype.kind not in "fiu"
            or score.shape != kp.shape[:3]
        ):
            got = score.shape if isinstance(score, np.ndarray) else type(score).__name__
            raise DataFormatError(
                path,
                f"{where}: keypoint_score must be a real (M, T, V) = {kp.shape[:3]} array "
                f"like the keypoint's, got {got}",
            )
        if not np.isfinite(score[:MAX_BODIES]).all():
            raise DataFormatError(path, f"{where}: keypoint_score contains NaN or inf")
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
    return name, label, kp, score
