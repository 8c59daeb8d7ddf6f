"""Loads what the report analyses: a run directory, or plain JSONL files in the paper's formats.

Plain files are accepted liberally (seed format, `machine_generated_instructions.jsonl`, instance files with
one instance per line or an `instances` list, classification answer files) and merged by instruction text,
so the paper's released data can be analysed by passing its files together. A broken line is an
`InputFileError` naming the file and line.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.jsonl import parse_jsonl_lines
from selfinstruct.quality.report import QualitySummary, quality_summary
from selfinstruct.records import Instance
from selfinstruct.seeds import resolve_seed_source
from selfinstruct.store import DB_NAME, RunStore


@dataclass(frozen=True)
class GeneratedTask:
    """A generated instruction as the report sees it."""

    instruction: str
    instances: tuple[Instance, ...] = ()
    is_classification: bool | None = None


@dataclass
class AnalysisInput:
    source: str
    kind: str  # "run" | "files"
    tasks: list[GeneratedTask]
    seeds: list[str]
    candidate_verdicts: dict[str, int] = field(default_factory=dict)
    instance_verdicts: dict[str, int] = field(default_factory=dict)
    quality: QualitySummary | None = None  # Table 2 by judges and people, where the run was rated


def load(sources: Iterable[Path], *, seeds: Path | str | None = None) -> AnalysisInput:
    """One run directory, or any number of plain files; `seeds` (a file or a built-in set name, as for
    `--seeds` elsewhere) overrides the seed instructions."""
    paths = list(sources)
    if not paths:
        raise UserError("give a run directory or at least one JSONL file")
    runs = [p for p in paths if p.is_dir()]
    if runs:
        if len(paths) != 1:
            raise UserError("give either one run directory or plain files, not both")
        data = load_run(runs[0])
    else:
        data = load_files(paths)
    if seeds is not None:
        data.seeds = load_seed_instructions(resolve_seed_source(seeds))
    return data


def load_run(run_dir: Path) -> AnalysisInput:
    if not (run_dir / DB_NAME).exists():
        raise UserError(f"{run_dir}: not a selfinstruct run directory (no {DB_NAME})")
    store = RunStore.open(run_dir)
    try:
        # Every kept instruction, with or without kept instances (the report counts both).
        tasks = [
            GeneratedTask(t.instruction, t.instances, t.is_classification)
            for t in store.generated_tasks(with_instances_only=False)
        ]
        return AnalysisInput(
            source=str(run_dir),
            kind="run",
            tasks=tasks,
            seeds=[t.instruction for t in store.seed_tasks()],
            candidate_verdicts=store.verdict_counts("candidates"),
            instance_verdicts=store.verdict_counts("instances"),
            quality=quality_summary(store) or None,
        )
    except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
        raise UserError(f"{run_dir / DB_NAME}: cannot read the run store ({exc})") from exc
    finally:
        store.close()


def iter_json_objects(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) for a JSONL file, or for a JSON file holding a list of objects."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, None, f"cannot read: {exc}") from exc
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputFileError(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
        for index, obj in enumerate(items, start=1):
            if not isinstance(obj, dict):
                raise InputFileError(path, None, f"item {index} is not a JSON object")
            yield index, obj
        return
    for number, _, obj in parse_jsonl_lines(text.splitlines(), path):
        yield number, obj


def _text(obj: dict[str, object], key: str, path: Path, line: int, *, required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise InputFileError(path, line, f"missing '{key}'")
        return ""
    if not isinstance(value, str):
        raise InputFileError(path, line, f"'{key}' must be a string")
    return value


def _clf(value: object, path: Path, line: int) -> bool | None:
    """`is_classification` as a bool, or the paper's answer strings (" Yes" / " No")."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        answer = value.strip().lower()
        if answer in {"yes", "true"}:
            return True
        if answer in {"no", "false"}:
            return False
    raise InputFileError(path, line, f"'is_classification' must be a boolean or Yes/No, not {value!r}")


def _instances(value: object, path: Path, line: int) -> list[Instance]:
    if not isinstance(value, list):
        raise InputFileError(path, line, "'instances' must be a list")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise InputFileError(path, line, "each instance must be an object with input/output")
        out.append(Instance(_text(item, "input", path, line), _text(item, "output", path, line)))
    return out


@dataclass
class _Acc:
    instances: list[Instance] = field(default_factory=list)
    is_classification: bool | None = None


def load_files(paths: list[Path]) -> AnalysisInput:
    """Merge plain files by instruction text, in first-seen order."""
    tasks: dict[str, _Acc] = {}
    for path in paths:
        if not path.exists():
            raise UserError(f"{path}: no such file")
        for line, obj in iter_json_objects(path):
            instruction = _text(obj, "instruction", path, line, required=True)
            acc = tasks.setdefault(instruction, _Acc())
            if "is_classification" in obj:
                clf = _clf(obj["is_classification"], path, line)
                if clf is not None:
                    acc.is_classification = clf
            if "instances" in obj:
                acc.instances.extend(_instances(obj["instances"], path, line))
            elif "output" in obj or "input" in obj:
                acc.instances.append(
                    Instance(_text(obj, "input", path, line), _text(obj, "output", path, line))
                )
    return AnalysisInput(
        source=", ".join(str(p) for p in paths),
        kind="files",
        tasks=[GeneratedTask(k, tuple(v.instances), v.is_classification) for k, v in tasks.items()],
        seeds=[],
    )


def load_seed_instructions(path: Path) -> list[str]:
    """Seed instructions from a seed-format JSONL file (only `instruction` is needed)."""
    if not path.exists():
        raise UserError(f"{path}: no such seed file")
    return [_text(obj, "instruction", path, line, required=True) for line, obj in iter_json_objects(path)]
