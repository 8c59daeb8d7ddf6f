"""A responder for the fake OpenAI server that answers each Self-Instruct prompt plausibly.

Replies are a pure function of the prompt (hash-seeded), so a run against a server that injects faults
must end with exactly the data of a run without them. Some replies are deliberately bad (too short,
blacklisted, near-duplicates, "Write a program", cut lists) so every filter has work to do.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from selfinstruct.prompts import (
    CLASSIFY_QUESTION,
    GENERATION_HEADER,
    GENERATION_HEADER_CLASSIFICATION,
    INPUT_FIRST_HEADER,
    OUTPUT_FIRST_HEADER,
)
from selfinstruct.quality.judge import JUDGE_PROMPT_END

_VERBS = [
    "Summarize",
    "Explain",
    "Rewrite",
    "Translate",
    "Describe",
    "Compare",
    "List",
    "Suggest",
    "Evaluate",
    "Outline",
    "Estimate",
    "Rank",
    "Critique",
    "Paraphrase",
    "Design",
    "Propose",
    "Identify",
    "Simplify",
]
_OBJECTS = [
    "the main argument of a news story",
    "a healthy weekly meal plan",
    "the rules of a board game",
    "a polite complaint to a landlord",
    "the causes of inflation",
    "a beginner's running schedule",
    "the plot of a famous novel",
    "the benefits of learning a second language",
    "a product description",
    "a short poem about autumn",
    "the steps to change a flat tire",
    "a budget for a student trip",
    "the differences between two programming languages",
    "a cover letter opening",
    "a riddle for children",
    "an email declining a meeting",
    "a summary of a scientific abstract",
    "tips for a job interview",
    "a recipe that uses leftover rice",
    "the history of the printing press",
    "a slogan for a bakery",
    "a workout without equipment",
    "the pros and cons of remote work",
    "a toast for a wedding",
]
_AUDIENCES = [
    "for a ten-year-old",
    "in exactly three sentences",
    "for a busy executive",
    "using bullet points",
    "in a formal tone",
    "with a touch of humour",
    "for someone new to the topic",
    "in under fifty words",
    "as a numbered list",
    "for a social media post",
]
_BAD = [
    "Draw a picture of a cat.",  # blacklist
    "Write a program that sorts numbers.",  # bad prefix
    "Be nice.",  # too short
    "- Describe your favourite holiday destination in detail.",  # punctuation start
    "Plot the sales data on a graph for the last quarter.",  # blacklist
]
_CLASSIFY_WORDS = ("classify", "category", "sentiment", "true or false", "positive or negative", "is it")
_LABELS = [("Positive", "Negative"), ("Yes", "No"), ("Spam", "Not spam"), ("Fact", "Opinion")]


def _rng(prompt: str, salt: str) -> random.Random:
    digest = hashlib.sha256(f"{salt}\x00{prompt}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _instruction(rng: random.Random) -> str:
    if rng.random() < 0.2:
        label_a, label_b = rng.choice(_LABELS)
        return f"Classify the following {rng.choice(_OBJECTS)} as {label_a} or {label_b}."
    return f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_AUDIENCES)}."


def _generation_reply(prompt: str) -> str:
    rng = _rng(prompt, "gen")
    items = []
    shown = [line.split(". ", 1)[1] for line in prompt.splitlines()[1:-1] if ". " in line]
    for _ in range(rng.randint(3, 7)):
        roll = rng.random()
        if roll < 0.15:
            items.append(rng.choice(_BAD))
        elif roll < 0.35 and shown:
            # A pool instruction, copied or barely changed: the novelty filter drops it.
            items.append(rng.choice(shown).rstrip(".") + rng.choice([".", " please.", " now."]))
        else:
            items.append(_instruction(rng))
    first = int(prompt.rstrip().rsplit("\n", 1)[-1].rstrip(".") or 9)
    lines = [f" {items[0]}"] + [f"{first + i}. {text}" for i, text in enumerate(items[1:], start=1)]
    return "\n".join(lines) + "\n\nThat is all."


def _task_of(prompt: str) -> str:
    last = [line for line in prompt.splitlines() if line.startswith("Task:")]
    return last[-1][len("Task:") :].strip() if last else ""


def _classify_reply(prompt: str) -> str:
    task = _task_of(prompt).lower()
    return " Yes" if any(word in task for word in _CLASSIFY_WORDS) else " No"


def _input_first_reply(prompt: str) -> str:
    rng = _rng(prompt, "inst")
    task = _task_of(prompt)
    if rng.random() < 0.3:
        return f"Output:\nHere is a careful answer to the task '{task[:40]}' with {rng.randint(2, 9)} points."
    blocks = []
    for number in range(1, rng.randint(2, 4) + 1):
        topic = rng.choice(_OBJECTS)
        blocks.append(f"Example {number}\nInput: Some text about {topic}.\nOutput: A response about {topic}.")
    if rng.random() < 0.5:
        blocks.append(f"Example {len(blocks) + 1}\nInput: It repeats itself.\nOutput: It repeats itself.")
    return "\n".join(blocks) + "\n\n"


def _output_first_reply(prompt: str) -> str:
    rng = _rng(prompt, "clf")
    labels = rng.choice(_LABELS)
    blocks = [f"Class label: {label}\nInput: A sentence that is clearly {label.lower()}." for label in labels]
    return "\n".join(blocks) + "\n\n"


def judge_reply(prompt: str) -> str:
    """A data judge's answers (the prompt ends with "1."): a mix of yes and no per question, and one reply
    in ten without a clear answer, as a weak judge gives."""
    rng = _rng(prompt, "judge")
    if rng.random() < 0.1:
        return " It is hard to say without more context."
    answers = ["Yes" if rng.random() < share else "No" for share in (0.9, 0.8, 0.6)]
    lines = [
        f"{n}. {answer} - {'fine' if answer == 'Yes' else 'a problem'}" for n, answer in enumerate(answers, 1)
    ]
    return " " + "\n".join(lines)[3:]


def self_instruct_responder(prompt: str, body: dict[str, Any]) -> str:
    """Pick the reply kind from the prompt's header, as a real LM would from its context."""
    if prompt.endswith(JUDGE_PROMPT_END):
        return judge_reply(prompt)
    if CLASSIFY_QUESTION in prompt.rsplit("\n", 1)[-1]:
        return _classify_reply(prompt)
    if prompt.startswith((GENERATION_HEADER, GENERATION_HEADER_CLASSIFICATION)):
        return _generation_reply(prompt)
    if prompt.startswith(INPUT_FIRST_HEADER):
        return _input_first_reply(prompt)
    if prompt.startswith(OUTPUT_FIRST_HEADER):
        return _output_first_reply(prompt)
    return "I am not sure what you mean."


