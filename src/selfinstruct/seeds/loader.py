"""Reading, validating and writing seed task files in the paper's JSONL format.

One JSON object per line: ``id``, ``name``, ``instruction``, ``instances`` (a non-empty list of
``{"input", "output"}``) and ``is_classification``. Validation is strict because seeds steer every
prompt of a run: a bad line stops the run with one message naming the file and the line.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputFileError
from selfinstruct.jsonl import json_type_name, parse_jsonl_lines
from selfinstruct.records import Instance, Task
from selfinstruct.seeds import user_oriented

# Built-in sets shipped in seeds/data/ (flat, so the package-data glob `seeds/data/*` ships them).
_BUILTIN_FILES: dict[str, str] = {
    "default": "seed_tasks.jsonl",
    "medical": "medical_seed_tasks.jsonl",
    "software": "software_seed_tasks.jsonl",
}
DEFAULT_SET = "default"


def _data_dir() -> Path:
    return Path(__file__).resolve().parent / "data"


def list_builtin_seed_sets() -> dict[str, Path]:
    """Names of the shipped seed sets (usable as ``--seeds NAME``) and their paths."""
    return {name: _data_dir() / fname for name, fname in _BUILTIN_FILES.items()}


def default_seed_path() -> Path:
    """The project's own seed set, used when no ``--seeds`` is given."""
    return list_builtin_seed_sets()[DEFAULT_SET]


def resolve_seed_source(spec: str | Path | None) -> Path:
    """Turn a ``--seeds`` value into a path: None/empty is the default set, an existing path wins over a
    built-in set name, anything else is taken as a path (and reported as missing when loaded)."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return default_seed_path()
    path = Path(spec).expanduser()
    if path.exists():
        return path
    builtin = list_builtin_seed_sets().get(str(spec).strip().lower())
    return builtin if builtin is not None else path


def _parse_instances(raw: Any, path: Path, line: int, evaluation: bool) -> tuple[Instance, ...]:
    if not isinstance(raw, list) or not raw:
        raise InputFileError(path, line, f"'instances' must be a non-empty list, got {_describe(raw)}")
    instances = []
    for k, item in enumerate(raw, start=1):
        if not isinstance(item, dict):
            raise InputFileError(path, line, f"instance {k} must be an object, got {json_type_name(item)}")
        if evaluation:
            item = {"input": "", **item}  # an evaluation instance may leave out an empty input
        for key in ("input", "output"):
            if key not in item:
                raise InputFileError(path, line, f"instance {k} is missing '{key}'")
            if not isinstance(item[key], str):
                raise InputFileError(
                    path, line, f"instance {k}: '{key}' must be a string, got {json_type_name(item[key])}"
                )
        if not evaluation and not item["output"].strip():
            raise InputFileError(path, line, f"instance {k} has an empty 'output'")
        instances.append(Instance(input=item["input"], output=item["output"]))
    return tuple(instances)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list"
    return json_type_name(value)


def _optional_str(obj: dict[str, Any], key: str, path: Path, line: int, numbers: bool = False) -> str:
    value = obj.get(key, "")
    if value is None:
        return ""
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InputFileError(path, line, f"'{key}' must be a string, got {json_type_name(value)}")
    return value.strip()


def task_from_record(obj: Any, path: Path | str, line: int, *, evaluation: bool = False) -> Task:
    """Validate one decoded JSON line of the paper's seed format and build its Task (``id`` may still be
    empty). The one parser of the format, for seed files and evaluation task files alike.

    Strict by default, because seeds steer every prompt of a run. `evaluation` reads evaluation sets,
    such as the paper's 252 user-oriented tasks, which carry no ``is_classification`` (then optional:
    None unless true or false), may leave out an empty ``input``, may hold an empty reference output,
    and may number their ``id``."""
    path = Path(path)
    if not isinstance(obj, dict):
        raise InputFileError(path, line, f"expected a JSON object, got {json_type_name(obj)}")
    if "instruction" not in obj:
        raise InputFileError(path, line, "missing 'instruction'")
    instruction = obj["instruction"]
    if not isinstance(instruction, str):
        raise InputFileError(path, line, f"'instruction' must be a string, got {json_type_name(instruction)}")
    if not instruction.strip():
        raise InputFileError(path, line, "'instruction' is blank")
    if "instances" not in obj:
        raise InputFileError(path, line, "missing 'instances'")
    instances = _parse_instances(obj["instances"], path, line, evaluation)
    is_clf = obj.get("is_classification")
    if evaluation:
        is_clf = is_clf if isinstance(is_clf, bool) else None
    elif "is_classification" not in obj:
        raise InputFileError(path, line, "missing 'is_classification' (true or false)")
    elif not isinstance(is_clf, bool):
        raise InputFileError(
            path, line, f"'is_classification' must be true or false, got {json_type_name(is_clf)} {is_clf!r}"
        )
    return Task(
        instruction=instruction.strip(),
        instances=instances,
        is_classification=is_clf,
        id=_optional_str(obj, "id", path, line, numbers=evaluation),
        name=_optional_str(obj, "name", path, line, numbers=evaluation),
    )


def parse_seed_lines(lines: Iterable[bytes | str], path: Path | str) -> list[Task]:
    """Parse JSONL lines (1-based numbering in errors); blank lines are skipped.

    Tasks without an ``id`` get ``seed_task_N`` (N = position in the file), skipping ids already used.
    """
    path = Path(path)
    tasks: list[Task] = []
    first_line: dict[str, int] = {}
    for lineno, _, obj in parse_jsonl_lines(lines, path):
        task = task_from_record(obj, path, lineno)
        if task.id:
            if task.id in first_line:
                raise InputFileError(
                    path, lineno, f"duplicate id '{task.id}' (first used on line {first_line[task.id]})"
                )
            first_line[task.id] = lineno
        tasks.append(task)
    return _fill_missing_ids(tasks, set(first_line))


def _fill_missing_ids(tasks: list[Task], used: set[str]) -> list[Task]:
    out = []
    for i, task in enumerate(tasks):
        if not task.id:
            new_id, n = f"seed_task_{i}", 1
            while new_id in used:
                new_id, n = f"seed_task_{i}_{n}", n + 1
            used.add(new_id)
            task = Task(task.instruction, task.instances, task.is_classification, new_id, task.name)
        out.append(task)
    return out


def load_seed_tasks(
    path: Path | str | None = None, *, allow_eval_data: bool = False, force_flag: str | None = None
) -> list[Task]:
    """Load and validate a seed file (None: the project's default set; a built-in set name also works).

    The paper's user-oriented evaluation set is refused (by name, and by content: its distinctive
    instructions) unless `allow_eval_data`: its authors ask that it is not used for training. The error
    names `force_flag`, the caller's option that allows it, if it has one."""
    if path is not None and not allow_eval_data and user_oriented.is_user_oriented_name(path):
        raise user_oriented.refuse_for_training("--seeds", path, force_flag=force_flag)
    source = resolve_seed_source(path)
    if not source.exists():
        names = ", ".join(sorted(_BUILTIN_FILES))
        raise InputFileError(source, None, f"no such seed file (built-in sets: {names})")
    if source.is_dir():
        raise InputFileError(source, None, "is a directory, expected a JSONL seed file")
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise InputFileError(source, None, f"cannot read: {exc.strerror or exc}") from None
    tasks = parse_seed_lines(data.splitlines(), source)
    if not tasks:
        raise InputFileError(source, None, "no seed tasks (the file is empty)")
    if not allow_eval_data:
        matches = user_oriented.count_matches(t.instruction for t in tasks)
        if matches:
            raise user_oriented.refuse_for_training("--seeds", source, matches, force_flag=force_flag)
    return tasks


