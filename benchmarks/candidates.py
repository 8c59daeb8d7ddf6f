"""Deterministic generator of realistic candidate instructions for the novelty benchmarks and tests.

Candidates look like machine-generated Self-Instruct instructions: task templates filled from word
lists plus a Zipf-distributed long tail of content words (names, topics), recombined halves of two
instructions, and a configurable share of near-duplicates (an earlier candidate with one or two small
edits: a word replaced, dropped, inserted or moved, punctuation or case changed), which is what the
novelty filter exists to catch. Same (n, seed, near_dup) -> same list, on any machine.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

TEMPLATES = (
    "Generate a list of {num} {adj} {things} for {audience}.",
    "Write a {form} about {topic} for {audience}.",
    "Given a {doc}, {action} the {target}.",
    "Explain {topic} to {audience} in {num} sentences.",
    "Classify the following {doc} as {label_a} or {label_b}.",
    "Summarize the {doc} about {topic} in one paragraph.",
    "Suggest {num} {adj} ways to {goal}.",
    "Translate the {doc} into {language}.",
    "Rewrite the {doc} so that it sounds more {adj} and {adj2}.",
    "What are the main differences between {topic} and {topic2}?",
    "Identify the {target} in the given {doc} and explain why.",
    "Create a {form} that helps {audience} {goal}.",
    "Find the {target} of the {doc} and output it as a {form}.",
    "Is the following statement about {topic} true or false?",
    "Come up with a {adj} title for a {form} about {topic}.",
    "Give me {num} tips on how to {goal} when you are {situation}.",
    "Describe a {adj} {thing} that {audience} would like, and say why.",
    "Sort the given list of {things} by {criterion}.",
    "Answer the question about {topic} using the {doc} below.",
    "Write a {adj} reply to this {doc} from {audience}.",
    "Convert the {doc} into a {form} with {num} items.",
    "Plan a {num}-day trip to {place} for {audience} on a {adj} budget.",
    "Detect whether the {doc} contains {target}; answer yes or no.",
    "Make a {form} comparing {things} by {criterion}.",
    "Why do {audience} often struggle to {goal}?",
    "Design a {adj} experiment to test {topic}.",
    "Correct the grammar mistakes in the {doc}.",
    "Predict the {target} of the {doc} about {topic}.",
    "Recommend {num} {things} similar to {name}'s favourite {thing}.",
    "Tell me a {adj} story about {name} and {topic}.",
    "List the pros and cons of {topic} for {audience}.",
    "Write a {num}-line {form} in the style of {name} about {topic}.",
    "Compose an {form} asking {audience} to {goal}.",
    "Estimate how long it takes to {goal} and explain the main steps.",
    "Pretend you are {name}, a {role}, and answer questions about {topic}.",
    "Turn the following {doc} into a multiple choice question with {num} options.",
    "Which of the following {things} is the odd one out, and why?",
    "Provide a step-by-step guide to {goal} for {audience}.",
    "Paraphrase the {doc} without changing its {target}.",
    "Generate {num} {adj} questions that a {role} might ask about {topic}.",
    "Output the {target} of each {doc} in the list, one per line.",
    "How would a {role} explain {topic} to {audience}?",
    "Fill in the blanks in the {doc} with suitable {things}.",
    "Decide if the two {doc}s below have the same {target}.",
    "Draft a {adj} {form} announcing {topic} to {audience}.",
    "Invent a {adj} board game about {topic} and describe its rules.",
    "Rate the {doc} from 1 to {num} for {criterion} and justify the score.",
    "Suggest a {adj} name for a {thing} shop that sells {things}.",
    "Explain the joke in the {doc} to {audience}.",
    "Write a SQL query that returns the {num} most expensive {things} from a table.",
)

PREFIXES = (
    "Using the information below,",
    "In your own words,",
    "Without using technical terms,",
    "For a school project,",
    "Step by step,",
    "In a {adj} tone,",
    "As a {role},",
    "Briefly,",
    "Based on the {doc},",
    "If possible,",
)

SUFFIXES = (
    ", focusing on {tail} and {things}",
    " in under {num} words",
    " and explain your reasoning",
    " using a {adj} tone",
    " for {audience}",
    ", citing {tail} as an example",
    " with {num} examples",
    " and keep it {adj}",
    ", then give a {adj} summary",
    " as a {form}",
)

WORDS: dict[str, tuple[str, ...]] = {
    "num": ("three", "five", "ten", "2", "3", "4", "5", "7", "10", "20"),
    "adj": (
        "creative",
        "simple",
        "funny",
        "formal",
        "healthy",
        "cheap",
        "short",
        "detailed",
        "polite",
        "persuasive",
        "friendly",
        "professional",
        "unusual",
        "practical",
        "clear",
        "modern",
        "classic",
        "scientific",
        "casual",
        "positive",
        "negative",
        "neutral",
        "original",
        "concise",
        "useful",
    ),
    "things": (
        "recipes",
        "books",
        "movies",
        "questions",
        "exercises",
        "names",
        "slogans",
        "gifts",
        "hobbies",
        "songs",
        "jokes",
        "apps",
        "snacks",
        "games",
        "activities",
        "words",
        "sentences",
        "products",
        "cities",
        "animals",
        "habits",
        "tools",
        "interview questions",
        "startup ideas",
        "date ideas",
    ),
    "thing": ("recipe", "book", "movie", "song", "game", "gadget", "place", "meal", "car", "plant"),
    "audience": (
        "kids",
        "students",
        "beginners",
        "a five year old",
        "my manager",
        "senior citizens",
        "a customer",
        "software engineers",
        "teachers",
        "parents",
        "tourists",
        "a new employee",
        "my friend",
        "doctors",
        "investors",
        "high school students",
        "a job interviewer",
        "a landlord",
    ),
    "form": (
        "poem",
        "short story",
        "email",
        "tweet",
        "essay",
        "table",
        "letter",
        "blog post",
        "song",
        "haiku",
        "dialogue",
        "speech",
        "summary",
        "product description",
        "list",
        "report",
        "riddle",
    ),
    "doc": (
        "sentence",
        "paragraph",
        "article",
        "review",
        "email",
        "tweet",
        "text",
        "conversation",
        "code",
        "news headline",
        "product description",
        "essay",
        "message",
        "recipe",
        "poem",
        "passage",
    ),
    "action": (
        "extract",
        "highlight",
        "count",
        "remove",
        "replace",
        "find",
        "list",
        "explain",
        "rank",
        "underline",
        "identify",
        "correct",
    ),
    "target": (
        "sentiment",
        "main idea",
        "named entities",
        "verbs",
        "keywords",
        "topic",
        "tone",
        "errors",
        "author's intent",
        "nouns",
        "numbers",
        "dates",
        "emotion",
        "conclusion",
        "language",
    ),
    "label_a": ("positive", "spam", "fact", "formal", "relevant", "true", "toxic", "question"),
    "label_b": ("negative", "not spam", "opinion", "informal", "irrelevant", "false", "safe", "statement"),
    "goal": (
        "save money",
        "sleep better",
        "learn a language",
        "stay focused",
        "lose weight",
        "make friends",
        "cook faster",
        "write clearly",
        "manage time",
        "reduce stress",
        "prepare for an exam",
        "find a job",
        "start a business",
        "travel cheaply",
        "learn to code",
        "stay motivated",
    ),
    "language": ("French", "Spanish", "German", "Chinese", "Japanese", "plain English", "Italian"),
    "criterion": ("price", "size", "popularity", "length", "date", "weight", "difficulty", "rating"),
    "situation": ("busy", "on vacation", "working from home", "tired", "a student", "new to the city"),
    "role": (
        "teacher",
        "doctor",
        "lawyer",
        "chef",
        "pilot",
        "historian",
        "data scientist",
        "gardener",
        "journalist",
        "coach",
        "nurse",
        "detective",
        "tour guide",
        "banker",
        "farmer",
        "poet",
    ),
    "place": ("Paris", "Tokyo", "New York", "the mountains", "the beach", "Rome", "a small village"),
}

# Long-tail content words: invented, pronounceable, Zipf-distributed (real instruction sets have tens of
# thousands of rare names and topics).
_SYLLABLES = ("ka", "lo", "mi", "ter", "van", "dor", "el", "sa", "ru", "pen", "qui", "zo", "bar", "ni", "tes")


def _tail_word(rank: int) -> str:
    parts = []
    x = rank + 1
    while x:
        x, r = divmod(x, len(_SYLLABLES))
        parts.append(_SYLLABLES[r])
    return "".join(parts)


class _Tail:
    """Zipf(1) sampler over an unbounded list of invented words, by inverse CDF on a fixed table."""

    def __init__(self, rng: random.Random, size: int = 200_000) -> None:
        self._rng = rng
        weights = [1.0 / (r + 1) for r in range(size)]
        total = sum(weights)
        acc = 0.0
        self._cdf = []
        for w in weights:
            acc += w / total
            self._cdf.append(acc)

    def word(self) -> str:
        import bisect

        return _tail_word(bisect.bisect_left(self._cdf, self._rng.random()))


def _values(rng: random.Random, tail: _Tail) -> dict[str, str]:
    values = {key: rng.choice(words) for key, words in WORDS.items()}
    for key in ("things", "thing", "doc", "target", "form", "audience"):
        if rng.random() < 0.5:  # a rare qualifier, as real instructions name specific things
            values[key] = f"{tail.word()} {values[key]}"
    values["adj2"] = rng.choice(WORDS["adj"])
    values["topic"] = f"{tail.word()} {rng.choice(_DOMAINS)}"
    values["topic2"] = f"{tail.word()} {tail.word()}"
    values["name"] = tail.word().capitalize()
    values["tail"] = tail.word()
    return values


_DOMAINS = (
    "history",
    "science",
    "design",
    "rules",
    "culture",
    "economics",
    "basics",
    "risks",
    "recipes",
    "music",
    "law",
    "sports",
    "politics",
    "ecology",
    "software",
    "art",
    "medicine",
    "festivals",
)


def _fill(template: str, rng: random.Random, tail: _Tail) -> str:
    values = _values(rng, tail)
    text = template.format(**values)
    if rng.random() < 0.4:
        prefix = rng.choice(PREFIXES).format(**values)
        text = f"{prefix} {text[0].lower()}{text[1:]}"
    if rng.random() < 0.6:
        text = text[:-1] + rng.choice(SUFFIXES).format(**values) + text[-1]
    return text


def _perturb(text: str, rng: random.Random, tail: _Tail) -> str:
    words = text.split()
    for _ in range(rng.choice((1, 1, 2))):
        op = rng.random()
        i = rng.randrange(len(words))
        if op < 0.3:
            words[i] = tail.word() if rng.random() < 0.5 else rng.choice(WORDS["adj"])
        elif op < 0.5 and len(words) > 4:
            del words[i]
        elif op < 0.7:
            words.insert(i, rng.choice(("please", "briefly", "also", "the", "very", "new")))
        elif op < 0.85 and len(words) > 2:
            j = min(i + 1, len(words) - 1)
            words[i], words[j] = words[j], words[i]
        else:
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i].rstrip(".?!,") + "!"
    return " ".join(words)


def generate(n: int, seed: int = 0, near_dup: float = 0.2) -> Iterator[str]:
    """Yield n candidate instructions; about `near_dup` of them are perturbed copies of earlier ones."""
    if not 0.0 <= near_dup < 1.0:
        raise ValueError("near_dup must be in [0, 1)")
    rng = random.Random(seed)
    tail = _Tail(rng)
    recent: list[str] = []
    for _ in range(n):
        r = rng.random()
        if r < near_dup and recent:
            text = _perturb(rng.choice(recent), rng, tail)
        elif r < near_dup + 0.05 and len(recent) > 1:
            a, b = rng.choice(recent).split(), rng.choice(recent).split()
            text = " ".join(a[: len(a) // 2] + b[len(b) // 2 :])
        else:
            text = _fill(rng.choice(TEMPLATES), rng, tail)
        recent.append(text)
        if len(recent) > 5000:  # near-duplicates of recent output, as a generating LM produces
            recent[rng.randrange(len(recent))] = recent.pop()
        yield text


def seeds(n: int = 175, seed: int = 12345) -> list[str]:
    """A seed-like starting pool (fresh template fills, no near-duplicates)."""
    return list(generate(n, seed=seed, near_dup=0.0))
