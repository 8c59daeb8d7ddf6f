"""Stage 4: turn tasks and their instances into prompt/completion pairs for fine-tuning.

Each instance is rendered with one of several templates picked at random (7 for instances with an
input, 6 without), so the tuned model does not overfit one prompt shape. Seed tasks are included, as
in the paper; duplicate (prompt, completion) pairs are dropped and the result is shuffled.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.errors import InputFileError
from selfinstruct.jsonl import read_jsonl
from selfinstruct.records import FinetuneExample, Instance, Task

DEFAULT_EOS = "<|endoftext|>"


@dataclass(frozen=True)
class Template:
    """`prompt` is formatted with instruction/input; the completion is `lead + output + eos`."""

    prompt: str
    lead: str = " "


# Our own wording; the first two of each list are the shapes method.md quotes from the paper.
TEMPLATES_WITH_INPUT: tuple[Template, ...] = (
    Template("{instruction}\nInput: {input}\nOutput:"),
    Template("Task: {instruction}\n\n{input}\n\n", lead=""),
    Template("Instruction: {instruction}\nInput: {input}\nResponse:"),
    Template("{instruction}\n\n{input}\n\nAnswer:"),
    Template("{instruction}\n{input}\n\n", lead=""),
    Template("Task: {instruction}\nInput: {input}\nAnswer:"),
    Template("Here is a task: {instruction}\n\nInput:\n{input}\n\nOutput:\n", lead=""),
)
TEMPLATES_WITHOUT_INPUT: tuple[Template, ...] = (
    Template("{instruction}\nOutput:"),
    Template("Task: {instruction}\n\n", lead=""),
    Template("Instruction: {instruction}\nResponse:"),
    Template("{instruction}\n\nAnswer:"),
    Template("{instruction}\n\n", lead=""),
    Template("Here is a task: {instruction}\n\nOutput:\n", lead=""),
)

# A field label at the start of a line: "Sentence:", "Review text:" (at most three words).
# "http://" and "10:30" are not labels.
_LABEL = re.compile(r"^[ \t]*([A-Za-z][A-Za-z0-9_]*(?: [A-Za-z0-9_]+){0,2}):(?!//)", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")


def collapse_blank_lines(text: str) -> str:
    """Blank lines inside an input are removed: the templates use blank lines as separators."""
    return _BLANK_LINES.sub("\n", text.strip())


def strip_single_field_prefix(text: str) -> str:
    """Remove a leading `field:` label when it is the only label in the input; otherwise keep the text.

    Inputs like "Sentence: The cat sat." read the same without the label, while inputs with several
    labels ("Question: ... Options: ...") need them to stay understandable.
    """
    labels = {m.group(1).lower() for m in _LABEL.finditer(text)}
    first = _LABEL.match(text)
    if len(labels) != 1 or first is None:
        return text
    rest = text[first.end() :].strip()
    return rest or text


def encode_instance(
    instruction: str, inst: Instance, rng: random.Random, eos: str = DEFAULT_EOS
) -> FinetuneExample:
    """Render one instance with a randomly chosen template; the completion ends with `eos`."""
    instruction = instruction.strip()
    text = inst.input.strip()
    # Draw the coin even without an input so the rng sequence does not depend on the data's shape.
    drop_prefix = rng.random() < 0.5
    if text:
        if drop_prefix:
            text = strip_single_field_prefix(text)
        text = collapse_blank_lines(text)
        template = rng.choice(TEMPLATES_WITH_INPUT)
    else:
        template = rng.choice(TEMPLATES_WITHOUT_INPUT)
    prompt = template.prompt.format(instruction=instruction, input=text)
    completion = f"{template.lead}{inst.output.strip()}{eos}"
    return FinetuneExample(prompt=prompt, completion=completion)


def _encode_tasks(tasks: Iterable[Task], rng: random.Random, eos: str) -> Iterator[FinetuneExample]:
    for task in tasks:
        for inst in task.instances:
            if inst.output.strip():  # nothing to learn from an empty output
                yield encode_instance(task.instruction, inst, rng, eos)


def dedupe(examples: Iterable[FinetuneExample]) -> list[FinetuneExample]:
    """Drop repeated (prompt, completion) pairs, keeping the first occurrence's position."""
    return list(dict.fromkeys(examples))


