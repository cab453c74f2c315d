"""NTU RGB+D 60 / 120 raw ``.skeleton`` text files → the canonical dataset.

A file holds the frame count, then per frame a body count (0 happens), and per body one
line of 10 fields (body ID first), the joint count (25) and 25 lines of 12 fields of which
x y z are kept. Bodies are tracked across frames by body ID and the multi-body denoising of
the SGN / CTR-GCN lineage picks at most two of them (:class:`Denoising`).

>>> convert(Path("nturgb+d_skeletons"), Path("data/ntu60"),
...         missing=Path("NTU_RGBD_samples_with_missing_skeletons.txt"))  # doctest: +SKIP
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
    ntu_name_fields,
    parse_number_rows,
    progress_bar,
    read_name_list,
    read_text_lines,
    require_exists,
)
from asma_bench.data.splits import ntu_splits
from asma_bench.data.store import DatasetWriter, SampleMeta
from asma_bench.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

NUM_JOINTS = 25
INFO_FIELDS = 10
JOINT_FIELDS = 12
SUFFIX = ".skeleton"
ACTIVITY_KINDS = ("joint_temporal", "pooled")


@dataclass(frozen=True)
class BodyTrack:
    """One body ID's joints over the frames it appears in."""

    body_id: int
    frames: np.ndarray  # (n,) increasing frame indices
    joints: np.ndarray  # (n, 25, 3) x y z

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class SkeletonFile:
    """A parsed ``.skeleton`` file: frame count and body tracks in order of first appearance."""

    path: Path
    num_frames: int
    tracks: list[BodyTrack]


@dataclass(frozen=True)
class Denoising:
    """Multi-body selection of the SGN / CTR-GCN lineage (their ``get_raw_denoised_data``).

    1. Bodies present in ≤ ``noise_length`` frames are dropped (if that would drop every
       body, the longest one stays — the lineage code leaves that case undefined).
    2. A frame of a body is noisy when its x-spread exceeds ``spread_ratio`` × its y-spread;
       while more than one body is left, a body noisy in ≥ ``noisy_fraction`` of its frames
       is dropped.
    3. Bodies are ranked by activity over their non-noisy frames. ``activity="joint_temporal"``
       (default) sums each joint's per-coordinate variance over time; ``"pooled"`` is the
       lineage code's measure, the variance of all joints and frames pooled per coordinate.
    4. ``motion_range`` (off by default, as in the lineage's released code) drops every body
       but the most active whose activity lies outside ``[low, high]`` (their 0.089925, 2).
    5. At most ``max_bodies`` slots are filled in rank order. With ``merge_disjoint`` (the
       lineage's choice) a body whose frames do not overlap a slot's span joins that slot, so
       a person re-tracked under a new ID stays in one slot; otherwise one body per slot.
       Unlike the lineage code, spans sharing even one frame count as overlapping.
    """

    noise_length: int = 11
    spread_ratio: float = 0.8
    noisy_fraction: float = 0.69754
    max_bodies: int = 2
    activity: str = "joint_temporal"
    motion_range: tuple[float, float] | None = None
    merge_disjoint: bool = True

    def __post_init__(self) -> None:
        if self.noise_length < 0:
            raise ConfigError(f"noise_length must be >= 0, got {self.noise_length}")
        if not self.spread_ratio > 0:
            raise ConfigError(f"spread_ratio must be > 0, got {self.spread_ratio}")
        if not 0 < self.noisy_fraction <= 1:
            raise ConfigError(f"noisy_fraction must be in (0, 1], got {self.noisy_fraction}")
        if self.max_bodies < 1:
            raise ConfigError(f"max_bodies must be >= 1, got {self.max_bodies}")
        if self.activity not in ACTIVITY_KINDS:
            raise ConfigError(f"activity must be one of {ACTIVITY_KINDS}, got {self.activity!r}")
        mr = self.motion_range
        if mr is not None and (len(mr) != 2 or not 0 <= mr[0] <= mr[1]):
            raise ConfigError(
                f"motion_range must be (low, high) with 0 <= low <= high, got {self.motion_range}"
            )


