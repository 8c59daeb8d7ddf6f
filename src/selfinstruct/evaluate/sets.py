"""Evaluation sets as texts to compare generated data with (`selfinstruct contamination --against`,
`prepare --decontaminate`): every instance of every task as an `EvalText`, never a `--limit`.

A set is named by one value: `user-oriented` (the paper's 252 tasks, shipped in the package), a SuperNI
folder (its `tasks/` folder or the data folder holding it; the tasks `test_tasks.txt` lists, as
`eval superni --tasks` reads it, else every task file), or a JSONL file in the paper's seed-task format
(a built-in seed set's name also works)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.evaluate.superni import load_superni_tasks
from selfinstruct.evaluate.tasks import load_task_file, resolve_task_source, task_items
from selfinstruct.records import EvalText
from selfinstruct.seeds.user_oriented import USER_ORIENTED, builtin_eval_sets

SPEC_HELP = "user-oriented, a SuperNI folder or a seed-format JSONL file"


def load_eval_set(spec: str | Path, option: str = "--against") -> list[EvalText]:
    """The instances of one evaluation set; `option` names the flag in a one-line error."""
    text = str(spec).strip()
    if not text:
        raise UserError(f"{option}: empty value; give {SPEC_HELP}")
    path = Path(text).expanduser()
    builtin = text.lower() if text.lower() in builtin_eval_sets() else None
    if not path.exists() and builtin is None and not resolve_task_source(text).exists():
        raise UserError(f"{option} {text}: no such file or folder, nor a built-in set ({SPEC_HELP})")
    try:
        if path.is_dir():
            return _superni_texts(path, text)
        return _task_file_texts(text, USER_ORIENTED if builtin == USER_ORIENTED else text)
    except InputFileError:
        raise  # names the file and the line already
    except UserError as exc:
        raise UserError(f"{option} {text}: {exc}") from None


def load_eval_sets(specs: Iterable[str | Path], option: str = "--against") -> list[EvalText]:
    """The instances of every set given, in order; a set given twice is read once."""
    texts: list[EvalText] = []
    seen: set[str] = set()
    for spec in specs:
        loaded = load_eval_set(spec, option)
        name = loaded[0].set_name if loaded else str(spec)
        if name not in seen:
            seen.add(name)
            texts.extend(loaded)
    return texts


def _superni_texts(path: Path, name: str) -> list[EvalText]:
    texts = []
    for task in load_superni_tasks(path):
        if not task.instances:  # the definition is still an evaluation instruction
            texts.append(EvalText(task.name, task.name, name, task.definition, "", ()))
        texts.extend(
            EvalText(task.name, inst.id, name, task.definition, inst.input, inst.references)
            for inst in task.instances
        )
    return texts


def _task_file_texts(spec: str, name: str) -> list[EvalText]:
    # The item ids `eval tasks` reports use (`<task id or name>-<index>`), so a report's pair can be
    # looked up in an evaluation report.
    return [
        EvalText(item.task, item.id, name, item.instruction, item.input, item.references)
        for item in task_items(load_task_file(spec))
    ]
