"""Evaluation on any file in the seed format (the paper's user-oriented set uses it too): one JSON object
per line with `instruction` and `instances` (`input`, `output`), optionally `id`, `name`,
`is_classification` and `motivation_app` (the user-oriented set's grouping; reports group by it).

Built-in sets: `user-oriented` (the paper's 252 tasks, shipped in the package) and the seed sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.evaluate.items import EvalItem, ItemSet, ItemSpec
from selfinstruct.evaluate.superni import matches_filter
from selfinstruct.evaluate.template import PromptTemplate
from selfinstruct.jsonl import read_jsonl
from selfinstruct.records import Task
from selfinstruct.seeds import resolve_seed_source, task_from_record
from selfinstruct.seeds.user_oriented import builtin_eval_sets

# The fields a user's --template may use.
TEMPLATE_FIELDS = frozenset({"instruction", "definition", "input", "task", "category"})


@dataclass(frozen=True)
class EvalTask:
    """A task to evaluate and the group its items are reported under (`motivation_app`, when given)."""

    task: Task
    group: str | None = None


def resolve_task_source(spec: Path | str) -> Path:
    """An existing path, else a built-in evaluation set (`user-oriented`), else a built-in seed set."""
    text = str(spec).strip()
    if not Path(text).expanduser().exists():
        builtin = builtin_eval_sets().get(text.lower())
        if builtin is not None:
            return builtin
    return resolve_seed_source(text)


def load_task_file(spec: Path | str) -> list[EvalTask]:
    """Read a seed-format JSONL file, or a built-in set by name (`user-oriented`, `default`, ...).

    Each line goes through the seed loader's parser in its evaluation mode (lenient where seeds are strict:
    evaluation sets such as the paper's 252 user-oriented tasks carry no `is_classification`). Blank lines
    are skipped; a bad line names the file and line number."""
    path = resolve_task_source(spec)
    tasks = []
    for number, _, obj in read_jsonl(path):
        group = obj.get("motivation_app")
        task = task_from_record(obj, path, number, evaluation=True)
        tasks.append(EvalTask(task, group if isinstance(group, str) else None))
    if not tasks:
        raise InputFileError(path, None, "no tasks in the file")
    return tasks


def task_label(task: Task, index: int) -> str:
    return task.name or task.id or f"task{index + 1}"


def task_category(task: Task, group: str | None = None) -> str:
    """The report group: `motivation_app` where the file gives one, else the classification flag."""
    if group:
        return group
    if task.is_classification is None:
        return "all"
    return "classification" if task.is_classification else "non-classification"


def build_task_prompt(instruction: str, text_input: str) -> str:
    """The plain prompt a fine-tuned Self-Instruct model knows best: instruction, input, output cue
    (one of the fine-tuning templates); the input line is left out when the input is empty."""
    if text_input.strip():
        return f"{instruction.strip()}\nInput: {text_input.strip()}\nOutput:"
    return f"{instruction.strip()}\nOutput:"


def task_items(
    tasks: list[EvalTask],
    limit: int | None = None,
    tasks_filter: str | None = None,
    template: PromptTemplate | None = None,
) -> list[EvalItem]:
    items = []
    seen: set[str] = set()
    ordinal = 0
    for index, entry in enumerate(tasks):
        task = entry.task
        category = task_category(task, entry.group)
        name = task_label(task, index)
        first = ordinal
        ordinal += len(task.instances)
        if not matches_filter(name, tasks_filter):
            continue
        instances = task.instances if limit is None else task.instances[:limit]
        for number, instance in enumerate(instances):
            item_id = f"{task.id or name}-{number}"
            if item_id in seen:
                # Ids pair predictions across runs in `eval compare`; make duplicates unique by position.
                item_id = f"{item_id}@{index}"
            seen.add(item_id)
            if template is None:
                prompt = build_task_prompt(task.instruction, instance.input)
            else:
                prompt = template.render(
                    instruction=task.instruction.strip(),
                    definition=task.instruction.strip(),
                    input=instance.input.strip(),
                    task=name,
                    category=category,
                )
            items.append(
                EvalItem(
                    id=item_id,
                    task=name,
                    category=category,
                    instruction=task.instruction,
                    input=instance.input,
                    references=(instance.output,),
                    prompt=prompt,
                    index=number,
                    ordinal=first + number,
                )
            )
    if not items:
        raise UserError("no task matches" + (f" {tasks_filter!r}" if tasks_filter else ""))
    return items


def source_files(spec: ItemSpec) -> list[Path]:
    """The task file an evaluation reads (a report written over it would destroy it)."""
    return [resolve_task_source(spec.source)]


def load_items(spec: ItemSpec) -> ItemSet:
    """The `tasks` evaluation's items; a file giving `motivation_app` (the user-oriented set) is grouped
    by it. Given predictions may follow the file's order (the paper's prediction files have no id)."""
    loaded = load_task_file(spec.source)
    items = task_items(loaded, limit=spec.limit, tasks_filter=spec.tasks_filter, template=spec.template)
    names = [task_label(entry.task, index) for index, entry in enumerate(loaded)]
    group_by = "motivation_app" if any(entry.group for entry in loaded) else "category"
    return ItemSet(items, names, line_order=True, group_by=group_by)
