"""Small file helpers shared across layers."""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(fh)`` on a temporary file in ``path``'s folder, flush it to disk and
    rename it over ``path``: a reader (or a rerun after a kill) sees the old file or the new
    one, never half of one. The temporary file names its writer's process id; one left by a
    writer that was killed (SIGKILL runs no cleanup) is removed by the next write of the
    same file, while those of live writers are left alone. The file gets the permissions a
    plain ``open(path, "w")`` gives (0666 less the umask), not the temporary file's 0600."""
    path = Path(path)
    _sweep_stale(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None and exc.errno is not None:  # a full disk names the file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of UTF-8 ``text``."""
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def _sweep_stale(path: Path) -> None:
    """Remove ``.NAME.PID.*.tmp`` files of ``path`` whose writer process no longer runs."""
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def temp_dir_beside(dest: Path) -> Path:
    """A new empty folder ``.NAME.tmp-PID-XXXX`` beside ``dest`` (for building ``dest``
    whole and renaming it into place); stale ones of dead writers are swept first. It has
    the permissions of a plain ``mkdir`` (0777 less the umask), not ``mkdtemp``'s 0700, so
    ``dest`` has them once renamed."""
    sweep_stale_beside(dest)
    tmp = tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent)
    os.chmod(tmp, 0o777 & ~umask())
    return Path(tmp)


def umask() -> int:
    """This process's umask, read without changing it where the system says it (Linux);
    elsewhere set and restored at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # (a file made meanwhile by another thread is private, not open)
    os.umask(mask)
    return mask


def backup_name(dest: Path) -> Path:
    """Where ``dest`` waits while its replacement is renamed into place."""
    return dest.with_name(f".{dest.name}.old-{os.getpid()}")


def remove_path(path: Path) -> None:
    """Remove a file or a folder tree (whatever ``path`` is), ignoring a missing one."""
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_stale_beside(dest: Path) -> None:
    """Clean up after writers of ``dest`` that were killed (SIGKILL, power loss): their
    ``.NAME.tmp-PID-*`` folders and ``.NAME.PID.tmp`` files are removed, and a backup
    ``.NAME.old-PID`` goes back to ``NAME`` when the writer died between moving the old
    ``dest`` aside and moving the new one in (else it is removed). Live writers' files are
    left alone."""
    parent, name = dest.parent, dest.name
    if not parent.is_dir():
        return
    stem = glob.escape(f".{name}.")
    for path in parent.glob(f"{stem}tmp-*"):
        pid = path.name[len(f".{name}.tmp-") :].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            remove_path(path)
    # ``.NAME.PID.tmp`` and what SQLite keeps beside it (``-journal``, ``-wal``, ``-shm``)
    for suffix in ("*.tmp", "*.tmp-journal", "*.tmp-wal", "*.tmp-shm"):
        for path in parent.glob(f"{stem}{suffix}"):
            pid = path.name[len(f".{name}.") :].split(".", 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                remove_path(path)
    for path in parent.glob(f"{stem}old-*"):
        pid = path.name[len(f".{name}.old-") :]
        if pid.isdigit() and not pid_alive(int(pid)):
            if not dest.exists() and not dest.is_symlink():
                os.rename(path, dest)  # the old data was never replaced: put it back
            else:
                remove_path(path)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True