def prepare_finetune_data(
    tasks: Iterable[Task],
    *,
    seed: int = 0,
    seed_tasks: Iterable[Task] = (),
    eos: str = DEFAULT_EOS,
) -> list[FinetuneExample]:
    """Encode seed tasks then generated tasks, drop duplicate pairs, shuffle; deterministic in `seed`."""
    rng = random.Random(seed)
    examples = dedupe(_encode_tasks([*seed_tasks, *tasks], rng, eos))
    rng.shuffle(examples)
    return examples


def write_finetune_jsonl(examples: Iterable[FinetuneExample], path: Path | str) -> int:
    """Write one `{"prompt", "completion"}` object per line; returns the number written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps({"prompt": ex.prompt, "completion": ex.completion}, ensure_ascii=False))
            fh.write("\n")
            count += 1
    return count


def _string_field(obj: dict[str, object], key: str, path: Path, line: int, *, required: bool) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        what = "missing" if value is None else f"not a string ({type(value).__name__})"
        raise InputFileError(path, line, f'field "{key}" is {what}')
    return value


def _parse_instances(obj: dict[str, object], path: Path, line: int) -> tuple[Instance, ...]:
    """Either a flat `input`/`output` object or a seed-style `instances` list."""
    if "instances" not in obj:
        return (
            Instance(
                input=_string_field(obj, "input", path, line, required=False),
                output=_string_field(obj, "output", path, line, required=True),
            ),
        )
    raw = obj["instances"]
    if not isinstance(raw, list) or not all(isinstance(i, dict) for i in raw):
        raise InputFileError(path, line, 'field "instances" must be a list of objects')
    return tuple(
        Instance(
            input=_string_field(i, "input", path, line, required=False),
            output=_string_field(i, "output", path, line, required=True),
        )
        for i in raw
    )


def read_finetune_data(
    path: Path | str,
    *,
    seed: int = 0,
    seed_tasks: Iterable[Task] = (),
    eos: str = DEFAULT_EOS,
) -> list[FinetuneExample]:
    """Read training data from JSONL in one of two formats (decided per file by its first record).

    - prompt/completion (`selfinstruct export`): used as written; seed tasks whose instruction does not
      already appear in some prompt are encoded and added, then the whole list is shuffled.
    - instruction/input/output (the paper's `all_generated_instances.jsonl`, one instance per line; a
      seed-style `instances` list also works): grouped into tasks and encoded by `prepare_finetune_data`.
    """
    path = Path(path)
    examples: list[FinetuneExample] = []
    tasks: dict[str, list[Instance]] = {}
    fmt: str | None = None
    for number, _, obj in read_jsonl(path):
        line_fmt = "pc" if "prompt" in obj or "completion" in obj else "iio" if "instruction" in obj else None
        if line_fmt is None:
            raise InputFileError(
                path, number, 'expected "prompt"/"completion" or "instruction"/"input"/"output" fields'
            )
        if fmt is None:
            fmt = line_fmt
        elif fmt != line_fmt:
            raise InputFileError(path, number, "mixes prompt/completion and instruction/output records")
        if fmt == "pc":
            examples.append(
                FinetuneExample(
                    prompt=_string_field(obj, "prompt", path, number, required=True),
                    completion=_string_field(obj, "completion", path, number, required=True),
                )
            )
        else:
            instruction = _string_field(obj, "instruction", path, number, required=True)
            if not instruction.strip():
                raise InputFileError(path, number, 'field "instruction" is empty')
            tasks.setdefault(instruction.strip(), []).extend(_parse_instances(obj, path, number))
    if fmt is None:
        raise InputFileError(path, None, "no records in file")

    if fmt == "iio":
        generated = [Task(instruction=k, instances=tuple(v)) for k, v in tasks.items()]
        return prepare_finetune_data(generated, seed=seed, seed_tasks=seed_tasks, eos=eos)

    missing = missing_seed_tasks(examples, seed_tasks)
    if not missing:
        return examples
    rng = random.Random(seed)
    merged = dedupe([*examples, *_encode_tasks(missing, rng, eos)])
    rng.shuffle(merged)
    return merged


def missing_seed_tasks(examples: Iterable[FinetuneExample], seed_tasks: Iterable[Task]) -> list[Task]:
    """Seed tasks whose instruction appears in no prompt (an exported file may already include them)."""
    seed_list = list(seed_tasks)
    if not seed_list:
        return []
    haystack = "\n\x00".join(ex.prompt for ex in examples)
    return [t for t in seed_list if t.instruction.strip() not in haystack]
