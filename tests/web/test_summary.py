from __future__ import annotations

import pytest

from selfinstruct.quality.stats import cohen_kappa, percent_agreement
from selfinstruct.web.summary import to_csv


def test_cohen_kappa_by_hand() -> None:
    # observed 3/4; expected (2*1 + 2*3) / 16 = 1/2; kappa = (3/4 - 1/2) / (1 - 1/2) = 1/2
    assert cohen_kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    # A-D labels: observed 2/4; rater 1 A2 B1 C1, rater 2 A2 B2: expected (2*2 + 1*2 + 1*0) / 16 = 6/16;
    # kappa = (8/16 - 6/16) / (10/16) = 1/5
    assert cohen_kappa(["A", "A", "B", "C"], ["A", "B", "B", "A"]) == pytest.approx(1 / 5)
    assert cohen_kappa([1, 0], [0, 1]) == pytest.approx(-1.0)
    assert cohen_kappa([1, 1], [1, 1]) is None  # undefined: one label throughout
    assert cohen_kappa([], []) is None
    assert percent_agreement(["A", "B"], ["A", "C"]) == pytest.approx(50.0)


def test_csv_neutralises_formulas() -> None:
    text = to_csv([{"kind": "data", "rater": "@x", "instruction": "=1+1", "output": "-5", "input": "plain"}])
    assert "'@x" in text and "'=1+1" in text and "'-5" in text and ",plain," in text