def read_skeleton(path: str | os.PathLike[str]) -> SkeletonFile:
    """Parse one ``.skeleton`` file; errors name the file and line."""
    path = Path(path)
    lines = read_text_lines(path)
    n = len(lines)
    pos = 0  # index of the next line to read

    def header_int(what: str) -> int:
        nonlocal pos
        if pos >= n:
            raise DataFormatError(
                path, f"unexpected end of file (truncated?) where {what} should be", line=n + 1
            )
        text = lines[pos].strip()
        pos += 1
        try:
            return int(text)
        except ValueError:
            raise DataFormatError(path, f"{what} is {text!r}, not an integer", line=pos) from None

    num_frames = header_int("the frame count")
    if num_frames <= 0:
        raise DataFormatError(path, f"frame count is {num_frames}", line=1)
    block_frames: list[int] = []
    block_ids: list[int] = []
    block_starts: list[int] = []
    for frame in range(num_frames):
        num_bodies = header_int(f"the body count of frame {frame + 1}")
        if num_bodies < 0:
            raise DataFormatError(path, f"body count is {num_bodies}", line=pos)
        for body in range(num_bodies):
            where = f"frame {frame + 1}, body {body + 1}"
            if pos >= n:
                raise DataFormatError(
                    path,
                    f"unexpected end of file (truncated?) where the "
                    f"body info line of {where} should be",
                    line=n + 1,
                )
            info = lines[pos].split()
            pos += 1
            if len(info) != INFO_FIELDS:
                raise DataFormatError(
                    path,
                    f"body info line of {where} has {len(info)} fields, expected {INFO_FIELDS}",
                    line=pos,
                )
            try:
                body_id = int(info[0])  # IDs like 72057594037931101 do not survive float
            except ValueError:
                raise DataFormatError(
                    path, f"body ID {info[0]!r} is not an integer", line=pos
                ) from None
            joints = header_int(f"the joint count of {where}")
            if joints != NUM_JOINTS:
                raise DataFormatError(
                    path, f"joint count is {joints}, expected {NUM_JOINTS}", line=pos
                )
            if pos + NUM_JOINTS > n:
                raise DataFormatError(
                    path,
                    f"unexpected end of file (truncated?): {where} has "
                    f"{n - pos} of {NUM_JOINTS} joint lines",
                    line=n + 1,
                )
            block_frames.append(frame)
            block_ids.append(body_id)
            block_starts.append(pos)
            pos += NUM_JOINTS
    if pos < n:
        raise DataFormatError(
            path, f"unexpected content after the last of {num_frames} frames", line=pos + 1
        )
    return SkeletonFile(
        path, num_frames, _tracks(path, lines, block_frames, block_ids, block_starts)
    )


