"""Helpers shared by the format readers: text parsing with line numbers, NTU names, progress."""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm.auto import tqdm

from asma_bench.data.files import MAX_TEXT_BYTES as MAX_TEXT_BYTES  # the readers' limit
from asma_bench.data.files import check_regular_file as check_regular_file
from asma_bench.data.files import input_exists, read_text
from asma_bench.data.store import DatasetWriter, atomic_replace_dir, check_output
from asma_bench.errors import ConfigError, DataFormatError
from asma_bench.errors import one_line as one_line  # the readers' shared helper
from asma_bench.fileio import temp_dir_beside

log = logging.getLogger(__name__)

T = TypeVar("T")

NTU_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


def ntu_name_fields(name: str) -> dict[str, int] | None:
    """``SsssCcccPpppRrrrAaaa`` → setup, camera, subject, replication, label (action - 1)."""
    m = NTU_NAME.search(name)
    if m is None:
        return None
    setup, camera, subject, replication, action = (int(g) for g in m.groups())
    return dict(
        setup=setup, camera=camera, subject=subject, replication=replication, label=action - 1
    )


@dataclass(frozen=True)
class ConvertOptions:
    """What every reader is given besides its source and output folder: the file options
    some formats take, and how to write."""

    labels: Path | None = None  # label file or folder (pku; the CSV for generic)
    missing: Path | None = None  # sample names to skip (ntu-raw)
    split_file: Path | None = None  # official split file (pku)
    overwrite: bool = False  # replace an existing output folder
    progress: bool = False  # a progress bar
    skip_bad: bool = False  # list bad samples in skipped.csv instead of stopping

    def refuse(self, fmt: str, *names: str) -> None:
        """ConfigError for each file option in ``names`` that was given although it means
        nothing to ``fmt``."""
        for name in names:
            if getattr(self, name) is not None:
                raise ConfigError(f"{name} does not apply to the {fmt} format")


DEFAULT_OPTIONS = ConvertOptions()


def progress_bar(
    items: Iterable[T], *, progress: bool, desc: str, total: int | None = None, unit: str = "file"
) -> Iterator[T]:
    """``tqdm`` when ``progress`` is true, the plain iterable otherwise."""
    return iter(tqdm(items, desc=desc, total=total, unit=unit, disable=not progress))


def read_text_lines(path: str | os.PathLike[str], limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Lines of a UTF-8 text file (a byte-order mark dropped; CRLF, CR or LF), trailing
    blank lines dropped; empty → error.

    Only regular files are opened (a FIFO named ``.skeleton`` would block forever) and only
    up to ``limit`` bytes. A byte that is not UTF-8 is refused naming its offset
    (:func:`~asma_bench.data.files.decode_text`): latin-1, which never fails, turned a
    class name ``Händeschütteln`` into ``HÃ¤ndeschÃ¼tteln`` without a word."""
    text = read_text(path, limit)
    # universal newlines by hand: "\r\n", "\r" and "\n" files give the same lines, and
    # no other character (str.splitlines would split at \x0c, \x1c, \u2028...) ends one
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataFormatError(path, "empty file")
    return lines


def parse_number_rows(
    path: str | os.PathLike[str],
    lines: list[str],
    ncols: int,
    line_of: Callable[[int], int],
    finite_cols: int | None = None,
) -> np.ndarray:
    """Parse whitespace-separated rows of exactly ``ncols`` numbers into float64 (n, ncols).

    ``line_of(row)`` gives the 1-based file line of ``lines[row]`` for error messages. The
    first ``finite_cols`` columns (all when None) must be finite. numpy's C tokenizer does
    the work; the per-line Python diagnosis runs only when it fails.
    """
    try:
        values = np.loadtxt(lines, dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        values = None
    if values is None or values.shape != (len(lines), ncols):
        _diagnose_rows(path, lines, ncols, line_of)
        raise DataFormatError(path, f"expected rows of {ncols} numbers")  # not reached
    checked = values if finite_cols is None else values[:, :finite_cols]
    bad = ~np.isfinite(checked)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataFormatError(
            path,
            f"field {col + 1} is {lines[row].split()[col]!r}, not a finite number",
            line=line_of(row),
        )
    return values


def _diagnose_rows(
    path: str | os.PathLike[str], lines: list[str], ncols: int, line_of: Callable[[int], int]
) -> None:
    for row, text in enumerate(lines):
        fields = text.split()
        if len(fields) != ncols:
            raise DataFormatError(
                path, f"expected {ncols} numbers, found {len(fields)} fields", line=line_of(row)
            )
        for col, field in enumerate(fields):
            try:
                float(field)
            except ValueError:
                raise DataFormatError(
                    path, f"field {col + 1} is not a number: {field!r}", line=line_of(row)
                ) from None
    for row, text in enumerate(lines):  # numbers Python accepts but numpy's tokenizer does not
        try:
            np.loadtxt([text], dtype=np.float64, comments=None)
        except ValueError:
            raise DataFormatError(
                path, f"not a row of numbers: {text.strip()!r}", line=line_of(row)
            ) from None


def valid_length(x: np.ndarray) -> int:
    """Last frame with any nonzero value, plus one, of a (C, T, V, M) sample (0 if all zero)."""
    nonzero = np.flatnonzero(np.any(x != 0, axis=(0, 2, 3)))
    return int(nonzero[-1]) + 1 if len(nonzero) else 0


def read_name_list(path: str | os.PathLike[str], suffix: str = "") -> set[str]:
    """Names, one a line (blank lines and ``#`` comments ignored; ``suffix`` stripped)."""
    names = set()
    for line in read_text_lines(path):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        if suffix and name.endswith(suffix):
            name = name[: -len(suffix)]
        names.add(name)
    return names


def require_exists(path: Path, what: str = "source") -> Path:
    """``path``, which must exist; a symbolic-link loop (or any path that cannot be
    reached) is said as such rather than as missing."""
    if not input_exists(path):
        raise DataFormatError(path, f"{what} does not exist")
    return path


@contextmanager
def staging_dir(out: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary folder beside ``out`` moved to ``out`` on success, removed on failure.

    For readers that write several datasets (one per benchmark) as one atomic result.
    """
    check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(out)
    try:
        yield tmp
        atomic_replace_dir(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_train_test(
    out: Path,
    split: str,
    write_part: Callable[[DatasetWriter, str], None],
    *,
    source: str,
    bodies: int,
    overwrite: bool,
    skip_bad: bool,
) -> Path:
    """An NTU-25 dataset at ``out`` with one split ``split``: ``write_part(writer, part)``
    adds the ``train`` samples, then the ``test`` ones, and the split's train and test
    are those two runs of samples (the split-file format of the SSL and CTR-GCN arrays)."""
    counts: dict[str, int] = {}
    with DatasetWriter(
        out, layout="ntu25", source=source, bodies=bodies, overwrite=overwrite, skip_bad=skip_bad
    ) as writer:
        for part in ("train", "test"):
            before = len(writer)
            write_part(writer, part)
            counts[part] = len(writer) - before
        n_train = counts["train"]
        writer.set_splits(
            {split: {"train": range(n_train), "test": range(n_train, n_train + counts["test"])}}
        )
    return out
