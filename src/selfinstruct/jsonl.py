"""Reading the JSONL files users hand us (seeds, earlier stages' output, datasets to dedup, evaluation
sets): streamed line by line, blank lines skipped, and every problem reported as the file and the line
it is on, so a bad line in a million-row file is one clear message rather than a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from selfinstruct.errors import InputFileError


class JsonLine(NamedTuple):
    number: int  # 1-based line number in the file
    text: str  # the line as written, without its line break
    obj: dict[str, Any]


def json_type_name(value: Any) -> str:
    """JSON's name for a decoded value's type, for messages ("expected a JSON object, got array")."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__
    )


def parse_jsonl_lines(lines: Iterable[bytes | str], path: Path | str) -> Iterator[JsonLine]:
    """One JsonLine per non-blank line; `path` only names the source in errors. Bytes are decoded per
    line (so an encoding error gets its line number), tolerating a byte-order mark on the first."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InputFileError(path, number, f"not UTF-8 text (byte {exc.start + 1})") from None
        else:
            text = raw.removeprefix("\ufeff") if number == 1 else raw
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputFileError(path, number, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise InputFileError(path, number, f"expected a JSON object, got {json_type_name(obj)}")
        yield JsonLine(number, text, obj)


def read_jsonl(path: Path | str) -> Iterator[JsonLine]:
    """The objects of a JSONL file, one line at a time (the file is never read whole)."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise InputFileError(path, None, "no such file") from None
    except IsADirectoryError:
        raise InputFileError(path, None, "is a directory, expected a JSONL file") from None
    except OSError as exc:
        raise InputFileError(path, None, f"cannot read: {exc.strerror or exc}") from None
    with handle:
        yield from parse_jsonl_lines(handle, path)