# Syllables of made-up topic words: 20^3 = 8,000 words, so the scale responder's instructions seldom share
# more than their frame and pass the novelty filter at any scale (the paper's 52,000 included).
_SYLLABLES: tuple[str, ...] = (
    *("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa"),
    *("bel", "dor", "fin", "gar", "hul", "jex", "kor", "lun", "mar", "qua"),
)


def _topic_word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(3))


def _scale_generation_reply(prompt: str) -> str:
    rng = _rng(prompt, "scale")
    items = [
        f"{rng.choice(_VERBS)} the {_topic_word(rng)} {_topic_word(rng)} of the {_topic_word(rng)} "
        f"{_topic_word(rng)} using {_topic_word(rng)} {_topic_word(rng)}."
        for _ in range(rng.randint(3, 7))
    ]
    first = int(prompt.rstrip().rsplit("\n", 1)[-1].rstrip(".") or 9)
    lines = [f" {items[0]}"] + [f"{first + i}. {text}" for i, text in enumerate(items[1:], start=1)]
    return "\n".join(lines) + "\n\nThat is all."


def scale_responder(prompt: str, body: dict[str, Any]) -> str:
    """`self_instruct_responder` with an unbounded supply of new instructions: for runs at the paper's scale
    (the plain responder's few thousand combinations stop passing the novelty filter after a few hundred)."""
    if prompt.startswith((GENERATION_HEADER, GENERATION_HEADER_CLASSIFICATION)):
        return _scale_generation_reply(prompt)
    return self_instruct_responder(prompt, body)
