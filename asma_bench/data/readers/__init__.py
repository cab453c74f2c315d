"""Converters from the formats users have into the canonical dataset, one module per format.

``ntu-raw`` (NTU ``.skeleton`` files), ``ssl-npy`` (SSL-lineage ``*_data.npy`` + label
pickles), ``ctrgcn-npz`` (CTR-GCN ``NTU60_CS.npz`` ...), ``pyskl`` (PYSKL annotation
pickles), ``pku`` (PKU-MMD skeleton + label text files), ``ucla`` (NW-UCLA JSON) and
``generic`` (arrays + a labels CSV, any skeleton layout: :mod:`.generic`). Every
reader streams through :class:`~asma_bench.data.store.DatasetWriter`, so a failure leaves
nothing at the output path.

>>> convert("nturgb+d_skeletons", "data/ntu60", missing="missing.txt")  # doctest: +SKIP
PosixPath('data/ntu60')
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asma_bench.data.files import input_exists, stat_input
from asma_bench.data.readers import ctrgcn_npz, generic, ntu_raw, pku, pyskl, ssl_npy, ucla
from asma_bench.data.readers._common import ConvertOptions
from asma_bench.errors import ConfigError, DataFormatError
from asma_bench.registry import Registry

Reader = Callable[..., Path]

FORMATS: Registry[Reader] = Registry("data format")
FORMATS.register("ntu-raw")(ntu_raw.convert)
FORMATS.register("ssl-npy")(ssl_npy.convert)
FORMATS.register("ctrgcn-npz")(ctrgcn_npz.convert)
FORMATS.register("pyskl")(pyskl.convert)
FORMATS.register("pku")(pku.convert)
FORMATS.register("ucla")(ucla.convert)
FORMATS.register("generic")(generic.convert)

_BY_SUFFIX = {
    ".skeleton": "ntu-raw",
    ".npy": "ssl-npy",
    ".npz": "ctrgcn-npz",
    ".pkl": "pyskl",
    ".pickle": "pyskl",
    ".txt": "pku",
    ".json": "ucla",
}
_POSITIONAL = ("source", "out", "opts")


def _known() -> str:
    return ", ".join(FORMATS.list())


def detect_format(source: str | os.PathLike[str]) -> str:
    """Guess the format of a file or folder from file names and extensions."""
    source = Path(source)
    if not input_exists(source):  # a symbolic-link loop is named as such
        raise DataFormatError(source, "does not exist")
    if source.is_file():
        fmt = _BY_SUFFIX.get(source.suffix.lower())
    else:
        suffixes, subdirs = set(), []
        with os.scandir(source) as entries:
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:  # a symbolic-link loop: the reader names it if it needs it
                    is_dir = False
                if is_dir:
                    subdirs.append(entry.name.lower())
                else:
                    suffixes.add(os.path.splitext(entry.name)[1].lower())
        fmt = None
        if input_exists(source / generic.LABELS_FILE):
            fmt = "generic"
        elif ".skeleton" in suffixes:
            fmt = "ntu-raw"
        elif ssl_npy.benchmark_folders(source):
            fmt = "ssl-npy"
        elif ".json" in suffixes:
            fmt = "ucla"
        elif ".npz" in suffixes:
            fmt = "ctrgcn-npz"
        elif ".txt" in suffixes or any("skeleton" in d for d in subdirs):
            fmt = "pku"
        elif ".pkl" in suffixes or ".pickle" in suffixes:
            fmt = "pyskl"
    if fmt is None:
        raise DataFormatError(
            source,
            f"cannot tell the data format from the file names; "
            f"known formats: {_known()} (pass one explicitly)",
        )
    return fmt


def convert(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fmt: str = "auto",
    *,
    labels: str | os.PathLike[str] | None = None,
    missing: str | os.PathLike[str] | None = None,
    split_file: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    skip_bad: bool = False,
    **options: Any,
) -> Path:
    """Convert ``source`` in format ``fmt`` (``auto`` detects it) into a dataset at ``out``.

    ``labels`` (PKU-MMD label folder/file), ``missing`` (NTU names to skip) and
    ``split_file`` (PKU-MMD official split) apply to their formats only; ``skip_bad`` lists
    bad samples in the dataset's skipped.csv instead of stopping; ``options`` go to
    the reader (``denoising=`` for ntu-raw, ``whole_file=`` / ``first_frame=`` for pku,
    ``layout=`` for generic).
    ``ssl-npy`` given a folder of several benchmarks writes ``out/<benchmark>/`` each.
    Returns ``out``.
    """
    source, out = Path(source), Path(out)
    _refuse_unreachable(source, labels, missing, split_file, options.get("layout"))
    layout = options.get("layout")
    layout_file = layout if isinstance(layout, (str, os.PathLike)) and str(layout).endswith(
        (".yaml", ".yml")) else None  # fmt: skip
    _refuse_overlap(out, {"source": source, "--labels": labels, "--missing": missing,
                          "--split-file": split_file, "--layout": layout_file})  # fmt: skip
    if fmt == "auto":
        fmt = detect_format(source)
    if fmt not in FORMATS:
        raise DataFormatError(source, f"unknown data format {fmt!r}; known formats: {_known()}")
    reader = FORMATS.get(fmt)
    accepted = set(inspect.signature(reader).parameters) - set(_POSITIONAL)
    for name in options:
        if name not in accepted:
            raise ConfigError(
                f"option {name!r} does not apply to the {fmt} format (its options: "
                f"{', '.join(sorted(accepted)) or 'none'})"
            )

    def as_path(p: str | os.PathLike[str] | None) -> Path | None:
        return None if p is None else Path(p)

    opts = ConvertOptions(
        labels=as_path(labels),
        missing=as_path(missing),
        split_file=as_path(split_file),
        overwrite=overwrite,
        progress=progress,
        skip_bad=skip_bad,
    )
    return reader(source, out, opts, **options)


def _refuse_unreachable(*inputs: object) -> None:
    """A DataFormatError naming the first input path that exists but cannot be reached (a
    symbolic-link loop, a folder without permission), before anything resolves it:
    ``Path.resolve`` ends such a path in a RuntimeError, ``Path.exists`` calls it missing.
    Inputs that are absent are left to the reader, which says so in its own words."""
    for path in inputs:
        if isinstance(path, str | os.PathLike):
            stat_input(path)


def _refuse_overlap(out: Path, inputs: dict[str, str | os.PathLike[str] | None]) -> None:
    """Refuse an output folder that is, or contains, one of the inputs.

    Writing the dataset replaces ``out`` as a whole (``--overwrite``) or creates it: an
    input inside it would be deleted with the old folder, so ``convert SRC SRC`` or an OUT
    above SRC must never start.
    """
    target = _resolved(out, "output folder")
    for what, path in inputs.items():
        if path is None:
            continue
        p = _resolved(Path(path), what)
        if p == target or target in p.parents:
            where = "is" if p == target else "contains"
            raise ConfigError(
                f"output folder {out} {where} the {what} {path}: the conversion would "
                "replace it; choose an output folder outside the input"
            )


def _resolved(path: Path, what: str) -> Path:
    """``path`` made absolute, symbolic links followed; a link loop is one line."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # Python raises RuntimeError for a loop
        raise DataFormatError(path, f"{what}: cannot resolve the path ({exc})") from None


__all__ = ["FORMATS", "convert", "detect_format"]