def task_to_record(task: Task) -> dict[str, Any]:
    """The paper's JSON object for one task (key order as in the paper's file)."""
    return {
        "id": task.id,
        "name": task.name,
        "instruction": task.instruction,
        "instances": [{"input": inst.input, "output": inst.output} for inst in task.instances],
        "is_classification": bool(task.is_classification),
    }


def save_seed_tasks(tasks: Sequence[Task], path: Path | str) -> Path:
    """Write tasks as a seed file that `load_seed_tasks` reads back unchanged.

    Missing ids are filled in; the write goes through a temporary file so a crash never leaves half a file.
    """
    path = Path(path)
    if not tasks:
        raise ValueError("save_seed_tasks: no tasks to write")
    for task in tasks:
        if not task.instances:
            raise ValueError(f"save_seed_tasks: task {task.instruction[:40]!r} has no instances")
    seen: set[str] = set()
    for task in tasks:
        if task.id and task.id in seen:
            raise ValueError(f"save_seed_tasks: duplicate id {task.id!r}")
        seen.add(task.id)
    tasks = _fill_missing_ids(list(tasks), {t.id for t in tasks if t.id})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for task in tasks:
                fh.write(json.dumps(task_to_record(task), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def classification_only(tasks: Iterable[Task]) -> list[Task]:
    """The classification seeds (the paper's ``--use_clf_seed_tasks_only``)."""
    return [t for t in tasks if t.is_classification]
