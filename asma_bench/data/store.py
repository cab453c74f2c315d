"""The canonical on-disk dataset every reader writes and every protocol reads.

A dataset is a folder::

    data.npy    float32 (N, C, T, V, M), zero-padded after each sample's valid length;
                opened memory-mapped, so NTU-120 (tens of GB) never has to fit in memory
    meta.csv    one row per sample: name, label, subject, camera, setup, replication,
                length (valid frames), bodies
    info.json   format version, layout, class names, source, splits (train/test indices)

No pickle anywhere. Writing goes through :class:`DatasetWriter`, which streams samples to a
temporary folder beside the destination and renames it into place only when everything
is written, so a failure never leaves a half-written dataset behind.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asma_bench.data.files import load_npy, read_text
from asma_bench.data.layouts import SkeletonLayout, get_layout, layout_ref
from asma_bench.errors import ConfigError, DataFormatError
from asma_bench.fileio import backup_name, remove_path, temp_dir_beside

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DATA_FILE, META_FILE, INFO_FILE = "data.npy", "meta.csv", "info.json"
SKIPPED_FILE = "skipped.csv"
FINGERPRINT_FILE = ".fingerprint.json"  # the content hash's cache (see data/fingerprint.py)
#: every file a dataset folder this package writes may hold: ``--overwrite`` replaces such
#: a folder, and nothing else
DATASET_FILES = frozenset({DATA_FILE, META_FILE, INFO_FILE, SKIPPED_FILE, FINGERPRINT_FILE})


@dataclass
class SampleMeta:
    """Per-sample metadata; unknown integer fields are -1."""

    name: str
    label: int
    subject: int = -1
    camera: int = -1
    setup: int = -1
    replication: int = -1
    length: int = 0
    bodies: int = 0


META_COLUMNS = [f.name for f in fields(SampleMeta)]
SplitFn = Callable[[pd.DataFrame], Mapping[str, Mapping[str, Sequence[int]]]]


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reserve(path: Path, dest: Path) -> None:
    """Allocate every block of the (sparse) memory-mapped file ``path`` now.

    A memory-mapped write into a sparse file on a full disk does not fail with an error:
    the process dies of SIGBUS, with no message and no cleanup. Reserving the blocks first
    turns a full disk into an ordinary ENOSPC here, which the writer reports in one line
    after removing its temporary folder."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows: no reservation available
        return
    size = path.stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # file systems without it
            return
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DataFormatError(
            dest, f"no space left on the device for the dataset ({size / 2**30:.2f} GiB needed)"
        ) from None
    finally:
        os.close(fd)


