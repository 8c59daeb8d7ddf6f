"""Stage 4: turn tasks and their instances into prompt/completion pairs for fine-tuning.

The default is the paper's encoding (its `prepare_for_finetuning.py`, written out in the method notes):
at most 5 instances per generated task (a random sample), the seed tasks' instances added after them,
each input cleaned in a branch taken with probability 0.5 (one distinct field name before a colon: drop
everything up to the first colon; `\\n\\n` -> `\\n`), one of 7 templates (with an input) or 6 (without)
drawn at random, duplicate pairs dropped, the list shuffled. Random draws happen in the paper's order
(sample per task, then per instance the 0.5 coin and the template, then the shuffle), so the paper's
seed (123) and the same tasks in the same order give the paper's file. `--templates project` keeps this
project's earlier wording as a named alternative.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from selfinstruct.errors import InputFileError, UserError
from selfinstruct.jsonl import read_jsonl
from selfinstruct.lm.factory import BACKENDS, eos_text
from selfinstruct.lm.settings import LMSettings
from selfinstruct.paths import atomic_write, check_output_file, refuse_inputs
from selfinstruct.quality.gate import GateResult, MinQuality, apply_gate
from selfinstruct.records import EvalText, FinetuneExample, Instance, Task

if TYPE_CHECKING:
    from selfinstruct.store import RunReader

# GPT-3's end-of-text, which the paper's script writes; the default when no tokenizer is known.
PAPER_EOS = "<|endoftext|>"
DEFAULT_EOS = PAPER_EOS
# The paper's script calls random.seed(123).
PAPER_SEED = 123
MAX_INSTANCES_PER_TASK = 5


@dataclass(frozen=True)
class Template:
    """`prompt` is formatted with instruction/input; the completion is `lead + output + eos`."""

    prompt: str
    lead: str = " "


# The paper's 13 templates, in the paper's order (the order matters: `rng.choice` picks by index).
PAPER_TEMPLATES_WITH_INPUT: tuple[Template, ...] = (
    Template("{instruction}\nInput: {input}\nOutput:"),
    Template("{instruction}\n\nInput: {input}\n\nOutput:"),
    Template("Task: {instruction}\nInput: {input}\nOutput:"),
    Template("{instruction}\n\n{input}\n\nOutput:"),
    Template("{instruction}\n\n{input}\n\n", lead=""),
    Template("{instruction}\n{input}\n\n", lead=""),
    Template("Task: {instruction}\n\n{input}\n\n", lead=""),
)
PAPER_TEMPLATES_WITHOUT_INPUT: tuple[Template, ...] = (
    Template("{instruction} Output:"),
    Template("{instruction}\nOutput:"),
    Template("{instruction}\n\nOutput:"),
    Template("{instruction}\n", lead=""),
    Template("{instruction}\n\n", lead=""),
    Template("Task: {instruction}\n\n", lead=""),
)
# This project's earlier wording (`--templates project`): not the paper's, kept as an option.
PROJECT_TEMPLATES_WITH_INPUT: tuple[Template, ...] = (
    Template("{instruction}\nInput: {input}\nOutput:"),
    Template("Task: {instruction}\n\n{input}\n\n", lead=""),
    Template("Instruction: {instruction}\nInput: {input}\nResponse:"),
    Template("{instruction}\n\n{input}\n\nAnswer:"),
    Template("{instruction}\n{input}\n\n", lead=""),
    Template("Task: {instruction}\nInput: {input}\nAnswer:"),
    Template("Here is a task: {instruction}\n\nInput:\n{input}\n\nOutput:\n", lead=""),
)
PROJECT_TEMPLATES_WITHOUT_INPUT: tuple[Template, ...] = (
    Template("{instruction}\nOutput:"),
    Template("Task: {instruction}\n\n", lead=""),
    Template("Instruction: {instruction}\nResponse:"),
    Template("{instruction}\n\nAnswer:"),
    Template("{instruction}\n\n", lead=""),
    Template("Here is a task: {instruction}\n\nOutput:\n", lead=""),
)
# Kept for callers of the old names: the default (paper) lists.
TEMPLATES_WITH_INPUT = PAPER_TEMPLATES_WITH_INPUT
TEMPLATES_WITHOUT_INPUT = PAPER_TEMPLATES_WITHOUT_INPUT

_COLON_WORD = re.compile(r"(\w+):")


def paper_clean_input(text: str, branch: bool) -> str:
    """The paper's input cleaning; `branch` is its 0.5 coin. Outside the branch the input is unchanged.

    In the branch: when the words written directly before a colon are one distinct word (once or more),
    everything up to the first colon goes; the text is stripped; every `\\n\\n` becomes `\\n` (one pass of
    str.replace, so three newlines become two)."""
    if not branch:
        return text
    if len(set(_COLON_WORD.findall(text))) == 1:
        text = text.split(":", 1)[1]
    return text.strip().replace("\n\n", "\n")


# The project's own cleaning (`--templates project`): a field label at the start of a line ("Sentence:",
# "Review text:"; at most three words; "http://" and "10:30" are not labels), blank lines always removed.
_LABEL = re.compile(r"^[ \t]*([A-Za-z][A-Za-z0-9_]*(?: [A-Za-z0-9_]+){0,2}):(?!//)", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+")


def collapse_blank_lines(text: str) -> str:
    """Blank lines inside an input are removed (project templates use blank lines as separators)."""
    return _BLANK_LINES.sub("\n", text.strip())


def strip_single_field_prefix(text: str) -> str:
    """Remove a leading `field:` label when it is the only label in the input; otherwise keep the text."""
    labels = {m.group(1).lower() for m in _LABEL.finditer(text)}
    first = _LABEL.match(text)
    if len(labels) != 1 or first is None:
        return text
    rest = text[first.end() :].strip()
    return rest or text


def project_clean_input(text: str, branch: bool) -> str:
    text = text.strip()
    if branch and text:
        text = strip_single_field_prefix(text)
    return collapse_blank_lines(text)


@dataclass(frozen=True)
class TemplateSet:
    """A named stage-4 encoding: its templates and its input cleaning (given the 0.5 coin)."""

    name: str
    with_input: tuple[Template, ...]
    without_input: tuple[Template, ...]
    clean_input: Callable[[str, bool], str]
    description: str


PAPER_TEMPLATES = TemplateSet(
    "paper",
    PAPER_TEMPLATES_WITH_INPUT,
    PAPER_TEMPLATES_WITHOUT_INPUT,
    paper_clean_input,
    "the paper's 13 templates and input cleaning",
)
PROJECT_TEMPLATES = TemplateSet(
    "project",
    PROJECT_TEMPLATES_WITH_INPUT,
    PROJECT_TEMPLATES_WITHOUT_INPUT,
    project_clean_input,
    "this project's earlier wording: other cue words, line-start field labels, blank lines always removed",
)
TEMPLATE_SETS: dict[str, TemplateSet] = {t.name: t for t in (PAPER_TEMPLATES, PROJECT_TEMPLATES)}
DEFAULT_TEMPLATES = "paper"


def get_template_set(name: str | TemplateSet) -> TemplateSet:
    """A template set by name (`paper`, `project`); a user error names the choices."""
    if isinstance(name, TemplateSet):
        return name
    found = TEMPLATE_SETS.get(name.strip().lower())
    if found is None:
        raise UserError(f"--templates: unknown template set {name!r}; choose from {', '.join(TEMPLATE_SETS)}")
    return found


def encode_instance(
    instruction: str,
    inst: Instance,
    rng: random.Random,
    eos: str = DEFAULT_EOS,
    templates: str | TemplateSet = DEFAULT_TEMPLATES,
) -> FinetuneExample:
    """Clean the input (0.5 coin), draw a template, render; the completion ends with `eos`.

    The coin is drawn for every instance, with or without an input, as the paper's script does."""
    tset = get_template_set(templates)
    text = tset.clean_input(inst.input, rng.random() < 0.5).strip()
    template = rng.choice(tset.with_input if text else tset.without_input)
    prompt = template.prompt.format(instruction=instruction.strip(), input=text)
    return FinetuneExample(prompt=prompt, completion=f"{template.lead}{inst.output.strip()}{eos}")


