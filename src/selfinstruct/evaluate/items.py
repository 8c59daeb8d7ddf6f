"""What one evaluation runs on: the items to answer, and what an evaluation builds them from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfinstruct.evaluate.template import PromptTemplate


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


@dataclass(frozen=True)
class ItemSpec:
    """What an evaluation builds its items from: `source` is `--tasks`; `extra` holds the settings that
    only one evaluation has (SuperNI: `split`, `pos_examples`)."""

    source: Path
    limit: int | None = None
    tasks_filter: str | None = None
    template: PromptTemplate | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemSet:
    """An evaluation's items and what scoring given predictions needs to know of their source."""

    items: list[EvalItem]
    # Every task of the source (a predictions row naming a filtered-out task is skipped, not refused).
    task_names: list[str]
    # Rows without an id may answer the items in the source's line order (the paper's prediction files).
    line_order: bool = False
    group_by: str = "category"  # what the report's per-group table groups by
    options: dict[str, object] = field(default_factory=dict)  # settings of its own the report records
