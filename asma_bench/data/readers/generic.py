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

``labels.csv`` and ``classes.txt`` are UTF-8 (with or without the byte-order mark a
spreadsheet writes); file names may be any Unicode, in either normal form. A ``.npy`` whose
header claims more (or less) data than the file holds is refused before it is loaded.

>>> convert(Path("my_clips"), Path("data/my-clips"), layout="coco17")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from asma_bench.data.files import input_exists, load_npy
from asma_bench.data.layouts import SkeletonLayout, get_layout
from asma_bench.data.readers._common import (
    DEFAULT_OPTIONS,
    ConvertOptions,
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
#: Integer fields have at most this many digits: every value then fits the int64 columns of
#: meta.csv (a 40-digit subject would turn the column into Python objects, a 5,000-digit
#: label would pass the pattern and fail Python's int()).
MAX_DIGITS = 18


def read_rows(path: Path) -> tuple[list[dict[str, str]], dict[str, str]]:
    """(rows, {split column: split name}) of a labels CSV; errors name the file and line.

    The file is UTF-8; a byte-order mark (spreadsheets write one) is not part of the first
    column's name."""
    text = "\n".join(read_text_lines(path))
    reader = csv.DictReader(io.StringIO(text))
    try:
        return _read_rows(path, reader)
    except csv.Error as exc:  # a field over the csv module's size limit, a stray quote...
        line = reader.reader.line_num or None  # the row being parsed (DictReader's lags)
        raise DataFormatError(path, f"not CSV: {exc}", line=line) from None


def _read_rows(
    path: Path, reader: csv.DictReader[str]
) -> tuple[list[dict[str, str]], dict[str, str]]:
    header = [h.strip() for h in (reader.fieldnames or [])]
    twice = sorted(h for h, k in Counter(header).items() if k > 1)
    if twice:  # csv.DictReader would keep the last one silently
        raise DataFormatError(path, f"column {twice[0]!r} appears twice in the header", line=1)
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
            if value and not re.fullmatch(r"-?[0-9]+", value):
                raise DataFormatError(path, f"{column} {value[:40]!r} is not an integer", line=line)
            if len(value.lstrip("-")) > MAX_DIGITS:
                raise DataFormatError(
                    path, f"{column} {value[:40]!r} has more than {MAX_DIGITS} digits", line=line
                )
        if not row.get("label"):
            raise DataFormatError(path, "empty label", line=line)
        if "file" in header and not row.get("file"):
            raise DataFormatError(path, "empty file name", line=line)
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


def read_class_names(path: Path) -> list[str]:
    """Class names, one a line in label order (UTF-8, blank lines skipped); a name listed
    twice is refused, as two labels with one name could not be told apart in a report."""
    names: dict[str, int] = {}
    for no, line in enumerate(read_text_lines(path), start=1):
        name = line.strip()
        if not name:
            continue
        if name in names:
            raise DataFormatError(
                path, f"class {name[:40]!r} is listed twice (line {names[name]})", line=no
            )
        names[name] = no
    return list(names)


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
    """A sample file (at most MAX_SAMPLE_BYTES) or the stacked array (memory-mapped), its
    header checked against its size before anything is allocated."""
    return load_npy(path, mmap=mmap, limit=None if mmap else MAX_SAMPLE_BYTES)


def _sample_path(base: Path, name: str) -> Path:
    """The file the CSV's ``name`` refers to. A name typed on one system and a file
    copied from another can spell ``ä`` differently (one code point, NFC, or ``a`` plus a
    combining mark, NFD, as macOS file systems store it); both spellings are tried."""
    path = base / name
    if input_exists(path):
        return path
    for form in ("NFC", "NFD"):
        other = base / unicodedata.normalize(form, name)
        if other != path and input_exists(other):
            return other
    return path


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
    if not input_exists(csv_path):  # a symbolic-link loop is said as such, not as missing
        raise DataFormatError(csv_path, "no labels CSV (one row per sample, see the format)")
    rows, splits = read_rows(csv_path)
    base = csv_path.parent
    per_file = "file" in rows[0]
    stacked = None
    if not per_file:
        stacked_path = source if source.is_file() else folder / STACKED_FILE
        if not input_exists(stacked_path):
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
    class_names = read_class_names(classes_path) if input_exists(classes_path) else None
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
            name = row.get("name") or (Path(row["file"]).stem if per_file else str(i))
            with writer.guard(name):  # a path that cannot be reached is a bad sample too
                where = _sample_path(base, row["file"]) if per_file else csv_path
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
    path = _sample_path(base, rows[0]["file"])
    return _as_sample(_load(path, mmap=False), path, layout, "sample")


__all__ = ["convert", "read_rows"]