def _with_output(task: Task) -> list[Instance]:
    # Nothing to learn from an empty output (stage 3 and the seed loader already drop them).
    return [inst for inst in task.instances if inst.output.strip()]


def select_instances(
    tasks: Iterable[Task],
    rng: random.Random,
    *,
    seed_tasks: Iterable[Task] = (),
    max_instances: int | None = MAX_INSTANCES_PER_TASK,
) -> list[tuple[str, Instance]]:
    """(instruction, instance) pairs to encode: a random sample of at most `max_instances` per generated
    task (drawn even when a task has fewer, as the paper's `random.sample` does), then every instance of
    every seed task."""
    chosen: list[tuple[str, Instance]] = []
    for task in tasks:
        instances = _with_output(task)
        if max_instances is not None:
            instances = rng.sample(instances, min(len(instances), max_instances))
        chosen.extend((task.instruction, inst) for inst in instances)
    for task in seed_tasks:
        chosen.extend((task.instruction, inst) for inst in _with_output(task))
    return chosen


def _encode_pairs(
    pairs: Iterable[tuple[str, Instance]], rng: random.Random, eos: str, templates: TemplateSet
) -> Iterator[FinetuneExample]:
    for instruction, inst in pairs:
        yield encode_instance(instruction, inst, rng, eos, templates)


