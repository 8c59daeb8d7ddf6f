"""Every error class of the package, with the exit code a script can trust: 2 for a mistake in the user's
input, 1 for a condition of the machine or a service (disk full, no permission, port busy, the LM), 130
for an interruption. The CLI's one printer (`cli/failure.py`) shows any of them as one line, never a
traceback, and exits with its code. The tree (exit code):

- `CommandError` (1): a failure the user can act on; `shown()` is the line the CLI prints
  - `UserError` (2): a mistake in the user's input (a file, an option)
    - `InputFileError` (2): a bad line of an input file, as `FILE:LINE: what`
  - `StorageError` (1): the file system refused (disk full, read-only, no permission)
  - `ResourceBusyError` (1): something the command needs is taken (a network port)
  - `BudgetExceeded` (1): the next request could pass `--max-cost` or `--max-total-tokens`
  - `LMError` (1): an LM request failed for good (after retries), or the backend cannot be used
    - `RetryableLMError` (1): a transient failure (429, 5xx, timeout); the client retries it
      - `BadReplyError` (1): an answer that cannot be used, retried on a budget of its own
        - `EmptyReplyError` (1): empty text from a remote endpoint
  - `StepFailed` (1): a step of `reproduce` exited non-zero (its own message was printed above)
  - `AdapterConversionError` (1): a LoRA adapter llama.cpp cannot take (`finetune` notes it and goes on)
  - `Interrupted` (130): Ctrl-C during a step of `reproduce`; the step's child has exited

Standard library only: every layer imports this, `lm/` included.
"""

from __future__ import annotations

from pathlib import Path


class CommandError(Exception):
    """A failure the user can act on. `shown()` is the one line the CLI prints (`str()` unless a class says
    more); `exit_code` the process's exit code."""

    exit_code = 1

    def shown(self) -> str:
        return str(self)


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


class LMError(CommandError, RuntimeError):
    """A request failed for good (after retries), or the backend cannot be used. `str()` is the cause alone
    (callers wrap it in their own context); the CLI's line says what failed and that a rerun resumes."""

    exit_code = 1

    def shown(self) -> str:
        return f"LM request failed: {self}. Rerun the same command to resume."


class RetryableLMError(LMError):
    """A transient failure (429, 5xx, timeout, connection reset). `retry_after` is in seconds if known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadReplyError(RetryableLMError):
    """The server answered, but with a body that cannot be used (not JSON, no choices) or empty text.
    Retried on a budget of its own (`LMSettings.reply_retries`), apart from 429/5xx/timeouts: a server
    that keeps failing must not use up the retries of a reply that is merely bad, nor the reverse."""


class EmptyReplyError(BadReplyError):
    """A remote endpoint answered with empty text; retried a few times before it is accepted as is."""


class StepFailed(CommandError):
    """A step's command exited non-zero; its own message was printed above."""

    exit_code = 1


class AdapterConversionError(CommandError, ValueError):
    """The adapter or base cannot be written as a llama.cpp adapter (unsupported layout or mismatch)."""

    exit_code = 1


class Interrupted(CommandError):
    """Ctrl-C (or SIGINT) during a step; the step's child has exited."""

    exit_code = 130

    def shown(self) -> str:
        return str(self) or "Interrupted."
