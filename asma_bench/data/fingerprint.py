"""A dataset known by its content: the fingerprint that enters every unit's identity.

A unit used to be known by ``data.source`` as typed: ``--data ds`` run from two folders
named two different datasets ``ds`` alike, and a dataset rebuilt in place kept the
results of the old one. The fingerprint is a SHA-256 of the canonical files
(``info.json``, ``meta.csv``, ``data.npy``, in that order, each preceded by its name and
size), so two datasets share it only when they hold the same bytes.

Hashing NTU-120's tens of GB takes a while, so the digest is cached in the dataset's
``.fingerprint.json`` under the files' sizes, modification times and inode numbers (as
``git`` trusts its index): any rewrite of a file changes them and the digest is computed
again. A read-only dataset keeps its digest in this process only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from asma_bench.data.store import DATA_FILE, FINGERPRINT_FILE, INFO_FILE, META_FILE
from asma_bench.errors import ConfigError

log = logging.getLogger(__name__)

FILES = (INFO_FILE, META_FILE, DATA_FILE)
CHUNK = 8 << 20
#: the digest's length in the config (hex digits): 64 bits tell datasets apart
LENGTH = 16

_MEMO: dict[tuple, str] = {}


def _stamp(folder: Path) -> list[list[int | str]]:
    """What changes whenever one of the files is rewritten: name, size, mtime, inode."""
    out: list[list[int | str]] = []
    for name in FILES:
        try:
            st = (folder / name).stat()
        except OSError as exc:
            raise ConfigError(
                f"dataset {folder}: cannot read {name} ({exc.strerror or exc})"
            ) from None
        out.append([name, st.st_size, st.st_mtime_ns, st.st_ino])
    return out


def dataset_fingerprint(folder: str | os.PathLike[str]) -> str:
    """The content hash of the canonical dataset at ``folder`` (cached, see the module)."""
    folder = Path(folder).resolve()
    stamp = _stamp(folder)
    key = (str(folder), json.dumps(stamp))
    if key in _MEMO:
        return _MEMO[key]
    cache = folder / FINGERPRINT_FILE
    try:
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if isinstance(cached, dict) and cached.get("stamp") == stamp:
            digest = str(cached["sha256"])
            _MEMO[key] = digest
            return digest
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = _hash(folder, stamp)
    _MEMO[key] = digest
    try:  # the dataset may be read-only (a shared copy): then this process remembers it
        from asma_bench.fileio import atomic_write_text

        atomic_write_text(cache, json.dumps({"sha256": digest, "stamp": stamp}))
    except OSError as exc:
        log.debug("could not cache the fingerprint of %s: %s", folder, exc)
    return digest


def _hash(folder: Path, stamp: list) -> str:
    h = hashlib.sha256()
    for (name, size, *_), file in zip(stamp, (folder / n for n in FILES), strict=True):
        h.update(f"{name}\0{size}\0".encode())
        try:
            with open(file, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    h.update(chunk)
        except OSError as exc:
            raise ConfigError(
                f"dataset {folder}: cannot read {name} ({exc.strerror or exc})"
            ) from None
    return h.hexdigest()[:LENGTH]