def dedupe(examples: Iterable[FinetuneExample]) -> list[FinetuneExample]:
    """Drop repeated (prompt, completion) pairs, keeping the first occurrence's position."""
    return list(dict.fromkeys(examples))


def prepare_finetune_data(
    tasks: Iterable[Task],
    *,
    seed: int = PAPER_SEED,
    seed_tasks: Iterable[Task] = (),
    eos: str = DEFAULT_EOS,
    templates: str | TemplateSet = DEFAULT_TEMPLATES,
    max_instances: int | None = MAX_INSTANCES_PER_TASK,
    rng: random.Random | None = None,
) -> list[FinetuneExample]:
    """Sample generated instances, add the seed tasks', encode, drop duplicates, shuffle; deterministic in
    `seed` (one `random.Random(seed)`, or the given `rng`, used in the paper's order)."""
    tset = get_template_set(templates)
    rng = rng if rng is not None else random.Random(seed)
    pairs = select_instances(tasks, rng, seed_tasks=seed_tasks, max_instances=max_instances)
    examples = dedupe(_encode_pairs(pairs, rng, eos, tset))
    rng.shuffle(examples)
    return examples


def write_finetune_jsonl(examples: Iterable[FinetuneExample], path: Path | str) -> int:
    """Write one `{"prompt", "completion"}` object per line, through a temporary file in the same folder
    and a rename (a crash never leaves half a file); returns the number written."""
    count = 0
    with atomic_write(Path(path)) as fh:
        for ex in examples:
            fh.write(json.dumps({"prompt": ex.prompt, "completion": ex.completion}, ensure_ascii=False))
            fh.write("\n")
            count += 1
    return count


def eos_for_model(backend: str | None, model: str | None) -> str | None:
    """The end-of-sequence text of a run's model (its stored backend and model) where its backend knows it
    offline, else None: the embedded Gemma's `<eos>`, a GGUF's or a local transformers model's own; an
    OpenAI-compatible server does not say."""
    if backend not in BACKENDS:
        return None
    return eos_text(LMSettings.model_validate({"backend": backend, "model": model}))


def read_finetune_data(
    path: Path | str,
    *,
    seed: int = PAPER_SEED,
    seed_tasks: Iterable[Task] = (),
    eos: str = DEFAULT_EOS,
    templates: str | TemplateSet = DEFAULT_TEMPLATES,
) -> list[FinetuneExample]:
    """Read training data from JSONL in one of two formats (decided per file by its first record).

    - prompt/completion (`selfinstruct export`): used as written; seed tasks whose instruction does not
      already appear in some prompt are encoded and added, then the whole list is shuffled.
    - instruction/input/output (the paper's `all_generated_instances.jsonl`, one instance per line; a
      seed-style `instances` list also works): grouped into tasks and encoded by `prepare_finetune_data`.
    """
    path = Path(path)
    tset = get_template_set(templates)
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
        return prepare_finetune_data(generated, seed=seed, seed_tasks=seed_tasks, eos=eos, templates=tset)

    missing = missing_seed_tasks(examples, seed_tasks)
    if not missing:
        return examples
    rng = random.Random(seed)
    pairs = select_instances((), rng, seed_tasks=missing)
    merged = dedupe([*examples, *_encode_pairs(pairs, rng, eos, tset)])
    rng.shuffle(merged)
    return merged


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


