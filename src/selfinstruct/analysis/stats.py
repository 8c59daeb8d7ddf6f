"""The paper's Table 1 statistics, length distributions, the filter funnel and ROUGE-L to the nearest seed."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from selfinstruct.analysis.sources import GeneratedTask
from selfinstruct.filters import CANDIDATE_VERDICTS, INSTANCE_VERDICTS
from selfinstruct.novelty import NOVELTY_THRESHOLD
from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.records import Task

# The order the pipeline applies its filters in, so the funnel reads top to bottom; unknown verdicts follow.
CANDIDATE_FILTER_ORDER = CANDIDATE_VERDICTS
INSTANCE_FILTER_ORDER = INSTANCE_VERDICTS


def word_count(text: str) -> int:
    """Words as the paper counts them: whitespace-separated pieces."""
    return len(text.split())


def _mean(values: Sequence[int]) -> float:
    return sum(values) / len(values) if values else 0.0


@dataclass(frozen=True)
class Table1:
    instructions: int
    classification: int
    non_classification: int
    unknown_classification: int
    instances: int
    empty_input_instances: int
    avg_instruction_words: float
    avg_nonempty_input_words: float
    avg_output_words: float

    def rows(self) -> list[tuple[str, str]]:
        """(label, formatted value) in the paper's order."""
        rows = [
            ("# of instructions", f"{self.instructions:,}"),
            ("- # of classification instructions", f"{self.classification:,}"),
            ("- # of non-classification instructions", f"{self.non_classification:,}"),
        ]
        if self.unknown_classification:
            rows.append(("- # not yet classified", f"{self.unknown_classification:,}"))
        rows += [
            ("# of instances", f"{self.instances:,}"),
            ("- # of instances with empty input", f"{self.empty_input_instances:,}"),
            ("ave. instruction length (in words)", f"{self.avg_instruction_words:.1f}"),
            ("ave. non-empty input length (in words)", f"{self.avg_nonempty_input_words:.1f}"),
            ("ave. output length (in words)", f"{self.avg_output_words:.1f}"),
        ]
        return rows


@dataclass(frozen=True)
class Lengths:
    """Word counts per instruction, per non-empty input and per output."""

    instruction: list[int]
    nonempty_input: list[int]
    output: list[int]


def lengths(tasks: Sequence[GeneratedTask | Task]) -> Lengths:
    return Lengths(
        instruction=[word_count(t.instruction) for t in tasks],
        nonempty_input=[word_count(i.input) for t in tasks for i in t.instances if i.input.strip()],
        output=[word_count(i.output) for t in tasks for i in t.instances],
    )


def table1(tasks: Sequence[GeneratedTask | Task]) -> Table1:
    """Every task counts as an instruction; instances are those attached to it (the kept ones for a run)."""
    lens = lengths(tasks)
    instances = [i for t in tasks for i in t.instances]
    return Table1(
        instructions=len(tasks),
        classification=sum(1 for t in tasks if t.is_classification is True),
        non_classification=sum(1 for t in tasks if t.is_classification is False),
        unknown_classification=sum(1 for t in tasks if t.is_classification is None),
        instances=len(instances),
        empty_input_instances=sum(1 for i in instances if not i.input.strip()),
        avg_instruction_words=_mean(lens.instruction),
        avg_nonempty_input_words=_mean(lens.nonempty_input),
        avg_output_words=_mean(lens.output),
    )


@dataclass(frozen=True)
class FunnelStep:
    verdict: str
    count: int
    share: float  # of all items


def funnel(verdicts: dict[str, int], order: Sequence[str]) -> list[FunnelStep]:
    """Dropped items per filter in pipeline order, then 'kept'."""
    total = sum(verdicts.values())
    known = [v for v in order if v in verdicts]
    rest = sorted((v for v in verdicts if v not in order and v != "kept"), key=lambda v: -verdicts[v])
    steps = [*known, *rest]
    if "kept" in verdicts:
        steps.append("kept")
    return [FunnelStep(v, verdicts[v], verdicts[v] / total if total else 0.0) for v in steps]


def nearest_seed_scores(instructions: Sequence[str], seeds: Sequence[str]) -> list[float]:
    """Each instruction's highest ROUGE-L F with any seed instruction (the paper's Figure 3 data).
    top_k=1 makes the index report the true maximum, not just the first score above the threshold."""
    index = NoveltyIndex(threshold=NOVELTY_THRESHOLD, top_k=1)
    for seed in seeds:
        index.add(seed)
    return [index.check(text).max_score for text in instructions]


def sample_rows(tasks: Sequence[GeneratedTask], n: int, seed: int) -> list[GeneratedTask]:
    """A reproducible random sample, in source order."""
    if n >= len(tasks):
        return list(tasks)
    picked = sorted(random.Random(seed).sample(range(len(tasks)), n))
    return [tasks[i] for i in picked]
