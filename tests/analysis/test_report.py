from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from selfinstruct.analysis import report, sources, verbs
from selfinstruct.cli.report import report as report_command

ALL_FIGURES = {"funnel_candidates", "funnel_instances", "verb_noun", "rouge_seed", "lengths"}


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.current: str | None = None
        self.scripts = 0
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure":
            self.current = (a.get("id") or "").removeprefix("fig-")
        if tag == "img" and self.current:
            self.figures[self.current] = a.get("src") or ""
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            value = a.get(key) or ""
            if value.startswith(("http:", "https:", "//")):
                self.external.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self.current = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Collect:
    parser = _Collect()
    parser.feed(html)
    parser.close()
    return parser


def _has_parser() -> bool:
    return verbs.load_parser()[0] is not None


def test_report_from_run_is_self_contained_and_escaped(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    figures = tmp_path / "figs"
    result = report.write_report(sources.load([run_dir]), out, report.ReportOptions(), figures, "png")
    html = out.read_text(encoding="utf-8")
    parsed = _parse(html)
    expected = ALL_FIGURES if _has_parser() else ALL_FIGURES - {"verb_noun"}
    assert set(parsed.figures) == expected
    for key, src in parsed.figures.items():
        assert src.startswith("data:image/svg+xml;base64,"), key
        assert base64.b64decode(src.split(",", 1)[1]).lstrip().startswith(b"<?xml"), key
        assert (figures / f"{key}.png").read_bytes().startswith(b"\x89PNG"), key
    assert parsed.scripts == 0 and parsed.external == []
    # LM output shows as text: the tag is in the page's text, never as markup.
    assert "<script>alert(1)</script>" in "".join(parsed.text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert result.table1.instructions == 3
    text = " ".join(" ".join(parsed.text).split())
    assert "# of instances 3" in text and "too_short" in text


def test_report_from_plain_file_with_seeds_and_svg(plain_file: Path, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"instruction": "Write a poem about the moon."}) + "\n")
    figures = tmp_path / "figs"
    report.write_report(
        sources.load([plain_file], seeds=seeds),
        tmp_path / "r.html",
        report.ReportOptions(spacy_model="no_such_spacy_pipeline_xyz"),
        figures,
        "svg",
    )
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    parsed = _parse(html)
    assert set(parsed.figures) == {"rouge_seed", "lengths"}  # no funnel for plain files, no parser
    assert "Verb–noun analysis skipped" in html and "no filter funnel" in html
    assert sorted(p.name for p in figures.iterdir()) == ["lengths.svg", "rouge_seed.svg"]


def test_report_without_seeds_says_so(plain_file: Path, tmp_path: Path) -> None:
    built = report.build_report(sources.load([plain_file]), report.ReportOptions(spacy_model="none_xyz"))
    assert "--seeds" in built.notes["rouge"]
    assert "rouge_seed" not in {f.key for f in built.figures}


def test_cli_writes_report_and_rejects_bad_format(run_dir: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(report_command)
    out = tmp_path / "cli.html"
    ok = CliRunner().invoke(app, [str(run_dir), "--out", str(out), "--sample-rows", "2"])
    assert ok.exit_code == 0, ok.output
    assert out.exists() and "Wrote" in ok.output
    bad = CliRunner().invoke(
        app, [str(run_dir), "--out", str(out), "--figures-dir", str(tmp_path), "--figure-format", "gif"]
    )
    assert bad.exit_code != 0 and "figure-format" in str(bad.exception)


@pytest.mark.slow
def test_report_on_paper_seed_file(tmp_path: Path) -> None:
    """The 175 seed tasks of the paper, analysed as if generated: every section renders."""
    seed_file = Path(__file__).resolve().parents[1] / "data" / "paper_seed_tasks.jsonl"
    if not seed_file.exists():
        pytest.skip(f"{seed_file} not present")
    lines = [json.loads(x) for x in seed_file.read_text(encoding="utf-8").splitlines() if x.strip()]
    data = sources.load([seed_file], seeds=seed_file)
    built = report.build_report(data, report.ReportOptions())
    assert built.table1.instructions == len(lines)
    assert built.table1.classification == sum(1 for x in lines if x["is_classification"])
    assert {f.key for f in built.figures} >= {"rouge_seed", "lengths"}


def test_the_report_shows_table2_of_each_judge_and_says_when_a_run_is_not_rated(
    run_dir: Path, tmp_path: Path
) -> None:
    from selfinstruct.records import Answers
    from selfinstruct.store import RunStore

    plain = report.build_report(sources.load([run_dir]), report.ReportOptions()).html
    assert 'id="table2"' not in plain and "Not rated" in plain
    store = RunStore.open(run_dir)
    ids = [item.instance_id for item in store.rating_items()]
    answers = [Answers(True, True, True), Answers(True, False, None), Answers(False, True, True)]
    for instance_id, given in zip(ids, answers, strict=True):
        store.save_quality_rating(instance_id, "<judge>", given, {}, "")
    store.close()
    html = report.build_report(sources.load([run_dir]), report.ReportOptions()).html
    table = html.split('id="table2"', 1)[1].split("</table>", 1)[0]
    assert "judge &lt;judge&gt;" in table  # names are text, escaped
    # valid task 2/3, output correct 2/2 rated (one unrated), all three 1/3.
    cells = " ".join(table.split())
    assert "67% [21-94]" in cells and "100% [34-100]" in cells and "33% [6-79]" in cells
