"""SSL-lineage arrays (ST-GCN / CrosSCLR / AimCLR / PSTL) → canonical datasets.

A benchmark folder (``xsub/``, ``xview/``, ...) holds ``train_data.npy`` (or
``train_position.npy``, ``train_data_joint.npy``) float (N, 3, T, 25, M) and
``train_label.pkl`` = pickle of (sample_names, labels), and the same for ``val``. Each
benchmark folder becomes one dataset whose split, named after the folder, is train = the
train file's samples and test = the val file's. The arrays are memory-mapped and streamed
sample by sample; the label pickles go through the restricted unpickler.

>>> convert(Path("NTU60_frame50/xsub"), Path("data/ntu60-xsub"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asma_bench.data.files import load_npy
from asma_bench.data.readers._common import (
    DEFAULT_OPTIONS,
    ConvertOptions,
    ntu_name_fields,
    progress_bar,
    require_exists,
    staging_dir,
    valid_length,
    write_train_test,
)
from asma_bench.data.readers.safe_pickle import load_pickle
from asma_bench.data.store import DatasetWriter, SampleMeta
from asma_bench.errors import DataFormatError

log = logging.getLogger(__name__)

DATA_STEMS = ("data", "position", "data_joint")  # in order of preference
PARTS = {"train": ("train",), "test": ("val", "test")}


def find_part(folder: Path, part: str) -> tuple[Path, Path] | None:
    """(data .npy, label .pkl) of ``part`` ('train' or 'test') in a benchmark folder."""
    for prefix in PARTS[part]:
        for stem in DATA_STEMS:
            data = folder / f"{prefix}_{stem}.npy"
            if data.is_file():
                return data, folder / f"{prefix}_label.pkl"
    return None


def is_benchmark_folder(folder: Path) -> bool:
    return folder.is_dir() and find_part(folder, "train") is not None


def benchmark_folders(source: Path) -> list[Path]:
    """``source`` itself when it is a benchmark folder, else its benchmark subfolders."""
    if source.is_file():
        source = source.parent
    if is_benchmark_folder(source):
        return [source]
    return sorted(p for p in source.iterdir() if is_benchmark_folder(p)) if source.is_dir() else []


def read_labels(path: Path, count: int, data_path: Path) -> tuple[list[str], list[int]]:
    """(names, labels) from a label pickle, checked against the array's sample count."""
    if not path.is_file():
        raise DataFormatError(path, f"label file for {data_path.name} not found")
    obj = load_pickle(path)
    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise DataFormatError(path, "expected a pickle of (sample_names, labels)")
    names, labels = obj
    try:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        labels_arr = np.asarray(labels)
    except (TypeError, UnicodeDecodeError, ValueError):
        raise DataFormatError(path, "expected a pickle of (sample_names, labels)") from None
    integral = np.issubdtype(labels_arr.dtype, np.integer) or (
        np.issubdtype(labels_arr.dtype, np.floating) and np.all(labels_arr == np.round(labels_arr))
    )  # some scripts store labels as floats
    if labels_arr.ndim != 1 or not integral:
        raise DataFormatError(path, "labels must be a list of integers")
    if len(labels_arr) != count:
        raise DataFormatError(
            path, f"{len(labels_arr)} labels for the {count} samples of {data_path.name}"
        )
    if len(names) != count:
        raise DataFormatError(
            path, f"{len(names)} sample names for the {count} samples of {data_path.name}"
        )
    if len(labels_arr) and labels_arr.min() < 0:
        raise DataFormatError(path, f"negative label {int(labels_arr.min())}")
    return names, labels_arr.astype(np.int64).tolist()


def open_array(path: Path) -> np.ndarray:
    """Memory-map a (N, 3, T, 25, M) array without loading it (its header checked against
    the file's size first)."""
    arr = load_npy(path, mmap=True)
    if arr.ndim != 5 or arr.shape[1] != 3 or arr.shape[3] != 25:
        raise DataFormatError(path, f"array shape {arr.shape} is not (N, 3, T, 25, M)")
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataFormatError(path, f"array dtype {arr.dtype} is not floating point")
    return arr


