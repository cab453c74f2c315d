"""The ``generic`` format: any skeleton, any layout, arrays plus one CSV.

For skeletons that no benchmark reader knows (Kinect v2 recordings, OpenPose / COCO-17
keypoints, MediaPipe, a motion-capture rig). A folder holds::

    labels.csv     one row per sample (required)
    data.npy       all samples stacked: (N, T, V, C) or (N, M, T, V, C)   — or —
    <file>.npy     one array per sample, named in the CSV's ``file`` column:
                   (T, V, C) or (M, T, V, C)  (M bodies, T frames, V joints, C channels)
    classes.txt    class names, one per line, in label order (optional)

``labels.csv`` columns (a header row; only ``label`` is required):

* ``label``   — the class, an integer from 0;
* ``file``    — the sample's ``.npy`` path, relative to the CSV (without it: ``data.npy``,
  rows in array order);
* ``name``    — a sample name (default: the file stem or the row number);
* ``subject``, ``view`` — integers, kept as metadata (``view`` is the dataset's camera);
* ``length``  — valid frames (default: up to the last frame that is not all zero);
* ``split`` / ``split_<name>`` — ``train``, ``test`` or empty: each such column is one
  split of the dataset, named ``default`` or ``<name>`` (``split_xsub``, ``split_xview``).

The layout (``--layout``: ``ntu25``, ``kinect_v2``, ``kinect20``, ``coco17`` or a layout
.yaml, see :mod:`asma_bench.data.layouts`) fixes V and the number of coordinates; C is
that number, or one more for a confidence channel (COCO keypoints as x, y, score: C = 3
with a 2-D layout). Shorter samples are zero-padded to the longest; nothing is resampled.

>>> convert(Path("my_clips"), Path("data/my-clips"), layout="coco17")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.data.readers._common import (
    DEFAULT_OPTIONS,
    ConvertOptions,
    check_regular_file,
    one_line,
    progress_bar,
    read_text_lines,
    require_exists,
    valid_length,
)
from asma_bench.data.store import DatasetWriter, SampleMeta
from asma_bench.errors import ConfigError, DataFormatError

LABELS_FILE, STACKED_FILE, CLASSES_FILE = "labels.csv", "data.npy", "classes.txt"
#: One sample's array: the largest real clips (300 frames, 2 bodies, 25 joints, 4 channels)
#: are under 1 MB; a larger per-sample file is not a skeleton clip.
MAX_SAMPLE_BYTES = 256 * 2**20
SPLIT_COLUMN = re.compile(r"^split(?:_([A-Za-z0-9][\w.-]*))?$")
INT_COLUMNS = ("label", "subject", "view", "length")


def read_rows(path: Path) -> tuple[list[dict[str, str]], dict[str, str]]:
    """(rows, {split column: split name}) of a labels CSV; errors name the file and line."""
    text = "\n".join(read_text_lines(path))
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "label" not in header:
        raise DataFormatError(
            path, f"needs a 'label' column (header: {', '.join(header) or 'none'})"
        )
    known = {"label", "file", "name", "subject", "view", "length"}
    splits = {}
    for column in header:
        m = SPLIT_COLUMN.match(column)
        if m:
            splits[column] = m.group(1) or "default"
        elif column not in known:
            raise DataFormatError(
                path, f"unknown column {column!r} (columns: label, file, name, subject, view, "
                "length, split, split_<name>)"
            )  # fmt: skip
    rows = []
    for i, raw in enumerate(reader):
        line = i + 2
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if None in raw:
            raise DataFormatError(path, "more fields than columns", line=line)
        for column in INT_COLUMNS:
            value = row.get(column, "")
            if value and not re.fullmatch(r"-?\d+", value):
                raise DataFormatError(path, f"{column} {value[:40]!r} is not an integer", line=line)
        if not row.get("label"):
            raise DataFormatError(path, "empty label", line=line)
        for column in splits:
            if row.get(column, "").lower() not in ("", "train", "test"):
                raise DataFormatError(
                    path, f"{column} {row[column][:40]!r} is not train, test or empty", line=line
                )
        row["_line"] = str(line)
        rows.append(row)
    if not rows:
        raise DataFormatError(path, "no samples (only a header)")
    return rows, splits


def _as_sample(arr: np.ndarray, where: Path, layout: SkeletonLayout, what: str) -> np.ndarray:
    """(T, V, C) or (M, T, V, C) → the canonical (C, T, V, M), checked against ``layout``."""
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise DataFormatError(where, f"{what}: shape {arr.shape} is not (T, V, C) or (M, T, V, C)")
    m, t, v, c = arr.shape
    if v != layout.num_joints:
        raise DataFormatError(
            where, f"{what}: {v} joints, layout {layout.name!r} has {layout.num_joints}"
        )
    if c not in (layout.dims, layout.dims + 1):
        raise DataFormatError(
            where, f"{what}: {c} channels; the {layout.dims}-D layout {layout.name!r} takes "
            f"{layout.dims} (coordinates) or {layout.dims + 1} (plus a confidence)"
        )  # fmt: skip
    if arr.dtype.kind not in "fiu":
        raise DataFormatError(where, f"{what}: values are {arr.dtype}, not real numbers")
    return np.ascontiguousarray(np.asarray(arr, dtype=np.float32).transpose(3, 1, 2, 0))


def _load(path: Path, mmap: bool) -> np.ndarray:
    if not mmap:
        check_regular_file(path, MAX_SAMPLE_BYTES)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataFormatError(path, f"not a readable .npy array ({one_line(exc)})") from None


def convert(
    source: Path,
    out: Path,
    opts: ConvertOptions = DEFAULT_OPTIONS,
    *,
    layout: str | Path | SkeletonLayout | None = None,
) -> Path:
    """A ``generic`` folder (see the module docstring) → dataset at ``out``. ``labels`` is
    the CSV when it is not ``source/labels.csv``; ``layout`` is required."""
    opts.refuse("generic", "missing", "split_file")
    if layout is None:
        raise ConfigError(
            "the generic format needs --layout (ntu25, kinect_v2, kinect20, coco17 or a "
            "layout .yaml file)"
        )
    skeleton = get_layout(layout)
    source, out = Path(source), Path(out)
    require_exists(source)
    folder = source if source.is_dir() else source.parent
    csv_path = Path(opts.labels) if opts.labels is not None else folder / LABELS_FILE
    if not csv_path.is_file():
        raise DataFormatError(csv_path, "no labels CSV (one row per sample, see the format)")
    rows, splits = read_rows(csv_path)
    base = csv_path.parent
    per_file = "file" in rows[0]
    stacked = None
    if not per_file:
        stacked_path = source if source.is_file() else folder / STACKED_FILE
        if not stacked_path.is_file():
            raise DataFormatError(
                csv_path, f"has no 'file' column and {stacked_path} does not exist"
            )
        stacked = _load(stacked_path, mmap=True)
        if stacked.ndim not in (4, 5) or stacked.shape[0] != len(rows):
            raise DataFormatError(
                stacked_path,
                f"shape {stacked.shape} is not (N, T, V, C) or (N, M, T, V, C) with N = "
                f"{len(rows)} rows of {csv_path.name}",
            )
    classes_path = folder / CLASSES_FILE
    class_names = None
    if classes_path.is_file():
        class_names = [n.strip() for n in read_text_lines(classes_path) if n.strip()]
    first = _first_sample(rows, base, stacked, skeleton, csv_path)
    channels, bodies = first.shape[0], first.shape[3]
    with DatasetWriter(
        out,
        layout=skeleton,
        source=f"generic:{folder.name}",
        class_names=class_names,
        channels=channels,
        bodies=bodies,
        overwrite=opts.overwrite,
        skip_bad=opts.skip_bad,
    ) as writer:
        kept: list[dict[str, str]] = []
        for i, row in enumerate(progress_bar(rows, progress=opts.progress, desc="generic")):
            where = base / row["file"] if per_file else csv_path
            name = row.get("name") or (Path(row["file"]).stem if per_file else str(i))
            with writer.guard(name):
                if per_file:
                    x = _as_sample(_load(where, mmap=False), where, skeleton, "sample")
                else:
                    x = _as_sample(stacked[i], where, skeleton, f"sample {i}")
                if x.shape[0] != channels or x.shape[3] != bodies:
                    raise DataFormatError(
                        where, f"line {row['_line']}: {x.shape[0]} channels and {x.shape[3]} "
                        f"bodies, the first sample has {channels} and {bodies}"
                    )  # fmt: skip
                if not np.isfinite(x).all():
                    raise DataFormatError(where, f"line {row['_line']}: NaN or inf values")
                length = int(row["length"]) if row.get("length") else valid_length(x)
                if not 1 <= length <= x.shape[1]:
                    raise DataFormatError(
                        csv_path, f"line {row['_line']}: length {length} is not in "
                        f"1..{x.shape[1]} (all-zero sample?)"
                    )  # fmt: skip
                meta = SampleMeta(
                    name=name,
                    label=int(row["label"]),
                    subject=int(row.get("subject") or -1),
                    camera=int(row.get("view") or -1),
                )
                writer.add(x[:, :length], meta)
                kept.append(row)
        writer.set_splits(
            {
                split: {
                    part: [j for j, r in enumerate(kept) if r.get(column, "").lower() == part]
                    for part in ("train", "test")
                }
                for column, split in splits.items()
            }
        )
    return out


def _first_sample(
    rows: list[dict[str, str]],
    base: Path,
    stacked: np.ndarray | None,
    layout: SkeletonLayout,
    csv_path: Path,
) -> np.ndarray:
    """The first sample, which fixes the dataset's channels and bodies."""
    if stacked is not None:
        return _as_sample(stacked[0], csv_path, layout, "sample 0")
    if not rows[0].get("file"):
        raise DataFormatError(csv_path, "empty file name", line=2)
    path = base / rows[0]["file"]
    return _as_sample(_load(path, mmap=False), path, layout, "sample")


__all__ = ["convert", "read_rows"]
