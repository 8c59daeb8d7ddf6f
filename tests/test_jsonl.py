"""The shared JSONL reader: line numbers, blank lines, byte-order marks, and one clear error per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfinstruct.errors import InputFileError
from selfinstruct.jsonl import json_type_name, parse_jsonl_lines, read_jsonl


def test_reads_objects_with_their_line_numbers_and_text(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\n   \n{"b": "\xc3\xa9"}\n{"c": []}')
    rows = list(read_jsonl(path))
    assert [r.number for r in rows] == [1, 4, 5]
    assert [r.obj for r in rows] == [{"a": 1}, {"b": "é"}, {"c": []}]
    assert [r.text for r in rows] == ['{"a": 1}', '{"b": "é"}', '{"c": []}']  # no BOM, no line break


def test_text_lines_behave_like_bytes() -> None:
    rows = list(parse_jsonl_lines(['\ufeff{"a": 1}', "", '{"b": 2}\n'], "mem.jsonl"))
    assert [(r.number, r.obj) for r in rows] == [(1, {"a": 1}), (3, {"b": 2})]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (b'{"a": 1}\n{"a": \n', 2, "invalid JSON: Expecting value (column 7)"),
        (b'{"a": 1}\n\n[1, 2]\n', 3, "expected a JSON object, got array"),
        (b'"text"\n', 1, "expected a JSON object, got string"),
        (b"3.5\n", 1, "expected a JSON object, got number"),
        (b'{"a": 1}\n{"a": "\xff"}\n', 2, "not UTF-8 text (byte 8)"),
    ],
)
def test_a_bad_line_names_file_and_line(tmp_path: Path, content: bytes, line: int, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as info:
        list(read_jsonl(path))
    assert info.value.line == line
    assert str(info.value) == f"{path}:{line}: {message}"


def test_rows_before_a_bad_line_are_delivered_first(tmp_path: Path) -> None:
    # Streaming: a consumer (dedup) handles the good rows, then gets the error for the bad one.
    path = tmp_path / "late.jsonl"
    path.write_text('{"n": 1}\n{"n": 2}\nnot json\n', encoding="utf-8")
    seen = []
    with pytest.raises(InputFileError, match=":3: invalid JSON"):
        for row in read_jsonl(path):
            seen.append(row.obj["n"])
    assert seen == [1, 2]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"missing\.jsonl: no such file"):
        list(read_jsonl(tmp_path / "missing.jsonl"))
    with pytest.raises(InputFileError, match="is a directory"):
        list(read_jsonl(tmp_path))


def test_json_type_names() -> None:
    values = [{}, [], "", True, None, 1, 1.5]
    assert [json_type_name(v) for v in values] == [
        "object",
        "array",
        "string",
        "boolean",
        "null",
        "number",
        "number",
    ]
