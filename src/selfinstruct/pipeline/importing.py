"""Reading an earlier stage's file (the paper's JSONL formats), so each stage can run on its own."""

from __future__ import annotations

from pathlib import Path

from selfinstruct.errors import InputFileError
from selfinstruct.jsonl import read_jsonl


def _as_bool(value: object) -> bool | None:
    """The paper's is_clf_or_not files hold the raw reply (" Yes"); seed files hold a bool."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip() in {"Yes", "yes", "YES"}
    return None


def read_instruction_file(path: Path) -> list[tuple[str, bool | None]]:
    """(instruction, is_classification or None) per line of a JSONL file with an `instruction` field."""
    items: list[tuple[str, bool | None]] = []
    for number, _, row in read_jsonl(path):
        if not isinstance(row.get("instruction"), str):
            raise InputFileError(path, number, "expected an object with a string 'instruction'")
        if not row["instruction"].strip():
            raise InputFileError(path, number, "empty instruction")
        items.append((" ".join(row["instruction"].split()), _as_bool(row.get("is_classification"))))
    if not items:
        raise InputFileError(path, None, "no instructions in file")
    return items
