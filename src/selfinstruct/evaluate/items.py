"""What one evaluation runs on and what it records per item."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvalItem:
    """One prompt to answer: an instance of a task, with the references its answer is scored against.

    `instruction` is the task's definition (SuperNI) or instruction (seed format); the review page shows
    it with the input, the prediction and the references for human A-D rating. `index` is the instance's
    position in its task and `ordinal` its position among all instances of the source (before any
    `--limit` or `--tasks-filter`): predictions made elsewhere are matched by them."""

    id: str
    task: str
    category: str
    instruction: str
    input: str
    references: tuple[str, ...]
    prompt: str
    english: bool = True
    index: int = 0
    ordinal: int = 0