def is_dataset_folder(path: Path) -> bool:
    """Whether ``path`` is a canonical dataset folder as this package writes it: an
    ``info.json`` with a format version, and no file a dataset does not have."""
    try:
        stale = f".{FINGERPRINT_FILE}."  # the cache's temporary file, left by a kill
        names = {e.name for e in path.iterdir() if not e.name.startswith(stale)}
        if INFO_FILE not in names or not names <= DATASET_FILES:
            return False
        if (path / INFO_FILE).stat().st_size > 1 << 30:
            return False
        info = json.loads((path / INFO_FILE).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "format_version" in info


def check_output(dest: Path, overwrite: bool) -> None:
    """Refuse to write a dataset at ``dest`` unless nothing is lost by it.

    A missing ``dest`` or an empty folder is written. With ``overwrite``, ``dest`` may also
    be a dataset folder this package wrote (:func:`is_dataset_folder`), or a folder of such
    datasets (``ssl-npy``'s one per benchmark); anything else (a runs folder, a user's
    folder, a file, a link) is refused in one line, untouched: ``--overwrite`` replaces a
    dataset, never what happens to sit where the user pointed it.
    """
    if not dest.exists() and not dest.is_symlink():
        return
    if dest.is_dir() and not dest.is_symlink() and not any(dest.iterdir()):
        return
    if not overwrite:
        raise DataFormatError(dest, "output already exists (use --overwrite to replace it)")
    why = _not_a_dataset(dest)
    if why:
        raise DataFormatError(
            dest,
            f"--overwrite replaces only a dataset folder asma-bench wrote, and this {why}; "
            "choose another output folder (or remove it yourself)",
        )


def _not_a_dataset(dest: Path) -> str | None:
    """Why ``dest`` is not a dataset folder (or a folder of them) ``--overwrite`` may
    replace; None when it is one."""
    if dest.is_symlink():
        return "is a symbolic link"
    if not dest.is_dir():
        return "is a file"
    if is_dataset_folder(dest):
        return None
    entries = sorted(dest.iterdir())
    subsets = [e for e in entries if e.is_dir() and is_dataset_folder(e)]
    if len(subsets) == len(entries):  # a folder of datasets, one per benchmark
        return None
    foreign = [e.name for e in entries if e not in subsets and e.name not in DATASET_FILES]
    if not foreign:  # dataset files, but no info.json a dataset has
        return f"holds no valid {INFO_FILE}"
    more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
    return f"holds {foreign[0]!r}{more}, which no dataset has"


def atomic_replace_dir(tmp: Path, dest: Path, overwrite: bool) -> None:
    """Move a fully written folder ``tmp`` to ``dest``; the old ``dest`` survives any failure.

    ``dest`` is checked again (:func:`check_output`) right before it is replaced: what
    appeared there while the dataset was written is not lost either."""
    if dest.exists() or dest.is_symlink():
        check_output(dest, overwrite)
        backup = backup_name(dest)
        os.rename(dest, backup)
        try:
            os.rename(tmp, dest)
        except BaseException:
            os.rename(backup, dest)
            raise
        remove_path(backup)  # the old dataset (or empty folder)
    else:
        os.rename(tmp, dest)
    _fsync_dir(dest.parent)


class DatasetWriter:
    """Stream samples (C, T, V, M) into a canonical dataset folder, atomically.

    >>> with DatasetWriter(out, layout="ntu25", source="synthetic") as w:  # doctest: +SKIP
    ...     w.add(x, SampleMeta(name="a", label=0))
    ...     w.set_splits({"xsub": {"train": [0], "test": []}})

    Samples go to a flat temporary file as they arrive (bounded memory); ``close`` pads them
    into the (N, C, T_max, V, M) array. On an exception nothing appears at ``out``.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        layout: str | SkeletonLayout,
        source: str,
        class_names: Sequence[str] | None = None,
        channels: int = 3,
        bodies: int = 2,
        overwrite: bool = False,
        extra_info: Mapping[str, Any] | None = None,
        skip_bad: bool = False,
    ):
        self.out = Path(out)
        self.layout = get_layout(layout)
        self.source = source
        self.class_names = list(class_names) if class_names is not None else None
        self.channels, self.bodies = channels, bodies
        if not self.layout.dims <= channels <= self.layout.dims + 1:
            raise DataFormatError(
                self.out,
                f"{channels} channels for the {self.layout.dims}-D layout {self.layout.name!r}: "
                f"expected {self.layout.dims} coordinates, optionally plus a confidence channel",
            )
        self.overwrite = overwrite
        self.extra_info = dict(extra_info or {})
        check_output(self.out, overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_dir_beside(self.out)
        self._raw = open(self._tmp / "samples.raw", "wb")
        self._lengths: list[int] = []
        self._meta: list[SampleMeta] = []
        self._splits: dict[str, dict[str, list[int]]] | SplitFn | None = None
        self._closed = False
        self.skip_bad = skip_bad
        self.skipped: list[tuple[str, str]] = []

    @contextmanager
    def guard(self, name: str) -> Iterator[None]:
        """Read and add one source sample; with ``skip_bad``, a bad one is listed and skipped.

        Skipped samples are written to ``skipped.csv`` in the dataset (name, reason) and
        counted in ``info.json``, so nothing is dropped silently.
        """
        try:
            yield
        except DataFormatError as exc:
            if not self.skip_bad:
                raise
            self.skipped.append((name, str(exc)))
            log.warning("skipped %s", exc)

    def __len__(self) -> int:
        return len(self._meta)

    def add(self, x: np.ndarray, meta: SampleMeta) -> None:
        """Append one sample of shape (C, T, V, M) (real numbers, finite) and its label
        (an integer in [0, MAX_CLASSES), below the number of class names when given)."""
        _check_label(meta.label, meta.name, self.class_names)
        raw = np.asarray(x)
        if raw.dtype.kind not in "fiub":  # complex, strings, objects: not coordinates
            raise DataFormatError(meta.name, f"sample values are {raw.dtype}, not real numbers")
        x = raw.astype(np.float32, copy=False)
        expect = (self.channels, self.layout.num_joints, self.bodies)
        if x.ndim != 4 or (x.shape[0], x.shape[2], x.shape[3]) != expect:
            raise DataFormatError(
                meta.name,
                f"sample shape {x.shape} does not match (C, T, V, M) = "
                f"({expect[0]}, T, {expect[1]}, {expect[2]})",
            )
        if x.shape[1] == 0:
            raise DataFormatError(meta.name, "sample has no frames")
        if not np.isfinite(x).all():
            raise DataFormatError(meta.name, "sample contains NaN or inf values")
        if not x.any():  # nothing tracked: no run could train or be tested on it
            raise DataFormatError(meta.name, "sample is all zeros (no joint was ever tracked)")
        self._raw.write(np.ascontiguousarray(x.transpose(1, 0, 2, 3)).tobytes())
        self._lengths.append(x.shape[1])
        meta.length = meta.length or int(x.shape[1])
        if not meta.bodies:
            meta.bodies = int((np.abs(x).sum(axis=(0, 1, 2)) > 0).sum())
        self._meta.append(meta)

    def set_splits(self, splits: Mapping[str, Mapping[str, Sequence[int]]] | SplitFn) -> None:
        """Split indices ``{name: {"train": [...], "test": [...]}}`` or a rule on meta."""
        self._splits = (
            splits
            if callable(splits)
            else {
                k: {p: [int(i) for i in v] for p, v in parts.items()} for k, parts in splits.items()
            }
        )

    def close(self) -> Path:
        """Pad, write data/meta/info, fsync and move the folder into place."""
        if self._closed:
            return self.out
        self._closed = True
        try:
            return self._finish()
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        self._closed = True
        if not self._raw.closed:
            self._raw.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _finish(self) -> Path:
        self._raw.close()
        if not self._meta:
            reason = f" ({len(self.skipped)} bad samples skipped)" if self.skipped else ""
            raise DataFormatError(self.out, f"no samples to write{reason}")
        n, c, v, m = len(self._meta), self.channels, self.layout.num_joints, self.bodies
        t_max = max(self._lengths)
        raw = np.memmap(self._tmp / "samples.raw", dtype=np.float32, mode="r")
        data = np.lib.format.open_memmap(
            self._tmp / DATA_FILE, mode="w+", dtype=np.float32, shape=(n, c, t_max, v, m)
        )
        _reserve(self._tmp / DATA_FILE, self.out)
        offset = 0
        for i, t in enumerate(self._lengths):
            size = t * c * v * m
            data[i, :, :t] = raw[offset : offset + size].reshape(t, c, v, m).transpose(1, 0, 2, 3)
            offset += size
        data.flush()
        del data, raw
        os.remove(self._tmp / "samples.raw")
        meta = pd.DataFrame([asdict(s) for s in self._meta], columns=META_COLUMNS)
        meta.to_csv(self._tmp / META_FILE, index=False)
        splits = self._splits(meta) if callable(self._splits) else (self._splits or {})
        labels = sorted(meta["label"].unique().tolist())
        num_classes = len(self.class_names) if self.class_names else int(max(labels)) + 1
        info = {
            "format_version": FORMAT_VERSION,
            "layout": layout_ref(self.layout),
            "source": self.source,
            "num_samples": n,
            "num_classes": num_classes,
            "class_names": self.class_names,
            "shape": [n, c, t_max, v, m],
            "splits": {
                k: {p: list(map(int, ix)) for p, ix in s.items()} for k, s in splits.items()
            },
            **self.extra_info,
        }
        if self.skipped:
            info["skipped"] = len(self.skipped)
            pd.DataFrame(self.skipped, columns=["name", "reason"]).to_csv(
                self._tmp / SKIPPED_FILE, index=False
            )
        (self._tmp / INFO_FILE).write_text(json.dumps(info, indent=1))
        for name in (DATA_FILE, META_FILE, INFO_FILE):
            _fsync_file(self._tmp / name)
        atomic_replace_dir(self._tmp, self.out, self.overwrite)
        log.info("wrote %d samples to %s", n, self.out)
        return self.out

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


#: No skeleton benchmark has more classes; a label above it is a corrupt field, and taken
#: at face value it would size every per-class array (10^9 labels: a MemoryError).
MAX_CLASSES = 10_000


def _check_label(label: object, where: object, class_names: Sequence[str] | None) -> None:
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise DataFormatError(where, f"label {label!r} is not an integer")
    top = len(class_names) if class_names else MAX_CLASSES
    if not 0 <= int(label) < top:
        what = f"{len(class_names)} class names" if class_names else f"{MAX_CLASSES} classes"
        raise DataFormatError(where, f"label {int(label)} is outside 0..{top - 1} ({what})")


#: info.json holds the split indices: NTU-120's are a few MB.
MAX_INFO_BYTES = 1 << 30


def _read_meta(path: Path) -> pd.DataFrame:
    """meta.csv, UTF-8 (a byte-order mark accepted, another encoding named by its byte),
    as a frame; a file pandas cannot parse is one line naming it."""
    text = read_text(path, MAX_INFO_BYTES)
    try:
        return pd.read_csv(io.StringIO(text), dtype={"name": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise DataFormatError(path, f"not a readable CSV ({reason})") from None


def _first_bad_index(indices: list[Any], n: int) -> object | None:
    """The first entry of ``indices`` that is not an integer in [0, n), or None. Vectorised
    for the usual list of ints (NTU-120 has 10^5); element by element otherwise."""
    try:
        arr = np.asarray(indices)
    except (ValueError, TypeError, OverflowError):
        arr = None
    if arr is not None and arr.ndim == 1 and arr.dtype.kind in "iu":
        out = np.flatnonzero((arr < 0) | (arr >= n))
        return int(arr[out[0]]) if len(out) else None
    for value in indices:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
            return value if type(value) is int else repr(value)
    return None


class SkeletonDataset:
    """A canonical dataset folder opened for reading (the array is memory-mapped)."""

    def __init__(self, root: str | os.PathLike[str], mmap: bool = True, check_meta: bool = True):
        """Open ``root``; ``check_meta=False`` skips the per-row label and length checks
        (for ``data info --check``, which lists every bad row instead of the first)."""
        self.root = Path(root)
        for name in (DATA_FILE, META_FILE, INFO_FILE):
            if not (self.root / name).is_file():
                raise DataFormatError(
                    self.root / name,
                    "missing: not an asma-bench dataset folder "
                    "(create one with `asma-bench data synth` or `data convert`)",
                )
        try:  # UTF-8, a byte-order mark accepted; another encoding is named by its byte
            text = read_text(self.root / INFO_FILE, MAX_INFO_BYTES)
            self.info: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFormatError(
                self.root / INFO_FILE, f"invalid JSON: {exc.msg}", line=exc.lineno
            ) from None
        except (RecursionError, ValueError) as exc:  # nesting or a 10,000-digit number
            kind = "nested too deeply" if isinstance(exc, RecursionError) else "a value too large"
            raise DataFormatError(self.root / INFO_FILE, f"invalid JSON: {kind}") from None
        if not isinstance(self.info, dict):
            raise DataFormatError(self.root / INFO_FILE, "must hold a JSON object")
        if self.info.get("format_version") != FORMAT_VERSION:
            raise DataFormatError(
                self.root / INFO_FILE,
                f"format_version {self.info.get('format_version')!r} is not {FORMAT_VERSION}",
            )
        # the header's claimed size is checked against the file's before numpy allocates it
        self.data = load_npy(self.root / DATA_FILE, mmap=mmap)
        self.meta = _read_meta(self.root / META_FILE)
        if list(self.meta.columns) != META_COLUMNS:
            raise DataFormatError(self.root / META_FILE, f"columns must be {META_COLUMNS}")
        try:
            self.layout = get_layout(self.info.get("layout"))
        except ConfigError as exc:  # a stored definition: the file to look at is info.json
            raise DataFormatError(self.root / INFO_FILE, f"layout: {exc}") from None
        n, c, t, v, m = self.data.shape if self.data.ndim == 5 else (None,) * 5
        if self.data.ndim != 5 or v != self.layout.num_joints or n != len(self.meta):
            raise DataFormatError(
                self.root / DATA_FILE,
                f"array shape {self.data.shape} does not match {len(self.meta)} samples "
                f"of layout {self.layout.name}",
            )
        self._check_splits()
        if check_meta:
            self._check_meta()

    def _check_splits(self) -> None:
        """Every split part a list of sample indices in [0, N): a bad index is named here,
        with its split, not met at training time as an IndexError."""
        path, n = self.root / INFO_FILE, len(self.meta)
        splits = self.info.get("splits", {})
        if not isinstance(splits, dict):
            raise DataFormatError(
                path, "'splits' must map split names to {train: [...], test: [...]}"
            )
        for name, parts in splits.items():
            if not isinstance(parts, dict):
                raise DataFormatError(path, f"split {name!r} must map parts (train, test) to lists")
            for part, indices in parts.items():
                if not isinstance(indices, list):
                    raise DataFormatError(
                        path, f"split {name!r} part {part!r} is not a list of sample indices"
                    )
                bad = _first_bad_index(indices, n)
                if bad is not None:
                    raise DataFormatError(
                        path, f"split {name!r} part {part!r}: index {str(bad)[:40]} is not a "
                        f"sample index (an integer in 0..{n - 1}, {n} samples)"
                    )  # fmt: skip

    def _check_meta(self) -> None:
        """Integer labels in [0, num_classes) and lengths in [1, T]: a bad row is named by its
        line in meta.csv, not found at training time as an IndexError."""
        classes = self.info.get("num_classes")
        if (
            isinstance(classes, bool)
            or not isinstance(classes, int)
            or not 0 < classes <= MAX_CLASSES
        ):
            raise DataFormatError(
                self.root / INFO_FILE,
                f"num_classes {classes!r} is not an integer in 1..{MAX_CLASSES}",
            )
        t = self.data.shape[2]
        for column, low, high in (("label", 0, classes - 1), ("length", 1, t)):
            values = pd.to_numeric(self.meta[column], errors="coerce")
            bad = values.isna() | (values != values.round()) | (values < low) | (values > high)
            if bool(bad.any()):
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataFormatError(
                    self.root / META_FILE,
                    f"line {row + 2}: {column} {str(self.meta[column].iloc[row])[:40]!r} is not "
                    f"an integer in {low}..{high}",
                )
            self.meta[column] = values.astype(np.int64)

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def num_classes(self) -> int:
        return int(self.info["num_classes"])

    @property
    def labels(self) -> np.ndarray:
        """Labels (N,); a non-numeric one (only unchecked metadata has them) reads as −1."""
        values = pd.to_numeric(self.meta["label"], errors="coerce").fillna(-1)
        return values.to_numpy().astype(np.int64)

    @property
    def lengths(self) -> np.ndarray:
        return self.meta["length"].to_numpy(dtype=np.int64)

    @property
    def split_names(self) -> list[str]:
        return sorted(self.info.get("splits", {}))

    def split(self, name: str, part: str) -> np.ndarray:
        """Indices of ``part`` ('train' or 'test') of the named split (e.g. 'xsub')."""
        splits = self.info.get("splits", {})
        if name not in splits:
            raise DataFormatError(
                self.root / INFO_FILE,
                f"no split {name!r}; available: {', '.join(sorted(splits)) or '(none)'}",
            )
        if part not in splits[name]:
            raise DataFormatError(self.root / INFO_FILE, f"split {name!r} has no part {part!r}")
        return np.asarray(splits[name][part], dtype=np.int64)

    def sample(self, i: int) -> np.ndarray:
        """Sample ``i`` cut to its valid length, as float32 (C, T_i, V, M)."""
        return np.asarray(self.data[i, :, : int(self.meta["length"].iat[i])], dtype=np.float32)
