"""Every prompt of the method, built as plain text, independent of the backend.

The short headers are the method's (they define it); the few-shot examples come from the seed pool, so a
domain seed set gives domain examples.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from selfinstruct.records import Task

GENERATION_HEADER = "Come up with a series of tasks:"
GENERATION_HEADER_CLASSIFICATION = (
    "Come up with a series of classification tasks. Try to specify the possible output labels when possible."
)
CLASSIFY_HEADER = "Can the following task be regarded as a classification task with finite output labels?"
CLASSIFY_QUESTION = "Is it classification?"
INPUT_FIRST_HEADER = (
    "Come up with examples for the following tasks. Try to generate multiple examples when possible. "
    "If the task doesn't require additional input, you can generate the output directly."
)
OUTPUT_FIRST_HEADER = (
    "Given the classification task definition and the class labels, generate an input that corresponds "
    "to each of the class labels. If the task doesn't require input, just generate the correct class label."
)


def generation_prompt(instructions: Sequence[str], *, classification_only: bool = False) -> str:
    """A numbered list of pool instructions ending with the next number for the LM to continue."""
    header = GENERATION_HEADER_CLASSIFICATION if classification_only else GENERATION_HEADER
    lines = [header]
    for number, instruction in enumerate(instructions, start=1):
        lines.append(f"{number}. {' '.join(instruction.split())}")
    lines.append(f"{len(instructions) + 1}.")
    return "\n".join(lines)


def sample_prompt_instructions(
    seed_instructions: Sequence[str],
    machine_instructions: Sequence[str],
    rng: random.Random,
    *,
    total: int = 8,
    machine: int = 2,
) -> list[str]:
    """`machine` from the generated pool (fewer while fewer exist, then more seeds), the rest from the
    seeds, shuffled."""
    n_machine = min(machine, len(machine_instructions))
    chosen = rng.sample(machine_instructions, n_machine) if n_machine else []
    n_seed = min(total - n_machine, len(seed_instructions))
    chosen += rng.sample(seed_instructions, n_seed)
    rng.shuffle(chosen)
    return chosen


def classification_examples(seeds: Sequence[Task], n_clf: int, n_other: int, seed: int) -> list[Task]:
    """The fixed few-shot examples of stage 2, drawn once per run from the seed pool."""
    rng = random.Random(f"{seed}:classify-examples")
    clf = [t for t in seeds if t.is_classification]
    other = [t for t in seeds if t.is_classification is False]
    chosen = rng.sample(clf, min(n_clf, len(clf))) + rng.sample(other, min(n_other, len(other)))
    rng.shuffle(chosen)
    return chosen


def classify_prompt(instruction: str, examples: Sequence[Task]) -> str:
    parts = [CLASSIFY_HEADER, ""]
    for task in examples:
        answer = "Yes" if task.is_classification else "No"
        parts += [f"Task: {_one_line(task.instruction)}", f"{CLASSIFY_QUESTION} {answer}", ""]
    parts += [f"Task: {_one_line(instruction)}", CLASSIFY_QUESTION]
    return "\n".join(parts)


def instance_examples(seeds: Sequence[Task], classification: bool, n: int, seed: int) -> list[Task]:
    """The fixed few-shot tasks of stage 3 (one set per mode), drawn once per run from the seed pool."""
    rng = random.Random(f"{seed}:instance-examples:{int(classification)}")
    pool = [t for t in seeds if bool(t.is_classification) == classification and t.instances]
    return rng.sample(pool, min(n, len(pool)))


def input_first_prompt(instruction: str, examples: Sequence[Task]) -> str:
    """Non-classification tasks: the LM writes an input, then its output."""
    parts = [INPUT_FIRST_HEADER, ""]
    for task in examples:
        parts.append(f"Task: {_one_line(task.instruction)}")
        if len(task.instances) == 1 and not task.instances[0].input.strip():
            parts += ["Output:", task.instances[0].output.strip(), ""]
            continue
        for number, inst in enumerate(task.instances, start=1):
            parts.append(f"Example {number}")
            if inst.input.strip():
                parts.append(f"Input: {inst.input.strip()}")
            parts += [f"Output: {inst.output.strip()}"]
        parts.append("")
    parts.append(f"Task: {_one_line(instruction)}")
    return "\n".join(parts) + "\n"


def output_first_prompt(instruction: str, examples: Sequence[Task]) -> str:
    """Classification tasks: the LM writes a class label, then an input for it (no label bias)."""
    parts = [OUTPUT_FIRST_HEADER, ""]
    for task in examples:
        parts.append(f"Task: {_one_line(task.instruction)}")
        for inst in task.instances:
            parts.append(f"Class label: {inst.output.strip()}")
            if inst.input.strip():
                parts.append(f"Input: {inst.input.strip()}")
        parts.append("")
    parts.append(f"Task: {_one_line(instruction)}")
    return "\n".join(parts) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())
