"""Opening the files a user hands over: text as UTF-8, arrays only after their header is
checked against the file.

Both kinds of check stand between a hostile or damaged file and an allocation or a silent
misreading:

* **Text** (labels.csv, classes.txt, split and name lists, PKU-MMD label files, a
  dataset's meta.csv and info.json) is UTF-8, with or without the byte-order mark that
  spreadsheet programs write. Reading it as latin-1 never fails, which is the problem: a
  ``Händeschütteln`` class name was stored as ``HÃ¤ndeschÃ¼tteln`` and a BOM became part
  of the first column's name. A file that is not UTF-8 is refused naming the byte.
* **Arrays**: a ``.npy`` header states a shape and dtype, and ``numpy.load`` allocates
  what it states before it reads a byte. A 128-byte file claiming (2, 10⁹, 25, 3) float32
  asked for 559 GiB. The header's size is compared with the file's (or, in a ``.npz``,
  with the member's uncompressed size in the zip directory) first.
"""

from __future__ import annotations

import codecs
import errno
import math
import os
import stat
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from tokenize import TokenError
from typing import IO

import numpy as np

from asma_bench.errors import DataFormatError

#: The largest text file a reader opens. The biggest real skeleton text files (PKU-MMD
#: sequences, NTU's 300-frame two-body clips) are a few MB; a larger one is not a skeleton
#: file, and reading it whole could exhaust memory (a 2 GB sparse file: 10 GB of lines).
MAX_TEXT_BYTES = 256 * 2**20

#: errno values that mean "there is nothing at this path" rather than "something is wrong
#: with it"; any other (a symbolic-link loop, no permission) is worth saying.
_ABSENT = (errno.ENOENT, errno.ENOTDIR)


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (too many levels of symbolic links)"
    return str(exc.strerror or exc)


def stat_input(path: str | os.PathLike[str]) -> os.stat_result | None:
    """``os.stat(path)`` (links followed); None when nothing is there. A path that exists
    but cannot be reached (a symbolic-link loop, no permission, a NUL byte in the name) is
    a DataFormatError naming it: ``Path.exists()`` would answer False and the user would
    read "does not exist" (or, for an optional file, nothing at all)."""
    try:
        return os.stat(path)
    except ValueError:  # an embedded NUL byte
        raise DataFormatError(path, "the file name contains a NUL byte") from None
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise DataFormatError(path, f"cannot read: {_os_reason(exc)}") from None


