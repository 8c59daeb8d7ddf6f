"""Stage 3: instances, output-first for classification tasks and input-first for the rest."""

from __future__ import annotations

import random
from collections.abc import Sequence

from selfinstruct.config import RunSettings
from selfinstruct.filters import KEPT, CopyCheck, Verdict, filter_instances
from selfinstruct.parse import parse_input_first, parse_output_first
from selfinstruct.prompts import input_first_prompt, instance_examples, output_first_prompt
from selfinstruct.records import InstanceRecord, Task


class InstanceGenerator:
    def __init__(self, settings: RunSettings, seeds: Sequence[Task]) -> None:
        self.settings = settings
        n = settings.instances.examples
        self.clf_examples = instance_examples(seeds, True, n, settings.seed)
        self.other_examples = instance_examples(seeds, False, n, settings.seed)
        self.copies: dict[bool, CopyCheck | None] = {
            mode: CopyCheck(
                [i for t in examples for i in t.instances],
                threshold=settings.instances.copy_threshold,
                ngram=settings.instances.copy_ngram,
            )
            if settings.instances.copy_filter
            else None
            for mode, examples in ((True, self.clf_examples), (False, self.other_examples))
        }

    def prompt(self, instruction: str, classification: bool) -> str:
        if classification:
            return output_first_prompt(instruction, self.clf_examples)
        return input_first_prompt(instruction, self.other_examples)

    def process(
        self, instruction_id: int, reply: str, finish_reason: str, classification: bool
    ) -> list[InstanceRecord]:
        cut = finish_reason == "length"
        parsed = parse_output_first(reply, cut) if classification else parse_input_first(reply, cut)
        verdicts = filter_instances(parsed, self.copies[classification])
        # At most `max_instances` kept, sampled at random (deterministically per task).
        kept_positions = [i for i, v in enumerate(verdicts) if v.kept]
        limit = self.settings.instances.max_instances
        if len(kept_positions) > limit:
            rng = random.Random(f"{self.settings.seed}:instances:{instruction_id}")
            chosen = set(rng.sample(kept_positions, limit))
            verdicts = [
                Verdict("over_limit") if v.kept and i not in chosen else v for i, v in enumerate(verdicts)
            ]
        return [
            InstanceRecord(i, p.input, p.output, v.verdict, v.detail)
            for i, (p, v) in enumerate(zip(parsed, verdicts, strict=True))
        ]


__all__ = ["KEPT", "InstanceGenerator"]
