"""Table 2 shares with Wilson intervals, and agreement between raters, against values worked out by hand."""

from __future__ import annotations

import pytest

from selfinstruct.quality.stats import agreement, cohen_kappa, percent_agreement, table2, wilson_interval
from selfinstruct.records import Answers


def test_wilson_interval_by_hand() -> None:
    # 5 of 10: centre 0.5, half-width z*sqrt(0.025 + z^2/400)/(1 + z^2/10) = 0.2634 -> [23.7, 76.3].
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((23.66, 76.34), abs=0.01)
    # 0 of 20 stays above 0 at the top: [0, 16.1] (z^2/(n+z^2) = 0.1611).
    assert wilson_interval(0, 20) == pytest.approx((0.0, 16.11), abs=0.01)
    assert wilson_interval(20, 20)[1] == pytest.approx(100.0)
    assert wilson_interval(0, 0) == (0.0, 100.0)


def test_table2_counts_unrated_apart_and_all_three_where_known() -> None:
    answers = [
        Answers(True, True, True),
        Answers(True, False, True),
        Answers(None, True, True),  # all three unknown: no "no", one unrated
        Answers(False, None, None),  # all three known: a no
    ]
    t = table2("judge", answers)
    assert t.items == 4
    assert (t.shares["valid_task"].yes, t.shares["valid_task"].rated, t.shares["valid_task"].unrated) == (
        2,
        3,
        1,
    )
    assert t.shares["input_ok"].percent == pytest.approx(200 / 3)
    assert (t.shares["all"].yes, t.shares["all"].rated, t.shares["all"].unrated) == (1, 3, 1)
    assert t.as_dict()["output_ok"] == {
        "yes": 3,
        "rated": 3,
        "unrated": 1,
        "percent": 100.0,
        "ci95": [43.9, 100.0],
    }


def test_kappa_and_agreement_by_hand() -> None:
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert cohen_kappa(["A", "A", "B", "C"], ["A", "B", "B", "A"]) == pytest.approx(1 / 5)
    assert cohen_kappa([1, 1], [1, 1]) is None  # undefined: one label throughout
    assert percent_agreement(["A", "B"], ["A", "C"]) == pytest.approx(50.0)
    judge = {
        "a": Answers(True, True, True),
        "b": Answers(True, False, True),
        "c": Answers(False, True, None),
        "d": Answers(True, True, False),
        "only-judge": Answers(True, True, True),
    }
    human = {
        "a": Answers(True, True, False),
        "b": Answers(True, True, True),
        "c": Answers(False, True, True),
        "d": Answers(False, True, False),
        "only-human": Answers(False, False, False),
    }
    by_question = {q.question: q for q in agreement(judge, human)}
    # valid task on a-d: judge Y Y N Y, human Y Y N N -> 3/4 alike; p_e = (3*2 + 1*2)/16 = 0.5 -> kappa 0.5.
    assert by_question["valid_task"].n == 4
    assert by_question["valid_task"].percent == pytest.approx(75.0)
    assert by_question["valid_task"].kappa == pytest.approx(0.5)
    # output correct: c is unrated by the judge, so a, b, d: judge Y Y N, human N Y N -> 2/3 alike;
    # p_e = (2*1 + 1*2)/9 = 4/9 -> kappa (2/3 - 4/9)/(5/9) = 0.4.
    assert by_question["output_ok"].n == 3
    assert by_question["output_ok"].kappa == pytest.approx(0.4)
    # input ok: judge Y N Y Y, human Y Y Y Y -> 3/4, human gives one label only: p_e = 3/4 -> kappa 0.
    assert by_question["input_ok"].kappa == pytest.approx(0.0)
    # all three: judge (a Y, b N, c N, d N), human (a N, b Y, c N, d N) -> 2/4 alike.
    assert by_question["all"].percent == pytest.approx(50.0)
