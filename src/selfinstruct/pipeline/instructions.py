"""Stage 1: bootstrapping instructions. Prompt sampling and reply processing; no I/O."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from selfinstruct.config import RunSettings
from selfinstruct.filters import KEPT, InstructionFilter, normalize_instruction
from selfinstruct.novelty.index import NoveltyIndex
from selfinstruct.parse import split_instructions
from selfinstruct.prompts import generation_prompt, sample_prompt_instructions
from selfinstruct.records import CandidateRecord, KeptInfo


@dataclass(frozen=True)
class GenPrompt:
    instructions: list[str]
    text: str


def build_generation_prompt(
    settings: RunSettings,
    seed_instructions: Sequence[str],
    machine_instructions: Sequence[str],
    request_id: int,
) -> GenPrompt:
    """Deterministic in (run seed, request number, pool state)."""
    rng = random.Random(f"{settings.seed}:gen:{request_id}")
    chosen = sample_prompt_instructions(
        seed_instructions,
        machine_instructions,
        rng,
        total=settings.generation.prompt_instructions,
        machine=settings.generation.prompt_machine_instructions,
    )
    text = generation_prompt(chosen, classification_only=settings.generation.classification_only)
    return GenPrompt(chosen, text)


class InstructionProcessor:
    """Turns one stage-1 reply into verdicts; kept candidates join the novelty pool at once."""

    def __init__(self, settings: RunSettings, index: NoveltyIndex) -> None:
        self.settings = settings
        self.index = index
        self.filter = InstructionFilter(settings.filters)

    def process(
        self, reply: str, finish_reason: str, first_number: int
    ) -> tuple[list[CandidateRecord], dict[int, KeptInfo]]:
        raw_items = split_instructions(reply, first_number)
        cut = finish_reason == "length"
        records: list[CandidateRecord] = []
        kept: dict[int, KeptInfo] = {}
        for position, raw in enumerate(raw_items):
            instruction = normalize_instruction(raw)
            if cut and (not self.settings.generation.keep_truncated or position == len(raw_items) - 1):
                records.append(
                    CandidateRecord(position, raw, instruction, "truncated", "reply hit max_tokens")
                )
                continue
            verdict = self.filter.check(instruction)
            if not verdict.kept:
                records.append(CandidateRecord(position, raw, instruction, verdict.verdict, verdict.detail))
                continue
            novelty = self.index.check_and_add(instruction)
            if not novelty.kept:
                nearest = novelty.most_similar[0].instruction if novelty.most_similar else None
                records.append(
                    CandidateRecord(position, raw, instruction, "novelty", nearest, novelty.max_score)
                )
                continue
            records.append(CandidateRecord(position, raw, instruction, KEPT, None, novelty.max_score))
            kept[position] = KeptInfo(novelty.most_similar, novelty.mean_score, novelty.max_score)
        return records, kept