def _meta(name: str, label: int) -> SampleMeta:
    if name.endswith(".skeleton"):
        name = name[: -len(".skeleton")]
    fields = ntu_name_fields(name) or {}
    fields.pop("label", None)  # the pickle's label is the truth
    return SampleMeta(name=name, label=label, **fields)


def write_benchmark(
    folder: Path,
    out: Path,
    *,
    overwrite: bool = False,
    progress: bool = False,
    skip_bad: bool = False,
) -> Path:
    """One benchmark folder → one canonical dataset at ``out``.

    With ``skip_bad`` a sample with NaN/inf values or no non-zero frame is listed in the
    dataset's ``skipped.csv`` instead of stopping the conversion.
    """
    parts = {part: find_part(folder, part) for part in PARTS}
    for part, found in parts.items():
        if found is None:
            names = ", ".join(f"{p}_{s}.npy" for p in PARTS[part] for s in DATA_STEMS)
            raise DataFormatError(folder, f"no {part} array (looked for {names})")
    opened: dict[str, tuple[Path, np.ndarray, list[str], list[int]]] = {}
    for part, (data_path, label_path) in parts.items():  # type: ignore[misc]
        arr = open_array(data_path)
        names, labels = read_labels(label_path, arr.shape[0], data_path)
        opened[part] = (data_path, arr, names, labels)
    bodies = opened["train"][1].shape[4]
    if opened["test"][1].shape[4] != bodies:
        raise DataFormatError(
            opened["test"][0], f"has {opened['test'][1].shape[4]} bodies, the train array {bodies}"
        )
    split = folder.name

    def write_part(writer: DatasetWriter, part: str) -> None:
        data_path, arr, names, labels = opened[part]
        _stream(writer, data_path, arr, names, labels, progress, f"{split}/{part}")

    return write_train_test(
        out, split, write_part, source=f"ssl-npy:{split}", bodies=bodies,
        overwrite=overwrite, skip_bad=skip_bad,
    )  # fmt: skip


def _stream(
    writer: DatasetWriter,
    path: Path,
    arr: np.ndarray,
    names: Sequence[str],
    labels: Sequence[int],
    progress: bool,
    desc: str,
) -> None:
    for i in progress_bar(range(arr.shape[0]), progress=progress, desc=desc, unit="sample"):
        with writer.guard(names[i]):
            x = np.asarray(arr[i], dtype=np.float32)
            if not np.isfinite(x).all():
                raise DataFormatError(path, f"sample {i} ({names[i]}) contains NaN or inf")
            length = valid_length(x)
            if length == 0:
                raise DataFormatError(path, f"sample {i} ({names[i]}) is all zeros")
            writer.add(x[:, :length], _meta(names[i], labels[i]))


def convert(
    source: Path,
    out: Path,
    opts: ConvertOptions = DEFAULT_OPTIONS,
) -> Path:
    """A benchmark folder → dataset at ``out``; a folder of several → ``out/<benchmark>/``.

    Several benchmarks are written as one atomic result: all of them or nothing.
    """
    opts.refuse("ssl-npy", "labels", "missing", "split_file")
    source, out = Path(source), Path(out)
    require_exists(source)
    folders = benchmark_folders(source)
    if not folders:
        raise DataFormatError(
            source, "no train_data.npy / train_position.npy here or in a subfolder"
        )
    if len(folders) == 1 and (source if source.is_dir() else source.parent) == folders[0]:
        return write_benchmark(
            folders[0],
            out,
            overwrite=opts.overwrite,
            progress=opts.progress,
            skip_bad=opts.skip_bad,
        )
    with staging_dir(out, opts.overwrite) as tmp:
        for folder in folders:
            write_benchmark(
                folder, tmp / folder.name, progress=opts.progress, skip_bad=opts.skip_bad
            )
    log.info("wrote %s", ", ".join(str(out / f.name) for f in folders))
    return out
