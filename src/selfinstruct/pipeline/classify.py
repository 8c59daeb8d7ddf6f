"""Stage 2: is a task a classification task? The few-shot examples are fixed per run."""

from __future__ import annotations

from collections.abc import Sequence

from selfinstruct.config import RunSettings
from selfinstruct.parse import parse_yes_no
from selfinstruct.prompts import classification_examples, classify_prompt
from selfinstruct.records import Task


class Classifier:
    def __init__(self, settings: RunSettings, seeds: Sequence[Task]) -> None:
        c = settings.classify
        self.examples = classification_examples(
            seeds, c.examples_classification, c.examples_other, settings.seed
        )

    def prompt(self, instruction: str) -> str:
        return classify_prompt(instruction, self.examples)

    @staticmethod
    def parse(reply: str) -> bool:
        return parse_yes_no(reply)