def missing_seed_tasks(examples: Iterable[FinetuneExample], seed_tasks: Iterable[Task]) -> list[Task]:
    """Seed tasks whose instruction appears in no prompt (an exported file may already include them)."""
    seed_list = list(seed_tasks)
    if not seed_list:
        return []
    haystack = "\n\x00".join(ex.prompt for ex in examples)
    return [t for t in seed_list if t.instruction.strip() not in haystack]


PREPARE_SECTION = "prepare"  # a project-wide YAML file nests these settings under this key


class PrepareSettings(BaseModel):
    """The settings of stage 4 for a run (`selfinstruct prepare`): the encoding, the quality gate and the
    decontamination. Every default is the paper's except where the run knows better (its seed, its EOS)."""

    model_config = ConfigDict(extra="forbid")

    out: Path | None = Field(None, description="Output JSONL. Default: RUN_DIR/export/finetune.jsonl.")
    include_seeds: bool = Field(True, description="Include the seed tasks' instances (the paper did).")
    templates: Literal["paper", "project"] = Field(
        "paper",
        description="paper (the paper's 13 templates and input cleaning) or project (this project's earlier "
        "wording; see docs/pipeline.md).",
    )
    eos: str | None = Field(
        None,
        description="End-of-sequence text ending each completion. Default: the run's model's, where its "
        "tokenizer is known offline (embedded Gemma: <eos>), else the paper's <|endoftext|>.",
    )
    seed: int | None = Field(
        None, description="Seed of the sampling, templates and shuffle. Default: the run's (the paper: 123)."
    )
    min_quality: MinQuality = Field(
        "auto",
        description="The quality gate on a judge's Table 2 answers (selfinstruct rate): all keeps instances "
        "with three yes, output those with a valid task and a correct output, none every kept instance (the "
        "paper); auto: all when a judge rated every kept instance, else none.",
    )
    gate_judge: str | None = Field(
        None, description="Whose answers the gate reads. Default: the judge that rated most."
    )
    decontaminate: list[str] = Field(
        default_factory=list,
        description="Leave out what overlaps this evaluation set (repeatable; user-oriented, a SuperNI "
        "folder or a seed-format file): every instance sharing a 13-gram with it and every instance of an "
        "instruction with ROUGE-L F > 0.7 to one of its instructions (selfinstruct contamination shows "
        "them). The seed tasks, your own, are not checked.",
    )


@dataclass(frozen=True)
class PrepareResult:
    path: Path
    rows: int
    eos: str
    eos_source: str
    seed: int
    templates: str
    gate: GateResult = field(default_factory=lambda: GateResult("none"))
    # `decontaminate`: the evaluation sets checked, and the instances (of those the gate let through) and
    # instructions left out for overlapping them.
    decontaminated_sets: tuple[str, ...] = ()
    decontaminated: int = 0
    decontaminated_instructions: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "rows": self.rows,
            "eos": self.eos,
            "eos_source": self.eos_source,
            "seed": self.seed,
            "templates": self.templates,
            "gate": self.gate.as_dict(),
            "decontamination": {
                "sets": list(self.decontaminated_sets),
                "instances": self.decontaminated,
                "instructions": self.decontaminated_instructions,
            },
        }

    def describe_decontamination(self) -> str:
        """One line for the command's output."""
        if not self.decontaminated_sets:
            return "decontamination: none"
        return (
            f"decontamination against {', '.join(self.decontaminated_sets)}: dropped {self.decontaminated} "
            f"instance(s), {self.decontaminated_instructions} instruction(s) left without any; seed tasks "
            "not checked"
        )


