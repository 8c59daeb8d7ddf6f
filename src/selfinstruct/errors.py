"""Errors the CLI shows as one line (never a traceback) with an exit code a script can trust: 2 for a
mistake in the user's input, 1 for a condition of the machine (disk full, no permission, port busy)."""

from __future__ import annotations

from pathlib import Path


class CommandError(Exception):
    """A failure the user can act on. `str()` is the one line shown; `exit_code` the process's exit code."""

    exit_code = 1


class UserError(CommandError):
    """A mistake in the user's input (a file, an option)."""

    exit_code = 2


class InputFileError(UserError):
    """A bad line in an input file: names the file and the 1-based line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line
        self.detail = message


class StorageError(CommandError):
    """Reading or writing a file failed for a reason outside the program (disk full, read-only, no
    permission). The message names the path; what was committed before stays, so a rerun resumes."""

    exit_code = 1


class ResourceBusyError(CommandError):
    """Something the command needs is taken (a network port)."""

    exit_code = 1


class BudgetExceeded(CommandError):
    """The run's budget (`--max-cost`, `--max-total-tokens`) could be passed by the next request, so it was
    not sent. Requests already in flight finished and were stored; a rerun with a higher budget resumes."""

    exit_code = 1
    summary: object | None = None  # the run's summary at the stop, for the command to show
