"""SuperNI (Super-NaturalInstructions v2) task files and the standard zero-shot prompt.

A task file is one JSON object with `Definition` (a list of strings), `Positive Examples`,
`Categories`, `Output_language` and `Instances` (`id`, `input`, `output`: a list of references).
A split file (`test_tasks.txt`) lists task names, one per line, in evaluation order.
"""

from __future__ import annotations

import fnmatch
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.evaluate.items import EvalItem, ItemSet, ItemSpec
from selfinstruct.evaluate.template import PromptTemplate

SPLIT_FILE = "test_tasks.txt"
# The fields a user's --template may use.
TEMPLATE_FIELDS = frozenset({"definition", "instruction", "input", "task", "category", "examples"})
# SuperNI reports exact match for its classification-like test categories and ROUGE-L for the others.
CATEGORY_METRIC: dict[str, str] = {
    "Textual Entailment": "exact_match",
    "Cause Effect Classification": "exact_match",
    "Coreference Resolution": "exact_match",
    "Dialogue Act Recognition": "exact_match",
    "Answerability Classification": "exact_match",
    "Word Analogy": "exact_match",
    "Overlap Extraction": "rougeL",
    "Keyword Tagging": "rougeL",
    "Question Rewriting": "rougeL",
    "Title Generation": "rougeL",
    "Data to Text": "rougeL",
    "Grammar Error Correction": "rougeL",
}


@dataclass(frozen=True)
class SuperNIExample:
    input: str
    output: str


@dataclass(frozen=True)
class SuperNIInstance:
    id: str
    input: str
    references: tuple[str, ...]


@dataclass(frozen=True)
class SuperNITask:
    name: str
    definition: str
    categories: tuple[str, ...]
    positive_examples: tuple[SuperNIExample, ...]
    instances: tuple[SuperNIInstance, ...]
    english: bool = True

    @property
    def category(self) -> str:
        return self.categories[0] if self.categories else "Uncategorized"


def _expect_str(value: object, path: Path, what: str) -> str:
    if not isinstance(value, str):
        raise InputFileError(path, None, f"{what} must be a string, got {type(value).__name__}")
    return value


def parse_superni_task(name: str, data: object, path: Path) -> SuperNITask:
    """Validate one decoded task file. Raises InputFileError naming the file on a malformed one."""
    if not isinstance(data, dict):
        raise InputFileError(path, None, "a SuperNI task file must hold a JSON object")
    definition = data.get("Definition")
    if isinstance(definition, list) and definition:
        # SuperNI v2 keeps the definition in a one-element list; the official collator uses the first.
        definition = definition[0]
    definition = _expect_str(definition, path, "Definition")
    categories = data.get("Categories") or []
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        raise InputFileError(path, None, "Categories must be a list of strings")
    raw_examples = data.get("Positive Examples") or []
    if not isinstance(raw_examples, list):
        raise InputFileError(path, None, "Positive Examples must be a list")
    examples = []
    for example in raw_examples:
        if not isinstance(example, dict):
            raise InputFileError(path, None, "each positive example must be an object")
        examples.append(
            SuperNIExample(
                input=_expect_str(example.get("input"), path, "positive example input"),
                output=_expect_str(example.get("output"), path, "positive example output"),
            )
        )
    raw_instances = data.get("Instances")
    if not isinstance(raw_instances, list):
        raise InputFileError(path, None, "Instances must be a list")
    instances = []
    for index, instance in enumerate(raw_instances):
        if not isinstance(instance, dict):
            raise InputFileError(path, None, f"instance {index} must be an object")
        outputs = instance.get("output")
        if isinstance(outputs, str):
            outputs = [outputs]
        if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
            raise InputFileError(path, None, f"instance {index}: output must be a non-empty list of strings")
        instance_id = instance.get("id")
        instances.append(
            SuperNIInstance(
                id=instance_id if isinstance(instance_id, str) and instance_id else f"{name}-{index}",
                input=_expect_str(instance.get("input"), path, f"instance {index} input"),
                references=tuple(outputs),
            )
        )
    languages = data.get("Output_language") or ["English"]
    english = not isinstance(languages, list) or all(lang == "English" for lang in languages)
    return SuperNITask(
        name=name,
        definition=definition,
        categories=tuple(categories),
        positive_examples=tuple(examples),
        instances=tuple(instances),
        english=english,
    )


def load_superni_task(path: Path) -> SuperNITask:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"{path}: no such SuperNI task file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise InputFileError(path, line, f"not valid JSON ({exc.__class__.__name__})") from exc
    return parse_superni_task(path.stem, data, path)


_REGEX_HINTS = (".*", ".+", "^", "$", "|", "\\", "(", "+", "{")


def _matches_one(name: str, pattern: str) -> bool:
    if pattern.startswith("re:"):
        regex = pattern[3:]
    elif any(hint in pattern for hint in _REGEX_HINTS):
        regex = pattern
    elif any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    else:
        regex = re.escape(pattern)
    try:
        return re.search(regex, name) is not None
    except re.error as exc:
        raise UserError(f"--tasks-filter: bad regular expression {regex!r} ({exc})") from exc


