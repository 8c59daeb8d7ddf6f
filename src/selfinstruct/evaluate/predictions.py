"""Predictions made elsewhere: a JSONL file of outputs, matched to the evaluation's items and scored like
the replies of a model (same metrics, judge and report).

How a row finds its item (decided per row, in this order):

1. `id`: the item's id: a SuperNI instance id (`task1344_glue_entailment_classification-abc...`), or
   for a task file `<task id or name>-<instance index>` (`user_oriented_task_0-0`), as the reports show.
2. `task` and `index`: the task's name (SuperNI) or id/name (task file) and the 0-based position of the
   instance in that task.
3. The paper's prediction format (`instruction`, `input`, `response`, no id; task files only): row *i*
   answers the *i*-th instance of the task file (line order), and its instruction and input must equal
   that instance's after stripping.

The output is `prediction` (SuperNI's format), else `response` (the paper's), else `output`. Every item
needs exactly one row: a duplicate, a row that matches nothing or an item left without a prediction is
an error naming the file (and line), unless `missing_as_empty` scores missing items as empty outputs.
Rows for items outside `--limit`/`--tasks-filter` are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.evaluate.items import EvalItem
from selfinstruct.jsonl import json_type_name, read_jsonl

TEXT_FIELDS = ("prediction", "response", "output")


@dataclass(frozen=True)
class GivenPrediction:
    text: str
    line: int | None  # None: missing and scored as empty


@dataclass(frozen=True)
class PredictionSet:
    path: Path
    by_id: dict[str, GivenPrediction]
    rows: int
    skipped: int  # rows for items this evaluation does not include
    missing: int  # items scored as empty (only with missing_as_empty)


def _text(obj: dict[str, Any], path: Path, line: int) -> str:
    for field in TEXT_FIELDS:
        if field in obj:
            value = obj[field]
            if not isinstance(value, str):
                raise InputFileError(path, line, f"'{field}' must be a string, got {json_type_name(value)}")
            return value
    raise InputFileError(path, line, "no prediction: expected a 'prediction' (or 'response') field")


def _key(
    obj: dict[str, Any],
    path: Path,
    line: int,
    record: int,
    by_task_index: dict[tuple[str, int], EvalItem],
    by_ordinal: dict[int, EvalItem] | None,
    known_tasks: set[str],
) -> str | None:
    """The id of the item a row answers; None when that item is outside this evaluation."""
    if "id" in obj:
        value = obj["id"]
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            raise InputFileError(path, line, f"'id' must be a non-empty string, got {json_type_name(value)}")
        return str(value)
    if "task" in obj or "index" in obj:
        task, index = obj.get("task"), obj.get("index")
        if not isinstance(task, str) or isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise InputFileError(path, line, "'task' must be a string and 'index' an integer >= 0")
        if task not in known_tasks:
            raise InputFileError(path, line, f"no task named {task!r}")
        item = by_task_index.get((task, index))
        return item.id if item else None
    if "instruction" in obj and by_ordinal is not None:
        item = by_ordinal.get(record)
        if item is None:
            return None
        for field, expected in (("instruction", item.instruction), ("input", item.input)):
            given = obj.get(field, "")
            if not isinstance(given, str) or given.strip() != expected.strip():
                raise InputFileError(
                    path,
                    line,
                    f"'{field}' differs from instance {record} of the task file (item {item.id}); "
                    "rows without an id must follow the task file's order",
                )
        return item.id
    raise InputFileError(
        path, line, "no id: give 'id', or 'task' and 'index' (or, for a task file, the paper's format)"
    )


def load_predictions(
    path: Path,
    items: Sequence[EvalItem],
    *,
    task_names: Sequence[str],
    line_order: bool,
    missing_as_empty: bool = False,
) -> PredictionSet:
    """Match a predictions file to `items`; `task_names` are all tasks of the source (to tell a row for a
    filtered-out task from one naming no task); `line_order` allows the paper's id-less format."""
    ids = {item.id for item in items}
    by_task_index = {(item.task, item.index): item for item in items}
    by_ordinal = {item.ordinal: item for item in items} if line_order else None
    known_tasks = set(task_names)
    found: dict[str, GivenPrediction] = {}
    rows = skipped = 0
    for record, (line, _, obj) in enumerate(read_jsonl(path)):
        rows += 1
        text = _text(obj, path, line)
        key = _key(obj, path, line, record, by_task_index, by_ordinal, known_tasks)
        if key is None or key not in ids:
            skipped += 1
            continue
        if key in found:
            first = found[key].line
            raise InputFileError(path, line, f"a second prediction for item {key} (first on line {first})")
        found[key] = GivenPrediction(text, line)
    if rows == 0:
        raise InputFileError(path, None, "no predictions in the file")
    missing = [item.id for item in items if item.id not in found]
    if missing and not missing_as_empty:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise UserError(
            f"{path}: no prediction for item {missing[0]}{more}; "
            "pass --missing-as-empty to score missing items as empty outputs"
        )
    for item_id in missing:
        found[item_id] = GivenPrediction("", None)
    return PredictionSet(path, found, rows, skipped, len(missing))
