"""CTR-GCN ``NTU60_CS.npz`` / ``NTU60_CV.npz`` / ``NTU120_CSub.npz`` / ``NTU120_CSet.npz``.

Each holds ``x_train`` / ``x_test`` float (N, T, 150) — per frame body 1 then body 2, each
25 joints × (x, y, z) — and one-hot ``y_train`` / ``y_test``. The benchmark (split name)
comes from the file name. Pickled members are refused (``allow_pickle=False``) and the
large ``x_*`` members are streamed row by row from the zip, never loaded whole.

>>> convert(Path("NTU60_CS.npz"), Path("data/ntu60-xsub"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from asma_bench.data.files import check_npz, read_npy_header
from asma_bench.data.readers._common import (
    DEFAULT_OPTIONS,
    ConvertOptions,
    one_line,
    progress_bar,
    require_exists,
    valid_length,
    write_train_test,
)
from asma_bench.data.store import DatasetWriter, SampleMeta
from asma_bench.errors import DataFormatError

log = logging.getLogger(__name__)

SPLIT_NAMES = {"cs": "xsub", "csub": "xsub", "cv": "xview", "cset": "xset"}
KEYS = ("x_train", "y_train", "x_test", "y_test")
NUM_JOINTS = 25


def split_name(path: Path) -> str:
    """``NTU60_CS`` → xsub, ``CV`` → xview, ``CSub`` → xsub, ``CSet`` → xset.

    Unrecognised names fall back to the lower-cased part after the last underscore.
    """
    suffix = path.stem.rsplit("_", 1)[-1].lower()
    if suffix not in SPLIT_NAMES:
        log.warning(
            "%s: cannot tell the benchmark from the file name; calling the split %r", path, suffix
        )
    return SPLIT_NAMES.get(suffix, suffix)


def one_hot_labels(path: Path, key: str, y: np.ndarray, count: int) -> np.ndarray:
    """Class indices from one-hot rows (integer vectors are accepted as they are)."""
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        labels = y.astype(np.int64)
        if len(labels) and labels.min() < 0:
            raise DataFormatError(path, f"{key} has a negative label")
    elif y.ndim == 2:
        ones = y == 1
        good = (ones.sum(axis=1) == 1) & ((y == 0) | ones).all(axis=1)
        if not good.all():
            raise DataFormatError(path, f"{key} row {int(np.flatnonzero(~good)[0])} is not one-hot")
        labels = ones.argmax(axis=1).astype(np.int64)
    else:
        raise DataFormatError(path, f"{key} has shape {y.shape}; expected one-hot (N, classes)")
    if len(labels) != count:
        raise DataFormatError(path, f"{key} has {len(labels)} labels for {count} samples")
    return labels


@contextmanager
def open_member(path: Path, key: str) -> Iterator[tuple[tuple[int, ...], Iterator[np.ndarray]]]:
    """Shape of member ``key`` and an iterator over its rows, streamed from the zip.

    Object arrays (which would need pickle) are refused; Fortran-ordered members fall back
    to ``np.load(allow_pickle=False)``. Every member's header was checked against its size
    in the zip directory (:func:`~asma_bench.data.files.check_npz`) before.
    """
    with ExitStack() as stack:
        try:
            zf = stack.enter_context(zipfile.ZipFile(path))
            fh = stack.enter_context(zf.open(f"{key}.npy"))
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
            raise DataFormatError(path, f"cannot read {key} ({one_line(exc)})") from None
        header = read_npy_header(fh, path, key)  # object dtypes refused, sizes checked before
        shape, fortran, dtype = header.shape, header.fortran, header.dtype
        if fortran:
            with np.load(path, allow_pickle=False) as npz:
                arr = npz[key]
            yield arr.shape, iter(arr)
            return
        row_shape = shape[1:]
        row_bytes = int(np.prod(row_shape, dtype=np.int64)) * dtype.itemsize

        def rows() -> Iterator[np.ndarray]:
            for i in range(shape[0]):
                buf = fh.read(row_bytes)
                if len(buf) != row_bytes:
                    raise DataFormatError(path, f"{key} ends early at row {i} (truncated?)")
                yield np.frombuffer(buf, dtype=dtype).reshape(row_shape)

        yield shape, rows()


def convert(
    source: Path,
    out: Path,
    opts: ConvertOptions = DEFAULT_OPTIONS,
) -> Path:
    """One CTR-GCN ``.npz`` → dataset with one split (train = x_train, test = x_test).

    With ``skip_bad`` a sample with NaN/inf values or no non-zero frame is listed in the
    dataset's ``skipped.csv`` instead of stopping the conversion.
    """
    opts.refuse("ctrgcn-npz", "labels", "missing", "split_file")
    source, out = Path(source), Path(out)
    require_exists(source)
    if source.is_dir():
        found = sorted(source.glob("*.npz"))
        if len(found) != 1:
            raise DataFormatError(source, f"expected one .npz file here, found {len(found)}")
        source = found[0]
    check_npz(source)  # a header claiming 559 GiB in a 1 KB member is refused, not allocated
    try:
        with np.load(source, allow_pickle=False) as npz:
            members = list(npz.files)
            ys = {k: npz[k] for k in ("y_train", "y_test") if k in members}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFormatError(source, f"not a readable .npz ({one_line(exc)})") from None
    absent = [k for k in KEYS if k not in members]
    if absent:
        raise DataFormatError(
            source, f"missing {', '.join(absent)} (has {', '.join(members) or 'nothing'})"
        )
    split = split_name(source)

    def write_part(writer: DatasetWriter, part: str) -> None:
        with open_member(source, f"x_{part}") as (shape, rows):
            if len(shape) != 3 or shape[2] != 2 * NUM_JOINTS * 3:
                raise DataFormatError(source, f"x_{part} has shape {shape}; expected (N, T, 150)")
            y = one_hot_labels(source, f"y_{part}", ys[f"y_{part}"], shape[0])
            for i, row in enumerate(
                progress_bar(
                    rows,
                    progress=opts.progress,
                    total=shape[0],
                    desc=f"{split}/{part}",
                    unit="sample",
                )
            ):
                with writer.guard(f"{part}_{i:06d}"):
                    writer.add(*_sample(source, part, i, row, int(y[i])))

    return write_train_test(
        out, split, write_part, source=f"ctrgcn-npz:{source.name}", bodies=2,
        overwrite=opts.overwrite, skip_bad=opts.skip_bad,
    )  # fmt: skip


def _sample(
    path: Path, part: str, i: int, row: np.ndarray, label: int
) -> tuple[np.ndarray, SampleMeta]:
    # (T, 150) = (T, body, joint, xyz) → (xyz, T, joint, body)
    x = np.asarray(row, dtype=np.float32).reshape(-1, 2, NUM_JOINTS, 3).transpose(3, 0, 2, 1)
    if not np.isfinite(x).all():
        raise DataFormatError(path, f"x_{part} sample {i} contains NaN or inf")
    length = valid_length(x)
    if length == 0:
        raise DataFormatError(path, f"x_{part} sample {i} is all zeros")
    return x[:, :length], SampleMeta(name=f"{part}_{i:06d}", label=label)