def matches_filter(name: str, pattern: str | None) -> bool:
    """Whether a task name passes `--tasks-filter`: comma-separated patterns, each a glob matching the
    whole name (`task1*`, `*entailment*`), a regex searched in it (`re:` prefix, or anything with regex
    syntax such as `.*` or `|`), or else a plain substring. No pattern keeps every task."""
    if not pattern:
        return True
    parts = [p.strip() for p in pattern.split(",") if p.strip()]
    return not parts or any(_matches_one(name, part) for part in parts)


def discover_task_names(task_dir: Path) -> list[str]:
    """Task names in evaluation order: `test_tasks.txt` in the folder or its parent if present
    (SuperNI's layout keeps `splits/` beside `tasks/`), else every `*.json` file, sorted."""
    for candidate in (
        task_dir / SPLIT_FILE,
        task_dir.parent / SPLIT_FILE,
        task_dir.parent / "splits" / "default" / SPLIT_FILE,
    ):
        if candidate.is_file():
            return read_split_file(candidate)
    return sorted(p.stem for p in task_dir.glob("*.json"))


def read_split_file(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name = line.strip()
        if name and not name.startswith("#"):
            names.append(name.removesuffix(".json"))
    return names


def resolve_task_dir(path: Path) -> Path:
    """Accept the SuperNI data folder (holding `tasks/`) or the `tasks/` folder itself."""
    if not path.exists():
        raise UserError(f"{path}: no such folder")
    if path.is_dir() and (path / "tasks").is_dir():
        return path / "tasks"
    if not path.is_dir():
        raise UserError(f"{path}: expected a folder of SuperNI task files")
    return path


def load_superni_tasks(
    path: Path,
    split_file: Path | None = None,
    tasks_filter: str | None = None,
) -> list[SuperNITask]:
    """Load the tasks named by the split file (or all task files), keeping those matching the filter."""
    task_dir = resolve_task_dir(path)
    names = read_split_file(split_file) if split_file else discover_task_names(task_dir)
    names = [n for n in names if matches_filter(n, tasks_filter)]
    if not names:
        raise UserError(f"{path}: no SuperNI task matches" + (f" {tasks_filter!r}" if tasks_filter else ""))
    tasks = []
    for name in names:
        task_path = task_dir / f"{name}.json"
        if not task_path.is_file():
            raise UserError(f"{task_path}: task listed in the split file is missing")
        tasks.append(load_superni_task(task_path))
    return tasks


def _end_with_punctuation(text: str) -> str:
    # The official collator appends a period unless the text already ends with punctuation.
    return text if text and text[-1] in string.punctuation else text + "."


def format_positive_examples(task: SuperNITask, count: int) -> str:
    """The official collator's positive-example block (empty for count 0)."""
    blocks = []
    for index, example in enumerate(task.positive_examples[:count], start=1):
        block = f" Positive Example {index} -\n"
        block = _end_with_punctuation(block + f"Input: {example.input.strip()}") + "\n"
        block = _end_with_punctuation(block + f" Output: {example.output.strip()}") + "\n"
        blocks.append(block + "\n")
    return "".join(blocks)


def build_superni_prompt(task: SuperNITask, instance: SuperNIInstance, pos_examples: int = 0) -> str:
    """SuperNI's standard prompt: definition, optional positive examples, then the instance input and
    the output cue. Stripped at the end, as the GPT-3 evaluation of SuperNI did, so it ends in `Output:`."""
    definition = _end_with_punctuation("Definition: " + task.definition.strip()) + "\n\n"
    task_input = _end_with_punctuation(
        "Now complete the following example -\nInput: " + instance.input.strip()
    )
    task_input += "\nOutput: "
    return (definition + format_positive_examples(task, pos_examples) + task_input).strip()


def superni_items(
    tasks: list[SuperNITask],
    limit: int | None = None,
    pos_examples: int = 0,
    template: PromptTemplate | None = None,
) -> list[EvalItem]:
    """One evaluation item per instance (the first `limit` of each task, as the official test split
    takes the first 100), with its prompt built by the standard format or the user's template."""
    items = []
    ordinal = 0
    for task in tasks:
        instances = task.instances if limit is None else task.instances[:limit]
        first = ordinal
        ordinal += len(task.instances)
        for number, instance in enumerate(instances):
            if template is None:
                prompt = build_superni_prompt(task, instance, pos_examples)
            else:
                prompt = template.render(
                    definition=task.definition.strip(),
                    instruction=task.definition.strip(),
                    input=instance.input.strip(),
                    task=task.name,
                    category=task.category,
                    examples=format_positive_examples(task, pos_examples),
                )
            items.append(
                EvalItem(
                    id=instance.id,
                    task=task.name,
                    category=task.category,
                    instruction=task.definition,
                    input=instance.input,
                    references=instance.references,
                    prompt=prompt,
                    english=task.english,
                    index=number,
                    ordinal=first + number,
                )
            )
    return items


def load_items(spec: ItemSpec) -> ItemSet:
    """The `superni` evaluation's items: `spec.extra` may give `split` (a split file) and `pos_examples`."""
    split = spec.extra.get("split")
    pos_examples = int(spec.extra.get("pos_examples", 0))
    tasks = load_superni_tasks(spec.source, split_file=split, tasks_filter=spec.tasks_filter)
    items = superni_items(tasks, limit=spec.limit, pos_examples=pos_examples, template=spec.template)
    return ItemSet(items, [task.name for task in tasks], options={"pos_examples": pos_examples})
