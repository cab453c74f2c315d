"""PKU-MMD Part I / II skeleton text files and label files → the canonical dataset.

A skeleton file ``<video>.txt`` (``0002-L``, ``A10N08-L``) has one line per frame of 150
numbers: x y z of 25 NTU-layout joints of body 1, then body 2 (zeros when absent). A label
file of the same name has rows ``action_id,start_frame,end_frame,confidence``; each row is
cut into a sample ``<video>_<row>`` (row counted from 0) with label ``action_id - 1``.
Frames are counted from 0 and both ends are included, as in the common preprocessing
scripts (``frames[start:end + 1]``); ``first_frame=1`` reads 1-based labels instead.

``whole_file=True`` converts each skeleton file as one sample named after the video with
label 0 (the store has no "unlabelled" value), e.g. to pretrain on unlabelled recordings.

>>> convert(Path("PKU-MMD"), Path("data/pku"), split_file=Path("xsub.txt"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asma_bench.data.readers._common import (
    DEFAULT_OPTIONS,
    ConvertOptions,
    parse_number_rows,
    progress_bar,
    read_text_lines,
    require_exists,
)
from asma_bench.data.splits import pku_splits
from asma_bench.data.store import DatasetWriter, SampleMeta
from asma_bench.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

NUM_JOINTS, BODIES = 25, 2
ROW_FIELDS = BODIES * NUM_JOINTS * 3
VIEWS = {"L": 1, "M": 2, "R": 3}


@dataclass(frozen=True)
class ActionInterval:
    """One label row: 0-based class, inclusive frame range, and where it came from."""

    label: int
    start: int
    end: int
    confidence: float
    line: int


def read_skeleton(path: str | os.PathLike[str]) -> np.ndarray:
    """A skeleton file → float64 (T, 150); errors name the file and line."""
    lines = read_text_lines(path)
    return parse_number_rows(path, lines, ROW_FIELDS, line_of=lambda row: row + 1)


def to_sample(rows: np.ndarray) -> np.ndarray:
    """(T, 150) rows → (3, T, 25, 2)."""
    return rows.reshape(len(rows), BODIES, NUM_JOINTS, 3).transpose(3, 0, 2, 1)


def read_labels(path: str | os.PathLike[str], first_frame: int = 0) -> list[ActionInterval]:
    """Rows ``action_id,start_frame,end_frame[,confidence]`` of a label file."""
    intervals = []
    for no, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) not in (3, 4):
            raise DataFormatError(
                path,
                f"expected action_id,start_frame,end_frame,confidence, found {len(fields)} fields",
                line=no,
            )
        try:
            action, start, end = (int(f) for f in fields[:3])
            confidence = float(fields[3]) if len(fields) == 4 else float("nan")
        except ValueError:
            raise DataFormatError(path, f"non-numeric field in {line.strip()!r}", line=no) from None
        if action < 1:
            raise DataFormatError(path, f"action_id {action} is not >= 1", line=no)
        if start < first_frame or end < start:
            raise DataFormatError(path, f"bad frame range {start}..{end}", line=no)
        intervals.append(
            ActionInterval(action - 1, start - first_frame, end - first_frame, confidence, no)
        )
    if not intervals:
        raise DataFormatError(path, "no label rows")
    return intervals


def read_split_file(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """(training videos, validation videos) of an official PKU-MMD split file.

    The file has a ``Training videos:`` line, a comma-separated list, then
    ``Validataion videos:`` (sic; ``Validation`` is accepted too) and a list.
    """
    lists: dict[str, list[str]] = {}
    current = None
    for no, line in enumerate(read_text_lines(path), start=1):
        text = line.strip()
        head = text.lower()
        if head.startswith("training videos"):
            current, text = "train", text.split(":", 1)[-1]
        elif head.startswith(("validataion videos", "validation videos")):
            current, text = "val", text.split(":", 1)[-1]
        elif current is None and text:
            raise DataFormatError(path, "expected a 'Training videos:' line", line=no)
        if current is not None:
            lists.setdefault(current, []).extend(v.strip() for v in text.split(",") if v.strip())
    if "train" not in lists:
        raise DataFormatError(path, "no 'Training videos:' line")
    return lists["train"], lists.get("val", [])


def view_camera(path: Path) -> int:
    """Camera 1/2/3 from the view letter L/M/R at the end of ``<video>-L.txt``."""
    stem = path.stem
    if len(stem) < 2 or stem[-2] != "-" or stem[-1].upper() not in VIEWS:
        raise DataFormatError(
            path, "cannot tell the view from the file name (expected <video>-L.txt, -M or -R)"
        )
    return VIEWS[stem[-1].upper()]


def _named_subdir(root: Path, word: str) -> Path | None:
    subdirs = [p for p in root.iterdir() if p.is_dir() and word in p.name.lower()]
    return subdirs[0] if len(subdirs) == 1 else None


def locate(source: Path, labels: Path | None) -> tuple[list[Path], Path | None]:
    """(skeleton files, label folder or file) from the accepted source layouts."""
    if source.is_file():
        return [source], labels
    skeleton_dir = source
    if not any(source.glob("*.txt")):
        skeleton_dir = _named_subdir(source, "skeleton") or source
    if labels is None:
        labels = _named_subdir(source, "label")
    files = sorted(skeleton_dir.glob("*.txt"))
    if not files:
        raise DataFormatError(
            source,
            "no skeleton .txt files (expected skeleton/ and label/ "
            "folders, or a folder of skeleton files)",
        )
    return files, labels


def convert(
    source: Path,
    out: Path,
    opts: ConvertOptions = DEFAULT_OPTIONS,
    *,
    whole_file: bool = False,
    first_frame: int = 0,
) -> Path:
    """PKU-MMD skeletons (+ labels) → dataset with xview (and xsub from ``split_file``)."""
    opts.refuse("pku", "missing")
    labels, split_file = opts.labels, opts.split_file
    if whole_file and labels is not None:
        raise ConfigError("labels and whole_file=True exclude each other")
    if first_frame not in (0, 1):
        raise ConfigError(f"first_frame must be 0 or 1, got {first_frame}")
    source, out = Path(source), Path(out)
    require_exists(source)
    if labels is not None:
        require_exists(Path(labels), "labels")
    files, label_src = locate(source, None if labels is None else Path(labels))
    if not whole_file and label_src is None:
        raise DataFormatError(
            source,
            "no label files found (give the label folder or file, "
            "or convert whole files with --whole-file / whole_file=True)",
        )
    train_videos = read_split_file(split_file)[0] if split_file is not None else None
    if not whole_file and label_src is not None and label_src.is_file() and len(files) > 1:
        raise DataFormatError(label_src, "one label file given for several skeleton files")
    jobs: list[tuple[Path, Path | None]] = []
    for skel in files:
        if whole_file:
            jobs.append((skel, None))
        elif label_src is not None and label_src.is_file():
            jobs.append((skel, label_src))
        else:
            label_path = label_src / skel.name  # type: ignore[operator]
            if label_path.is_file():
                jobs.append((skel, label_path))
            else:
                log.info("%s: no label file, skipped", skel)
    if not jobs:
        raise DataFormatError(label_src or source, "no skeleton file has a label file")
    with DatasetWriter(
        out,
        layout="ntu25",
        source="pku",
        bodies=BODIES,
        overwrite=opts.overwrite,
        skip_bad=opts.skip_bad,
    ) as writer:
        for skel, label_path in progress_bar(jobs, progress=opts.progress, desc="pku"):
            with writer.guard(skel.name):
                _add_video(writer, skel, label_path, first_frame)
        if train_videos is not None:
            writer.set_splits(lambda meta: pku_splits(meta, train_videos))
        else:
            writer.set_splits(pku_splits)
    return out


def _add_video(
    writer: DatasetWriter, skel: Path, label_path: Path | None, first_frame: int
) -> None:
    camera = view_camera(skel)
    rows = read_skeleton(skel)
    video = skel.stem
    if label_path is None:
        writer.add(to_sample(rows), SampleMeta(name=video, label=0, camera=camera))
        return
    for k, interval in enumerate(read_labels(label_path, first_frame)):
        if interval.start >= len(rows):
            raise DataFormatError(
                label_path,
                f"start frame {interval.start + first_frame} is "
                f"beyond the {len(rows)} frames of {skel.name}",
                line=interval.line,
            )
        end = interval.end
        if end >= len(rows):
            log.warning(
                "%s:%d: end frame beyond the %d frames of %s; cut at the last frame",
                label_path,
                interval.line,
                len(rows),
                skel.name,
            )
            end = len(rows) - 1
        writer.add(
            to_sample(rows[interval.start : end + 1]),
            SampleMeta(name=f"{video}_{k}", label=interval.label, camera=camera),
        )