def prepare_run(
    run_dir: Path,
    out: Path | None = None,
    *,
    templates: str = DEFAULT_TEMPLATES,
    eos: str | None = None,
    seed: int | None = None,
    include_seeds: bool = True,
    min_quality: str = "auto",
    gate_judge: str | None = None,
    decontaminate: Sequence[EvalText] = (),
    record: bool = True,
) -> PrepareResult:
    """Stage 4 for a run directory: encode its kept tasks (and seeds) and write them atomically.

    `eos` defaults to the run's model's end-of-sequence text where it is known offline, else the paper's
    `<|endoftext|>`; `seed` to the run's own seed. `min_quality` is the quality gate (`quality.gate`):
    only the instances a judge's answers let through are encoded. `decontaminate` (evaluation sets'
    instances) also leaves out every generated instance `quality.contamination` flags against them, and
    every instance of a flagged instruction; the seed tasks are the user's own and are not checked. An
    output path that is the run's database (or its WAL files) or a directory is refused before anything is
    written. `record` writes what was done beside the data (`record_path`)."""
    from selfinstruct.store import DB_NAME, RunStore

    tset = get_template_set(templates)
    run_dir = Path(run_dir)
    target = out if out is not None else run_dir / "export" / "finetune.jsonl"
    db = run_dir / DB_NAME
    check_output_file(target)
    refuse_inputs(target, [db, db.with_name(DB_NAME + "-wal"), db.with_name(DB_NAME + "-shm")])
    store = RunStore.open(run_dir)
    try:
        settings = store.get_meta("settings")
        settings = settings if isinstance(settings, dict) else {}
        lm = settings.get("lm")
        if not isinstance(lm, dict):
            lm = {}
        if seed is None:
            seed = int(settings.get("seed", PAPER_SEED))
        if eos is not None:
            eos_text, source = eos, "--eos"
        else:
            found = eos_for_model(lm.get("backend"), lm.get("model"))
            eos_text, source = (found, "the run's model") if found else (DEFAULT_EOS, "the paper's (GPT-3)")
        gate = apply_gate(store, min_quality, gate_judge)
        passed, dropped, emptied = _decontaminate(store, gate.passed, decontaminate)
        examples = prepare_finetune_data(
            store.generated_tasks(only=passed),
            seed=seed,
            seed_tasks=store.seed_tasks() if include_seeds else (),
            eos=eos_text,
            templates=tset,
        )
    finally:
        store.close()
    rows = write_finetune_jsonl(examples, target)
    sets = tuple(dict.fromkeys(t.set_name for t in decontaminate))
    result = PrepareResult(target, rows, eos_text, source, seed, tset.name, gate, sets, dropped, emptied)
    if record:  # not in an export folder: a dataset holds its data and its card
        with atomic_write(record_path(target)) as handle:
            json.dump(result.as_dict(), handle, indent=1)
    return result


def record_path(data: Path) -> Path:
    """Where stage 4 records what it did beside the data it wrote (finetune.jsonl -> finetune.prepare.json):
    what the gate and the decontamination left out, for the reports that show the data's making."""
    return data.with_name(data.name.split(".", 1)[0] + ".prepare.json")


def _decontaminate(
    run: RunReader, passed: frozenset[int] | None, eval_texts: Sequence[EvalText]
) -> tuple[frozenset[int] | None, int, int]:
    """What passes once the instances flagged against `eval_texts` are out (None: every kept instance),
    how many of the passing instances that removed, and how many instructions it left with none."""
    if not eval_texts:
        return passed, 0, 0
    # Imported here: the novelty index's compiled kernels are slow to load, and most runs do not ask.
    from selfinstruct.quality.contamination import check_contamination, generated_from_run, ids_to_drop

    data = generated_from_run(run)
    report = check_contamination(data.instructions, data.instances, eval_texts)
    drop = ids_to_drop(data.instances, report)
    before = passed if passed is not None else frozenset(i.id for i in data.instances)
    after = before - drop
    owner = {i.id: i.instruction_id for i in data.instances}
    emptied = len({owner[i] for i in before} - {owner[i] for i in after})
    return after, len(before) - len(after), emptied
