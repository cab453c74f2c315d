"""One process per unit: an advisory lock file per (cell, seed), kept beside the store.

Two ``asma-bench run`` commands that log to one store (a second terminal, a job submitted
twice, two ``--runs`` folders given one ``--tracking-uri``) would otherwise both train a
unit and log two FINISHED runs of it. A unit is run only by the process holding its lock
(:mod:`filelock`: ``flock`` on POSIX, ``msvcrt.locking`` on Windows, both released by the
system when a process dies, so a killed run never blocks the next one); the others leave it
to that process. Whoever takes a lock re-reads the store first, because the unit may have
finished while it waited.

The locks follow the store, not the output folder (:func:`lock_root`): a SQLite store's
are in ``.locks/`` beside its file (for the default store, ``OUT/.locks``); a server's
(``http://``, ``postgresql://``) are in a folder of this machine named by the store's URI.
Processes on several machines sharing a server take units from the ``--storage`` queue,
whose heartbeats work across machines.

Lock files are removed when released; a process that opened the old file and lost the race
only ever leaves the unit alone, and the re-read covers the one that comes after, so
removing them is safe. The holder writes its process id into ``UNIT.pid`` beside the lock
(not into the lock file, which a waiting process may truncate and Windows keeps locked), so
a unit held by another process is reported with who holds it (and whether that process is
stopped).
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from asma_bench.harness.tracking import sqlite_path

LOCK_DIR = ".locks"


def lock_root(uri: str, out: str | os.PathLike[str]) -> Path:
    """The folder whose ``.locks/`` serialises the units of the store at ``uri``."""
    db = sqlite_path(uri)
    if db is not None:
        return db.resolve().parent
    if "://" in uri and not uri.startswith("file:"):
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no name for this uid (a container)
            user = str(os.getuid()) if hasattr(os, "getuid") else "user"
        digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"asma-bench-{user}" / digest
    return Path(out).resolve()


@contextmanager
def unit_lock(root: str | os.PathLike[str], unit_id: str) -> Iterator[bool]:
    """Yield True while this process holds ``unit_id``'s lock under ``root/.locks``, False
    if another process (or another ``unit_lock`` of this one) does. Never waits."""
    folder = Path(root) / LOCK_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path, pid_file = folder / f"{unit_id}.lock", folder / f"{unit_id}.pid"
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        pid_file.write_text(f"{os.getpid()}\n")
        yield True
    finally:
        pid_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # Windows: removed by the release instead
            path.unlink()  # while held: whoever opens the name next makes a new lock
        lock.release()


def holder(root: str | os.PathLike[str], unit_id: str) -> str:
    """Who holds ``unit_id``'s lock, in words: ``process 1234``, ``process 1234
    (stopped)``, or ``another process`` when the file names none (yet)."""
    try:
        text = (Path(root) / LOCK_DIR / f"{unit_id}.pid").read_text().strip()
    except OSError:
        text = ""
    if not text.isdigit():
        return "another process"
    pid = int(text)
    return f"process {pid}" + (" (stopped)" if _stopped(pid) else "")


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (SIGSTOP, Ctrl-Z): it holds its units but does
    not train them. Linux only; elsewhere False."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[:1]
    return state == ["T"] or state == ["t"]
