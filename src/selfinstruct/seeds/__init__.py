"""Seed tasks: the project's own seed set, domain sets, and the loader for the paper's JSONL format; and
the paper's user-oriented evaluation set (`user_oriented.py`), which is a task file of that format too."""

from selfinstruct.seeds.loader import (
    classification_only,
    default_seed_path,
    list_builtin_seed_sets,
    load_seed_tasks,
    parse_seed_lines,
    resolve_seed_source,
    save_seed_tasks,
    task_from_record,
    task_to_record,
)

__all__ = [
    "classification_only",
    "default_seed_path",
    "list_builtin_seed_sets",
    "load_seed_tasks",
    "parse_seed_lines",
    "resolve_seed_source",
    "save_seed_tasks",
    "task_from_record",
    "task_to_record",
]