def input_exists(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` exists; False when nothing is there; DataFormatError when it
    cannot be told (see :func:`stat_input`)."""
    return stat_input(path) is not None


def check_regular_file(path: str | os.PathLike[str], limit: int | None = None) -> int:
    """The size of ``path``; DataFormatError unless it is a regular file (after symbolic
    links) of at most ``limit`` bytes. Only regular files are opened: a FIFO named
    ``.skeleton`` would block forever, ``/dev/zero`` would never end."""
    st = stat_input(path)
    if st is None:
        raise DataFormatError(path, "cannot read: No such file or directory")
    if not stat.S_ISREG(st.st_mode):
        raise DataFormatError(path, "not a regular file (a FIFO, device or folder)")
    if limit is not None and st.st_size > limit:
        raise DataFormatError(
            path, f"{st.st_size / 2**20:.0f} MiB is too large for this format "
            f"(at most {limit / 2**20:.0f} MiB)"
        )  # fmt: skip
    return st.st_size


#: Byte-order marks of the other Unicode encodings (UTF-32 first: its LE mark begins with
#: UTF-16's); a file with one is said to be in that encoding.
_OTHER_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def decode_text(path: str | os.PathLike[str], raw: bytes) -> str:
    """``raw`` as UTF-8 (a leading byte-order mark dropped); a byte that is not UTF-8 is a
    DataFormatError naming the file, its line and the byte's offset."""
    for bom, name in _OTHER_BOMS:
        if raw.startswith(bom):  # say what it is: "byte 0 (0xff)" alone would puzzle
            raise DataFormatError(path, f"{name} text (byte-order mark); save the file as UTF-8")
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line = raw.count(b"\n", 0, offset) + 1
        raise DataFormatError(
            path,
            f"not UTF-8 text: byte {offset} (0x{raw[offset]:02x}) cannot be decoded; "
            "save the file as UTF-8",
            line=line,
        ) from None


def read_text(path: str | os.PathLike[str], limit: int = MAX_TEXT_BYTES) -> str:
    """A regular file of at most ``limit`` bytes, decoded by :func:`decode_text`."""
    check_regular_file(path, limit)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise DataFormatError(path, f"cannot read: {_os_reason(exc)}") from None
    return decode_text(path, raw)


@dataclass(frozen=True)
class NpyHeader:
    """What a ``.npy`` header claims: shape, dtype, order, and where the data starts."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int

    @property
    def nbytes(self) -> int:
        """The data's size in bytes, in Python integers (no int64 overflow)."""
        return math.prod(self.shape) * self.dtype.itemsize


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} bytes"


#: What numpy's header parser raises on a damaged header: it reads the header with
#: ``tokenize`` (TokenError on an unclosed bracket) and ``ast.literal_eval``.
_HEADER_ERRORS = (ValueError, TypeError, KeyError, SyntaxError, RecursionError, TokenError,
                  OSError, EOFError)  # fmt: skip


def read_npy_header(fh: IO[bytes], where: str | os.PathLike[str], what: str = "") -> NpyHeader:
    """Parse the header of the ``.npy`` stream ``fh`` (positioned at its start).

    Formats 1.0 and 2.0 only (3.0 exists for structured dtypes with non-latin-1 field
    names, which no skeleton array has); object dtypes, which need pickle, are refused.
    ``what`` names a member of an archive in messages."""
    label = f"{what}: " if what else ""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise DataFormatError(
                where, f"{label}.npy format version {version[0]}.{version[1]} is not "
                "supported (numeric arrays are written as 1.0 or 2.0)"
            )  # fmt: skip
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        with warnings.catch_warnings():  # "created on Python 2": a header it had to repair
            warnings.simplefilter("ignore", UserWarning)
            shape, fortran, dtype = read(fh)
        offset = fh.tell()  # a zip member's stream tells its position too
    except DataFormatError:
        raise
    except _HEADER_ERRORS as exc:
        reason = " ".join(str(exc).split())[:120]
        raise DataFormatError(where, f"{label}not a readable .npy array ({reason})") from None
    if dtype.hasobject:
        holder = what or "the array"
        raise DataFormatError(where, f"{holder} holds Python objects; refusing to unpickle")
    if any(d < 0 for d in shape):
        raise DataFormatError(where, f"{label}header claims a negative dimension {shape}")
    # numpy counts elements in int64 even when a dimension is 0: (0, 2**64) passes the size
    # comparison (0 bytes) and then overflows inside np.load
    if math.prod(d for d in shape if d) * max(dtype.itemsize, 1) > np.iinfo(np.intp).max:
        raise DataFormatError(where, f"{label}header claims shape {shape}, too large for numpy")
    return NpyHeader(tuple(shape), dtype, bool(fortran), offset)


def _check_size(where: str | os.PathLike[str], header: NpyHeader, size: int, what: str) -> None:
    data = size - header.offset
    if data != header.nbytes:
        label = f"{what}: " if what else ""
        raise DataFormatError(
            where,
            f"{label}header claims shape {header.shape} of {header.dtype} "
            f"({_size(header.nbytes)}), but the file holds {_size(max(data, 0))} of data "
            "(truncated, or a header that does not match the data)",
        )


def check_npy(path: str | os.PathLike[str], limit: int | None = None) -> NpyHeader:
    """The header of the ``.npy`` file ``path``, checked against the file's size before
    anything is allocated (``limit``: the largest file accepted, in bytes)."""
    size = check_regular_file(path, limit)
    try:
        with open(path, "rb") as fh:
            header = read_npy_header(fh, path)
    except OSError as exc:
        raise DataFormatError(path, f"cannot read: {_os_reason(exc)}") from None
    _check_size(path, header, size, "")
    return header


def check_npz(path: str | os.PathLike[str]) -> dict[str, NpyHeader]:
    """The headers of every ``.npy`` member of the archive ``path`` ({member name without
    ``.npy``: header}), each checked against the member's uncompressed size in the zip
    directory: ``np.load(...)[key]`` allocates the header's claim before reading."""
    check_regular_file(path)
    headers: dict[str, NpyHeader] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                key = info.filename[: -len(".npy")]
                with zf.open(info) as fh:
                    header = read_npy_header(fh, path, key)
                _check_size(path, header, info.file_size, key)
                headers[key] = header
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise DataFormatError(path, f"not a readable .npz archive ({reason})") from None
    except OSError as exc:
        raise DataFormatError(path, f"cannot read: {_os_reason(exc)}") from None
    return headers


def load_npy(path: str | os.PathLike[str], mmap: bool, limit: int | None = None) -> np.ndarray:
    """``np.load`` of a checked ``.npy`` (:func:`check_npy`), memory-mapped when ``mmap``;
    never unpickles."""
    check_npy(path, limit)
    try:
        return np.load(Path(path), mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError, OverflowError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise DataFormatError(path, f"not a readable .npy array ({reason})") from None


__all__ = [
    "MAX_TEXT_BYTES",
    "NpyHeader",
    "check_npy",
    "check_npz",
    "check_regular_file",
    "decode_text",
    "input_exists",
    "load_npy",
    "read_npy_header",
    "read_text",
    "stat_input",
]
