"""The loop's results page: what it claims about differences, and how it treats model text."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from selfinstruct.errors import CommandError
from selfinstruct.evaluate.compare import Comparison, Difference
from selfinstruct.reproduce.plan import resolve_settings
from selfinstruct.reproduce.results import MIN_GROUP, EvalPair, Results, verdicts, write_results


def _row(name: str, level: str, n: int, diff: float, low: float, high: float) -> Difference:
    return Difference(name=name, level=level, n=n, a=10.0, b=10.0 + diff, diff=diff, ci_low=low, ci_high=high)


def _pair() -> EvalPair:
    rows = [
        _row("all", "overall", 40, 1.0, -0.5, 2.5),
        # One item: its bootstrap interval has no width, so any difference would "exclude 0".
        _row("Tiny <b>app</b>", "category", 1, -15.0, -15.0, -15.0),
        _row("Big", "category", MIN_GROUP + 2, 8.0, 2.0, 14.0),
    ]
    comparison = Comparison(
        a="base", b="tuned", metric="rougeL", samples=100, confidence=0.95, seed=0,
        paired=40, only_a=0, only_b=0, rows=rows,
    )  # fmt: skip
    report = SimpleNamespace(group_by="motivation_app")
    return EvalPair("user", "User-oriented", report, report, {"rougeL": comparison})  # type: ignore[arg-type]


def test_verdicts_name_only_groups_large_enough_for_their_interval() -> None:
    lines = verdicts(_pair())
    assert lines[0].startswith("User-oriented: no difference the interval can tell from zero")
    assert "Better beyond the interval: Big (+8.0)." in lines
    assert not any("Tiny" in line for line in lines)


def test_the_page_marks_large_groups_only_and_escapes_names(tmp_path: Path) -> None:
    results = Results(resolve_settings(None, None), [], {"cpu": "test"}, evals=[_pair()])
    md_path, html_path = write_results(tmp_path, results)
    lines = md_path.read_text().splitlines()
    md = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert "+8.00 *" in md["Big"]
    assert "-15.00 |" in md["Tiny &lt;b>app&lt;/b>"]  # no star, and no raw tag
    html = html_path.read_text()
    assert "<b>app</b>" not in html and "&lt;b&gt;app&lt;/b&gt;" in html
    assert html.count('class="num up"') == 1 and 'class="num down"' not in html


def test_a_page_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "loop"
    blocker.write_text("a file where the loop's folder should be")
    results = Results(resolve_settings(None, None), [], {"cpu": "test"}, evals=[_pair()])
    with pytest.raises(CommandError) as err:
        write_results(blocker, results)
    assert "\n" not in str(err.value) and str(blocker) in str(err.value)
    assert blocker.read_text().startswith("a file")  # nothing overwritten


def test_the_page_says_what_the_training_data_was_made_of(tmp_path: Path) -> None:
    """The gate, the decontamination (stage 4's record), the data's Table 2 as judged (the run's summary)."""
    prepare = {
        "rows": 361,
        "gate": {"level": "all", "judge": "checks", "kept": 48, "considered": 61, "dropped": {}},
        "decontamination": {"sets": ["user-oriented", "superni"], "instances": 3, "instructions": 1},
    }
    share = {"percent": 82.0}
    judge = {"rater": "<checks>", "items": 61, "valid_task": {"percent": 96.7}}
    judge |= {"input_ok": {"percent": 100.0}, "output_ok": share, "all": {"percent": 78.7}}
    quality = {"judges": [judge]}
    results = Results(
        resolve_settings(None, None), [], {"cpu": "test"}, generation={"quality": quality}, prepare=prepare
    )
    lines = results.data_lines()
    assert lines[0] == (
        "Training data: 361 prompt/completion pairs; quality gate all (judge checks) kept 48 of 61 "
        "instances; decontamination against user-oriented, superni removed 3 instances (1 instructions left "
        "without any)."
    )
    assert "judged by <checks> (61 instances): valid task 97%, input appropriate 100%" in lines[1]
    md_path, html_path = write_results(tmp_path, results)
    assert "- Training data: 361" in md_path.read_text()
    html = html_path.read_text()
    assert "&lt;checks&gt;" in html and "<checks>" not in html
    assert (
        Results(resolve_settings(None, None), [], {}).data_lines() == []
    )  # a loop without them says nothing
