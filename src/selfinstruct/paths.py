"""Output paths: checked before any work starts, written atomically, never one of the inputs.

Every file a command writes goes through a temporary file in the same directory and `os.replace`, so an
interrupted or failed write leaves the old file (or none) in place, never a truncated one. Directories a
failed command created are removed again, so a rejected command leaves nothing behind.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from selfinstruct.errors import CommandError, ResourceBusyError, StorageError, UserError

# errno values that mean "the machine refused the write", not a bug: shown as one line, exit code 1.
STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
)


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name one file: the same resolved path, or (both existing) the same device and
    inode, which also catches a hard link or a symlink to it."""
    with suppress(OSError, RuntimeError):
        if a.resolve() == b.resolve():
            return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except (OSError, ValueError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def refuse_inputs(out: Path, inputs: Iterable[Path], option: str = "--out") -> None:
    """A user error when `out` is one of `inputs`: writing it would destroy the data being read."""
    for path in inputs:
        if same_file(out, path):
            shown = "" if out == path else f" ({path})"
            raise UserError(f"{option} {out} is also an input file{shown}; write the output to another file")


def _first_existing(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return None


def check_output_dir(path: Path, option: str = "--out") -> None:
    """A user error unless `path` is a directory or can be created as one (no file in the way)."""
    existing = _first_existing(path)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == path else f"lies under {existing}, which is a file"
        raise UserError(f"{option} {path}: {where}, not a directory")


def check_output_file(path: Path, option: str = "--out") -> None:
    """A user error unless `path` can be written as a file: not a directory, no file among its parents."""
    if path.is_dir():
        raise UserError(f"{option} {path}: is a directory; give a file name")
    existing = _first_existing(path.parent)
    if existing is not None and not existing.is_dir():
        raise UserError(f"{option} {path}: lies under {existing}, which is a file, not a directory")


def storage_error(exc: OSError, path: Path | str | None = None) -> StorageError:
    """One line for an OSError of the file system, naming the path it concerns."""
    where = path if path is not None else (exc.filename or "?")
    return StorageError(f"{where}: {exc.strerror or exc}")


# SQLite's result codes for conditions of the machine or the file (not bugs), with what the user can do.
_SQLITE_HINTS = {
    "SQLITE_FULL": "the disk is full; free some space, then rerun the same command to resume",
    "SQLITE_IOERR": "the file could not be written; free space or fix the disk, then rerun to resume",
    "SQLITE_READONLY": "the run directory must be writable",
    "SQLITE_CANTOPEN": "the run directory must exist and be writable",
    "SQLITE_PERM": "the run directory must be writable",
    "SQLITE_BUSY": "another selfinstruct process is using this run; wait for it to finish",
    "SQLITE_LOCKED": "another selfinstruct process is using this run; wait for it to finish",
    "SQLITE_NOTADB": "this is not a selfinstruct run database",
    "SQLITE_CORRUPT": "the database file is damaged",
}


def database_error(exc: sqlite3.Error, path: Path | str) -> CommandError | None:
    """One line for a SQLite error caused by the disk or the file rather than by a bug; None for others."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    hint = next((h for prefix, h in _SQLITE_HINTS.items() if name.startswith(prefix)), None)
    if hint is None:
        return None
    error = UserError if name.startswith("SQLITE_NOTADB") else StorageError
    return error(f"{path}: {exc} ({hint})")


@contextmanager
def created_dirs(path: Path) -> Iterator[list[Path]]:
    """Create directory `path` with its missing parents; if the block fails, remove those it created
    (when still empty). Yields the created directories, outermost first."""
    made = [p for p in reversed((path, *path.parents)) if not os.path.lexists(p)]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{path}: a file is in the way, not a directory") from None
    except NotADirectoryError:
        raise UserError(f"{path}: lies under a file, not a directory") from None
    except OSError as exc:
        _remove_empty(made)
        raise StorageError(f"{path}: cannot create the folder ({exc.strerror or exc})") from None
    try:
        yield made
    except BaseException:
        _remove_empty(made)
        raise


def _remove_empty(dirs: list[Path]) -> None:
    for directory in reversed(dirs):
        with suppress(OSError):
            directory.rmdir()  # only if empty: never removes anything someone put there meanwhile


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """`with replacing(path) as tmp:` write the file `tmp` (beside `path`); on success it replaces `path`
    at once (os.replace), on any failure `path` is untouched and `tmp` is gone. Missing parent
    directories are created (and removed again on failure). An OSError becomes a StorageError naming
    `path`."""
    path = Path(path)
    check_output_file(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with created_dirs(path.parent):
        try:
            yield tmp
            os.replace(tmp, path)
        except OSError as exc:
            # A write to an open handle fails without a file name: it is this file's.
            raise storage_error(exc, path if exc.filename in (None, tmp, str(tmp)) else None) from None
        finally:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """`with atomic_write(path) as handle:` write text (UTF-8) or bytes; see `replacing`."""
    with replacing(path) as tmp:
        # 0o666 less the umask, as open() would create it (tempfile's files would be 0o600).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the name points at it


LOCK_NAME = ".selfinstruct.lock"


@dataclass
class FolderLock:
    """An exclusive lock on a folder a command writes (a run, a model folder, a loop), held until released
    or until the process ends, however it ends: the kernel drops a flock with its last descriptor, so a
    killed command never leaves a stale lock behind. `fd` is None where the file system cannot lock."""

    path: Path
    fd: int | None

    def release(self, *, remove: bool = False) -> None:
        """Unlock; `remove` also deletes the lock file (for a folder about to be removed as unused)."""
        if remove:
            with suppress(OSError):
                self.path.unlink(missing_ok=True)
        if self.fd is not None:
            with suppress(OSError):
                os.close(self.fd)
            self.fd = None


def lock_folder(folder: Path, what: str) -> FolderLock:
    """Take `folder`'s lock, or say at once that another process holds it (two commands writing one run
    would interleave their work and fail on each other's rows). `what` names the folder in the message."""
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise StorageError(f"{folder}: the {what} folder must be writable ({exc.strerror})") from None
        raise storage_error(exc, folder) from None
    try:
        import fcntl
    except ImportError:  # not a POSIX system: no advisory locks to take
        return FolderLock(path, fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise ResourceBusyError(
            f"{folder}: another selfinstruct process{holder} is writing this {what}; wait for it to finish "
            "(or stop it), then rerun"
        ) from None
    except OSError:  # a file system without locks (some network mounts): go on unlocked, as before
        return FolderLock(path, fd)
    with suppress(OSError):  # who holds it, for the message another process may show
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return FolderLock(path, fd)


def _lock_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
