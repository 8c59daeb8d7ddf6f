"""The paper's 252 user-oriented evaluation tasks, shipped as the built-in task set `user-oriented`, and
the guard that keeps them out of training data (the authors ask that the set is not trained on).

It lives with the seed sets (a task file of the same format, in `seeds/data/` with its NOTICE.md), below
both of its users: the seed loader refuses it as seeds, and `evaluate` offers it as a task set.

The set is recognised by name (`user-oriented`, or a file named `user_oriented_instructions.jsonl`) and by
content: an instruction of the set, compared after collapsing whitespace and lower-casing, found as a
task's instruction or at the start of a prompt (after a template's `Task: ` or similar lead). Only its
distinctive instructions count (more than 6 words: 245 of the 252); the 7 short ones ("Answer the
following question.", "Solve this equation.") are ordinary tasks that seed sets and generated data hold
too (the paper's own seed set has the first)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from selfinstruct.errors import UserError

USER_ORIENTED = "user-oriented"
USER_ORIENTED_FILE = "user_oriented_instructions.jsonl"
_NAMES = frozenset(
    {USER_ORIENTED, "user_oriented", "user-oriented-instructions", "user_oriented_instructions"}
)
# Leads a stage-4 template may put before the instruction (paper: "Task: "; project: two more).
_PROMPT_LEADS = ("", "task: ", "instruction: ", "here is a task: ")
_KEY_CHARS = 20  # the shortest instruction of the set has 20 characters
_MIN_WORDS = 7  # shorter instructions are too generic to tell the set from other data
FORCE_FLAG = "--allow-eval-data"


def user_oriented_path() -> Path:
    return Path(__file__).resolve().parent / "data" / USER_ORIENTED_FILE


def builtin_eval_sets() -> dict[str, Path]:
    """Evaluation task sets shipped with the package (usable as `eval tasks --tasks NAME`)."""
    return {USER_ORIENTED: user_oriented_path()}


def is_user_oriented_name(spec: str | Path) -> bool:
    """Whether a `--data`/`--seeds` value names the set (the built-in name or the paper's file name)."""
    text = str(spec).strip()
    return text.lower() in _NAMES or Path(text).name == USER_ORIENTED_FILE


def normalise(text: str) -> str:
    return " ".join(text.split()).lower()


@cache
def _instructions() -> dict[str, tuple[str, ...]]:
    """The set's normalised instructions, indexed by their first characters for prompt look-ups."""
    index: dict[str, list[str]] = {}
    with user_oriented_path().open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            instruction = normalise(json.loads(line)["instruction"])
            if len(instruction.split()) >= _MIN_WORDS:
                index.setdefault(instruction[:_KEY_CHARS], []).append(instruction)
    return {key: tuple(values) for key, values in index.items()}


def matches_instruction(instruction: str) -> bool:
    """Whether an instruction is one of the set's (whitespace and case aside)."""
    text = normalise(instruction)
    return text in _instructions().get(text[:_KEY_CHARS], ())


def matches_prompt(prompt: str) -> bool:
    """Whether a training prompt starts with one of the set's instructions (after a template lead)."""
    text = normalise(prompt)
    index = _instructions()
    for lead in _PROMPT_LEADS:
        if not text.startswith(lead):
            continue
        rest = text[len(lead) :]
        for full in index.get(rest[:_KEY_CHARS], ()):
            # The whole instruction, not the start of a longer one.
            if rest.startswith(full) and rest[len(full) : len(full) + 1] in ("", " "):
                return True
    return False


def count_matches(instructions: Iterable[str] = (), prompts: Iterable[str] = ()) -> int:
    """How many of the given instructions and prompts come from the set."""
    return sum(map(matches_instruction, instructions)) + sum(map(matches_prompt, prompts))


def refuse_for_training(
    option: str, source: str | Path, matches: int | None = None, force_flag: str | None = FORCE_FLAG
) -> UserError:
    """The one-line error for the set (named, or `matches` of its tasks found) used as training data;
    `force_flag` is the option that overrides the refusal where the command has one."""
    found = "is" if matches is None else f"holds {matches} instruction(s) of"
    hint = f"; pass {force_flag} to use it anyway" if force_flag else ""
    return UserError(
        f"{option} {source}: {found} the paper's user-oriented evaluation set, which its authors ask not to "
        f"be used for training{hint}"
    )
