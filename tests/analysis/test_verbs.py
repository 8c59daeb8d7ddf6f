from __future__ import annotations

import pytest

from selfinstruct.analysis import verbs


def test_summarise_ranks_verbs_and_nouns() -> None:
    pairs = [
        ("write", "poem"),
        ("write", "poem"),
        ("write", "story"),
        ("write", None),
        ("give", "example"),
        ("give", "example"),
        ("classify", "sentiment"),
        None,
    ]
    summary = verbs.summarise(pairs, top_verbs=2, top_nouns=1)
    assert (summary.parsed, summary.with_verb, summary.with_pair) == (8, 7, 6)
    assert [(v.verb, v.count, v.nouns) for v in summary.top] == [
        ("write", 3, (("poem", 2),)),
        ("give", 2, (("example", 2),)),
    ]


def test_missing_model_is_reported_not_raised() -> None:
    parser, why = verbs.load_parser("no_such_spacy_pipeline_xyz")
    assert parser is None and "no_such_spacy_pipeline_xyz" in why


@pytest.fixture(scope="module")
def parser() -> verbs.Parser:
    found, why = verbs.load_parser()
    if found is None:
        pytest.skip(why)
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Write a poem about the sea.", ("write", "poem")),
        ("Given a sentence, classify its sentiment.", ("classify", "sentiment")),
        ("Generates a list of five fruits.", ("generate", "list")),
        ("Tell me about yourself.", ("tell", None)),
        ("Hello.", None),
    ],
)
def test_root_verb_and_object(
    parser: verbs.Parser, text: str, expected: tuple[str, str | None] | None
) -> None:
    assert verbs.parse_pairs(parser, [text]) == [expected]
