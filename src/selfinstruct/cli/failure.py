"""The one printer of failures: any error of `selfinstruct.errors` (and the file system's or SQLite's refusal,
the same kind of failure) becomes one line on stderr and its exit code. `cli.main._main` runs every command
through it; a sub-app run on its own (`cli/eval.py`'s, in tests) uses it too, so the line is the same."""

from __future__ import annotations

import errno
import sqlite3
import sys

from selfinstruct.cli.output import say
from selfinstruct.errors import CommandError, StorageError
from selfinstruct.paths import STORAGE_ERRNOS, database_error


def report_failure(exc: BaseException) -> int | None:
    """Show `exc` as the one line a user sees and return its exit code; None when it is no failure the user
    can act on (a bug: the caller re-raises it, traceback and all)."""
    error = _as_command_error(exc)
    if error is None:
        return None
    if error.exit_code == 130:
        say(error.shown(), "yellow")
    else:
        sys.stderr.write(f"error: {error.shown()}\n")  # one line, never wrapped
    return error.exit_code


def _as_command_error(exc: BaseException) -> CommandError | None:
    if isinstance(exc, CommandError):
        return exc
    if isinstance(exc, OSError):
        # The file system refused (disk full, read-only, permissions): one line naming the path.
        if exc.filename is None and exc.errno not in STORAGE_ERRNOS:
            return None
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return StorageError(f"{where}{exc.strerror or errno.errorcode.get(exc.errno or 0, exc)}")
    if isinstance(exc, sqlite3.Error):
        return database_error(exc, "the run database")
    return None
