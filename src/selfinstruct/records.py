"""The records that flow between stages. Plain frozen dataclasses: cheap, typed, hashable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True)
class Instance:
    """One input/output pair of a task; `input` may be empty."""

    input: str
    output: str


@dataclass(frozen=True)
class Task:
    """An instruction with its instances. Seeds carry `id` and `name`; generated tasks may not."""

    instruction: str
    instances: tuple[Instance, ...] = ()
    is_classification: bool | None = None
    id: str = ""
    name: str = ""


@dataclass(frozen=True)
class FinetuneExample:
    """Stage 4 output: one prompt/completion pair for training (loss on the completion only)."""

    prompt: str
    completion: str


class SimilarInstruction(NamedTuple):
    """A pool instruction and its ROUGE-L F with a candidate (a named tuple: the novelty filter makes ten
    per candidate, and a tuple is the cheapest record Python builds)."""

    instruction: str
    score: float


@dataclass(frozen=True)
class NoveltyVerdict:
    """Answer of the novelty index for one candidate."""

    kept: bool
    max_score: float
    most_similar: tuple[SimilarInstruction, ...] = ()
    mean_score: float | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)
