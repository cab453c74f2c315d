"""One process per unit: an advisory lock file per (cell, seed) under the run folder.

Two ``asma-bench run`` commands started on the same ``--out`` (a second terminal, a job
submitted twice) would otherwise both train every unit and log two FINISHED runs of
each. A unit is run only by the process holding its lock (``fcntl.flock``, released by
the kernel when a process dies, so a killed run never blocks the next one); the others
skip it. Whoever takes a lock re-reads the store first, because the unit may have
finished while it waited. Lock files are removed when released; a process that opened the
old file and lost the race only ever skips, and the re-read covers the one that comes
after, so removing them is safe.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:  # POSIX; elsewhere units are not locked (one run per folder is then the user's care)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_DIR = ".locks"


@contextmanager
def unit_lock(out: Path, unit_id: str) -> Iterator[bool]:
    """Yield True while this process holds ``unit_id``'s lock, False if another does."""
    if fcntl is None:
        yield True
        return
    folder = Path(out) / LOCK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{unit_id}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield True
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
