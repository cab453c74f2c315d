"""NW-UCLA JSON samples (``aAA_sSS_eEE_vVV.json``) → the canonical dataset.

Each file is ``{"file_name": ..., "skeletons": [T][20][3], "label": L}`` with L in 1–10
(the file order of action ids 1–6, 8, 9, 11, 12). One Kinect-v1 body (layout ``kinect20``,
M = 1); label = L - 1, subject = SS, replication = EE, camera = view VV. Split: cross-view.

>>> convert(Path("all_sqe"), Path("data/ucla"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from asma_bench.data.files import read_text
from asma_bench.data.readers._common import (
    DEFAULT_OPTIONS,
    MAX_TEXT_BYTES,
    ConvertOptions,
    one_line,
    progress_bar,
    require_exists,
)
from asma_bench.data.splits import ucla_splits
from asma_bench.data.store import DatasetWriter, SampleMeta
from asma_bench.errors import DataFormatError

log = logging.getLogger(__name__)

NUM_JOINTS = 20
CLASS_NAMES = (  # label order: file labels 1..10 (action ids 1-6, 8, 9, 11, 12)
    "pick up with one hand",
    "pick up with two hands",
    "drop trash",
    "walk around",
    "sit down",
    "stand up",
    "donning",
    "doffing",
    "throw",
    "carry",
)
UCLA_NAME = re.compile(r"a(\d+)_s(\d+)_e(\d+)_v(\d+)$")


class _NonFinite(ValueError):
    pass


def _reject_constant(token: str) -> float:
    raise _NonFinite(token)


def read_sample(path: str | os.PathLike[str]) -> tuple[np.ndarray, SampleMeta]:
    """One JSON file → ((3, T, 20, 1) float32, metadata); errors name the file and line."""
    path = Path(path)
    m = UCLA_NAME.match(path.stem)
    if m is None:
        raise DataFormatError(path, "file name does not follow aAA_sSS_eEE_vVV.json")
    _, subject, replication, view = (int(g) for g in m.groups())
    text = read_text(path, MAX_TEXT_BYTES)  # UTF-8, a byte-order mark accepted
    if not text.strip():
        raise DataFormatError(path, "empty file")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except _NonFinite as exc:
        token = str(exc)
        line = text.count("\n", 0, max(text.find(token), 0)) + 1
        raise DataFormatError(path, f"{token} is not a finite number", line=line) from None
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
    except RecursionError:
        raise DataFormatError(path, "JSON nested too deeply for a skeleton file") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise DataFormatError(path, f"invalid JSON value: {one_line(exc)[:120]}") from None
    if not isinstance(obj, dict) or "skeletons" not in obj or "label" not in obj:
        raise DataFormatError(path, 'expected {"file_name", "skeletons", "label"}')
    label = obj["label"]
    if isinstance(label, bool) or not isinstance(label, int) or label < 1:
        raise DataFormatError(path, f"label {label!r} is not an integer >= 1")
    if label > len(CLASS_NAMES):
        raise DataFormatError(path, f"label {label} is above {len(CLASS_NAMES)}, NW-UCLA's actions")
    skeletons = obj["skeletons"]
    if not _numeric_nested(skeletons):
        raise DataFormatError(path, "skeletons must be a [T][20][3] array of numbers")
    try:
        joints = np.asarray(skeletons, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataFormatError(path, "skeletons must be a [T][20][3] array of numbers") from None
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise DataFormatError(
            path, f"skeletons has shape {joints.shape}; expected (T>0, {NUM_JOINTS}, 3)"
        )
    if not np.isfinite(joints).all():  # e.g. 1e999
        raise DataFormatError(path, "skeletons contain a non-finite number")
    x = joints.transpose(2, 0, 1)[..., None].astype(np.float32)
    meta = SampleMeta(
        name=path.stem, label=label - 1, subject=subject, camera=view, replication=replication
    )
    return x, meta


def _numeric_nested(value: object) -> bool:
    """True when ``value`` is a nested list of ints/floats (no strings, bools or nulls)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
    return True


def convert(
    source: Path,
    out: Path,
    opts: ConvertOptions = DEFAULT_OPTIONS,
) -> Path:
    """A folder of NW-UCLA JSON files (or one file) → dataset with the cross-view split."""
    opts.refuse("ucla", "labels", "missing", "split_file")
    source, out = Path(source), Path(out)
    require_exists(source)
    files = sorted(source.glob("*.json")) if source.is_dir() else [source]
    if not files:
        raise DataFormatError(source, "no .json files")
    with DatasetWriter(
        out,
        layout="kinect20",
        source="ucla",
        class_names=CLASS_NAMES,
        bodies=1,
        overwrite=opts.overwrite,
        skip_bad=opts.skip_bad,
    ) as writer:
        for path in progress_bar(files, progress=opts.progress, desc="ucla"):
            with writer.guard(path.name):
                writer.add(*read_sample(path))
        writer.set_splits(ucla_splits)
    return out