def _tracks(
    path: Path,
    lines: list[str],
    block_frames: list[int],
    block_ids: list[int],
    block_starts: list[int],
) -> list[BodyTrack]:
    if not block_starts:
        return []
    joint_lines = [line for s in block_starts for line in lines[s : s + NUM_JOINTS]]
    starts = np.asarray(block_starts)
    values = parse_number_rows(
        path,
        joint_lines,
        JOINT_FIELDS,
        line_of=lambda row: int(starts[row // NUM_JOINTS]) + row % NUM_JOINTS + 1,
        finite_cols=3,  # only x y z are kept
    )
    xyz = values[:, :3].reshape(len(block_starts), NUM_JOINTS, 3)
    frames = np.asarray(block_frames)
    by_id: dict[int, list[int]] = {}
    for b, body_id in enumerate(block_ids):
        by_id.setdefault(body_id, []).append(b)
    tracks = []
    for body_id, blocks in by_id.items():
        idx = np.asarray(blocks)
        # a body ID listed twice in one frame: keep its first entry
        keep = np.concatenate([[True], np.diff(frames[idx]) != 0])
        if not keep.all():
            log.debug("%s: body %d repeated within a frame", path, body_id)
        tracks.append(BodyTrack(body_id, frames[idx[keep]], xyz[idx[keep]]))
    return tracks


def spread_valid_frames(joints: np.ndarray, spread_ratio: float = 0.8) -> np.ndarray:
    """Mask of frames whose x-spread is at most ``spread_ratio`` × y-spread (joints (n, V, 3))."""
    spread = joints.max(axis=1) - joints.min(axis=1)
    return spread[:, 0] <= spread_ratio * spread[:, 1]


def body_activity(joints: np.ndarray, kind: str = "joint_temporal") -> float:
    """How much a body moves over frames (joints (n, V, 3)); see :class:`Denoising` step 3."""
    if kind == "joint_temporal":
        return float(joints.var(axis=0).sum())
    if kind == "pooled":
        return float(joints.reshape(-1, 3).var(axis=0).sum())
    raise ConfigError(f"activity must be one of {ACTIVITY_KINDS}, got {kind!r}")


def select_bodies(tracks: list[BodyTrack], denoising: Denoising | None = None) -> list[BodyTrack]:
    """Denoised bodies, most active first (steps 1–4 of :class:`Denoising`)."""
    d = denoising or Denoising()
    if len(tracks) <= 1:
        return list(tracks)
    kept = [t for t in tracks if len(t) > d.noise_length]
    if not kept:
        kept = [max(tracks, key=len)]
    valid = {t.body_id: spread_valid_frames(t.joints, d.spread_ratio) for t in kept}
    for t in list(kept):
        if len(kept) == 1:
            break
        if 1.0 - valid[t.body_id].mean() >= d.noisy_fraction:
            kept.remove(t)
    activity = {}
    for t in kept:
        mask = valid[t.body_id]
        activity[t.body_id] = body_activity(t.joints[mask] if mask.any() else t.joints, d.activity)
    ranked = sorted(kept, key=lambda t: -activity[t.body_id])  # stable: ties keep file order
    if d.motion_range is not None:
        low, high = d.motion_range
        ranked = ranked[:1] + [t for t in ranked[1:] if low <= activity[t.body_id] <= high]
    return ranked


def assemble(
    tracks: list[BodyTrack], num_frames: int, max_bodies: int = 2, merge_disjoint: bool = True
) -> np.ndarray:
    """Place ranked tracks into ``max_bodies`` slots → (3, T, 25, M), zeros where absent."""
    x = np.zeros((3, num_frames, NUM_JOINTS, max_bodies), dtype=np.float32)
    spans: list[tuple[int, int] | None] = [None] * max_bodies
    for t in tracks:
        start, end = int(t.frames[0]), int(t.frames[-1])
        for k, span in enumerate(spans):
            if span is None:
                spans[k] = (start, end)
            elif merge_disjoint and (end < span[0] or start > span[1]):
                spans[k] = (min(start, span[0]), max(end, span[1]))
            else:
                continue
            slot = x[..., k]  # a view; x[:, frames, :, k] would move the frame axis first
            slot[:, t.frames] = t.joints.transpose(2, 0, 1)
            break
    return x


def read_sample(
    path: str | os.PathLike[str], denoising: Denoising | None = None
) -> tuple[np.ndarray, SampleMeta]:
    """One file → ((3, T, 25, max_bodies) float32, metadata from its name)."""
    path = Path(path)
    d = denoising or Denoising()
    name = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem
    fields = ntu_name_fields(name)
    if fields is None:
        raise DataFormatError(path, "file name does not follow SsssCcccPpppRrrrAaaa.skeleton")
    skeleton = read_skeleton(path)
    if not skeleton.tracks:
        raise DataFormatError(
            path, "no body in any frame (list the sample in the missing-samples file to skip it)"
        )
    ranked = select_bodies(skeleton.tracks, d)
    x = assemble(ranked, skeleton.num_frames, d.max_bodies, d.merge_disjoint)
    return x, SampleMeta(name=name, length=skeleton.num_frames, **fields)


def convert(
    source: Path,
    out: Path,
    opts: ConvertOptions = DEFAULT_OPTIONS,
    *,
    denoising: Denoising | None = None,
) -> Path:
    """A folder of ``.skeleton`` files (or one file) → canonical dataset with NTU splits.

    ``missing`` is a text file of sample names (one a line, ``.skeleton`` optional) to skip.
    """
    opts.refuse("ntu-raw", "labels", "split_file")
    source, out = Path(source), Path(out)
    d = denoising or Denoising()
    require_exists(source)
    files = sorted(source.glob(f"*{SUFFIX}")) if source.is_dir() else [source]
    if not files:
        raise DataFormatError(source, f"no {SUFFIX} files")
    missing = opts.missing
    skip = read_name_list(missing, SUFFIX) if missing is not None else set()
    todo = [f for f in files if f.name[: -len(SUFFIX)] not in skip]
    if skip:
        log.info("skipping %d listed samples", len(files) - len(todo))
    if not todo:
        raise DataFormatError(source, "every sample is on the missing-samples list")
    with DatasetWriter(
        out,
        layout="ntu25",
        source="ntu-raw",
        bodies=d.max_bodies,
        overwrite=opts.overwrite,
        skip_bad=opts.skip_bad,
    ) as writer:
        for path in progress_bar(todo, progress=opts.progress, desc="ntu-raw"):
            with writer.guard(path.name):
                x, meta = read_sample(path, d)
                writer.add(x, meta)
        writer.set_splits(ntu_splits)
    return out
