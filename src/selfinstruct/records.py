"""The records that flow between stages. Plain frozen dataclasses: cheap, typed, hashable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple


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


# -- rows of the run store (`selfinstruct.store`) -------------------------------------------------------
@dataclass(frozen=True)
class GenRequestRow:
    """A stage-1 request as stored: the instructions its prompt shows, the prompt, pending or done."""

    id: int
    prompt_instructions: list[str]
    prompt: str
    status: str


@dataclass(frozen=True)
class CandidateRecord:
    """A candidate instruction parsed from a stage-1 reply, with its verdict ('kept' or the filter that
    dropped it)."""

    position: int
    raw: str
    instruction: str
    verdict: str
    detail: str | None = None
    max_similarity: float | None = None


@dataclass(frozen=True)
class StoredCandidate:
    """A candidate as stored: its id, the stage-1 request and place in the reply it came from, its text
    before and after normalisation, and its verdict."""

    id: int
    request_id: int
    position: int
    raw: str
    instruction: str
    verdict: str
    detail: str | None
    max_similarity: float | None


@dataclass(frozen=True)
class CandidateSummary:
    """A candidate as the review page lists it: its verdict, and the kept instruction it became (`iid`
    None if dropped) with its classification and instances kept of parsed."""

    cid: int
    request_id: int
    instruction: str
    verdict: str
    detail: str | None
    max_similarity: float | None  # the candidate's, else its kept instruction's
    iid: int | None
    is_classification: bool | None
    n_kept: int
    n_parsed: int


@dataclass(frozen=True)
class KeptInfo:
    """What the novelty filter says of a kept candidate: the pool's closest instructions, best first,
    and the mean and max ROUGE-L against the pool."""

    most_similar: tuple[SimilarInstruction, ...]
    avg_similarity: float | None
    max_similarity: float


@dataclass(frozen=True)
class KeptInstruction:
    """A kept instruction (the generated part of the task pool) and how far stages 2 and 3 got with it."""

    id: int
    instruction: str
    most_similar: tuple[SimilarInstruction, ...]
    avg_similarity: float | None
    max_similarity: float
    is_classification: bool | None
    instances_status: str  # pending | done


@dataclass(frozen=True)
class StoredInstruction(KeptInstruction):
    """A kept instruction with the raw replies behind it, as the paper's files show it."""

    request_id: int  # the stage-1 request that produced it
    clf_reply: str | None
    instances_reply: str | None
    instances_finish: str | None


@dataclass(frozen=True)
class InstanceRecord:
    """An instance parsed from a stage-3 reply, with its verdict ('kept' or the filter that dropped it)."""

    position: int
    input: str
    output: str
    verdict: str
    detail: str | None = None


@dataclass(frozen=True)
class InstanceOfInstruction:
    """One stored instance with its kept instruction (an item of the review page's rating sample)."""

    instruction_id: int
    instance_id: int
    candidate_id: int
    instruction: str
    is_classification: bool | None
    input: str
    output: str


@dataclass(frozen=True)
class RunCounts:
    """How far a run got, counted in the store (the end-of-run table and the report read these)."""

    gen_requests_done: int
    gen_requests_truncated: int  # replies cut by max_tokens
    kept: int
    classified: int
    classification: int
    instructions_with_instances: int  # with at least one kept instance
    candidate_verdicts: dict[str, int]
    instance_verdicts: dict[str, int]


@dataclass(frozen=True)
class RatingItem:
    """A kept instance with its instruction, as a judge rates it."""

    instance_id: int
    instruction_id: int
    instruction: str
    input: str
    output: str


# The keys of the paper's three Table 2 questions (`selfinstruct.quality.questions` words them).
Question = Literal["valid_task", "input_ok", "output_ok"]


@dataclass(frozen=True)
class Answers:
    """One rater's answers on one item: True (yes), False (no) or None (unrated: no clear answer)."""

    valid_task: bool | None
    input_ok: bool | None
    output_ok: bool | None

    def get(self, key: Question) -> bool | None:
        value: bool | None = getattr(self, key)
        return value

    @property
    def all_yes(self) -> bool | None:
        """All three yes: True; any no: False; otherwise (some unrated, none no) None."""
        values = [self.valid_task, self.input_ok, self.output_ok]
        if any(v is False for v in values):
            return False
        return True if all(v is True for v in values) else None


@dataclass(frozen=True)
class EvalText:
    """One instance of an evaluation set as the contamination check compares it (`quality.contamination`):
    its task's instruction (SuperNI: the definition), the instance's input and its reference outputs.
    `set_name` names the evaluation set it came from (`user-oriented`, a SuperNI folder, a file)."""

    task: str
    item_id: str
    set_name: str
    instruction: str
    input: str
    references: tuple[str, ...]
