from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from selfinstruct.evaluate.judge import RUBRIC, build_judge_prompt
from selfinstruct.web.app import ReviewConfig, create_app

from .conftest import Cand, build_run

BASE = "http://127.0.0.1:8765"


def client(run_dir: Path, **kw: object) -> TestClient:
    return TestClient(create_app(ReviewConfig(run_dir, **kw)), base_url=BASE)  # type: ignore[arg-type]


def token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(c: TestClient, name: str) -> str:
    tok = token(c.get("/rater").text)
    r = c.post("/rater", data={"csrf": tok, "name": name, "next": "/rate"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/rate"
    return tok


def rows(html: str) -> int:
    return len(re.findall(r"<tr class=\"(?:kept|dropped)\">", html))


def test_generated_text_is_escaped_everywhere(run_dir: Path) -> None:
    c = client(run_dir)
    for url in ("/browse", "/browse?q=markup"):
        html = c.get(url).text
        assert "<script>document.title" not in html and "<img src=x" not in html
        assert "&lt;script&gt;document.title=&#39;pwned&#39;" in html
        assert "onerror=&#34;window.__xss=2&#34;" in html
    cid = re.search(
        r'<a href="/item/(\d+)">\d+</a></td>\s*<td class="text">Explain', c.get("/browse?q=markup").text
    )
    assert cid
    detail = c.get(f"/item/{cid.group(1)}").text
    assert "<script>window.__xss=3" not in detail and "&lt;script&gt;window.__xss=3" in detail
    assert "&lt;b&gt;bold&lt;/b&gt;" in detail


def test_security_headers_and_host_check(run_dir: Path) -> None:
    c = client(run_dir)
    r = c.get("/browse")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert (
        "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    )
    assert c.get("/browse", headers={"host": "attacker.example"}).status_code == 400
    assert c.get("/browse", headers={"host": "localhost:8765"}).status_code == 200
    anywhere = client(run_dir, allowed_hosts=None)
    assert anywhere.get("/browse", headers={"host": "review.lan:8765"}).status_code == 200


def test_filters_search_and_counts(run_dir: Path) -> None:
    c = client(run_dir)
    assert rows(c.get("/browse").text) == 8
    assert rows(c.get("/browse?status=dropped").text) == 3
    assert rows(c.get("/browse?status=kept").text) == 5
    novelty = c.get("/browse?verdict=novelty").text
    assert rows(novelty) == 1 and "autumn leaves falling" in novelty
    clf = c.get("/browse?clf=yes").text
    assert rows(clf) == 1 and "mammal or bird" in clf
    assert rows(c.get("/browse?clf=no").text) == 4
    assert rows(c.get("/browse?q=SORT+the").text) == 1  # case-insensitive substring
    assert rows(c.get("/browse?q=%25").text) == 0  # '%' is literal, not a wildcard
    dropped_instances = c.get("/browse?inst=empty_output").text
    assert rows(dropped_instances) == 1 and "Sort the numbers" in dropped_instances
    assert "1 candidate instructions" in dropped_instances
    assert rows(c.get("/browse?inst=kept&clf=no").text) == 4
    assert "0 candidate instructions" in c.get("/browse?q=nothing-like-this").text


def test_pagination(tmp_path: Path) -> None:
    run = tmp_path / "big"
    build_run(run, [[Cand(f"Write sentence number {i} about topic {i}.") for i in range(120)]])
    c = client(run)
    first = c.get("/browse").text
    assert rows(first) == 50 and "page 1 of 3" in first and 'id="next-page"' in first
    last = c.get("/browse?page=3").text
    assert rows(last) == 20 and "number 119 " in last
    assert "page 3 of 3" in c.get("/browse?page=99").text  # clamped
    assert "page 1 of 3" in c.get("/browse?page=abc").text


def test_item_page_and_missing_item(run_dir: Path) -> None:
    c = client(run_dir)
    html = c.get("/item/2").text  # "Sort the numbers" with a kept and a dropped instance
    assert "1 2 3" in html and "empty_output" in html and "Write a haiku about autumn leaves." in html
    # Every field the pages read by name off the store's records (jinja2 would show a misspelt one as empty).
    for shown in (
        "<h1>Candidate 2</h1>",
        "<th>request / position</th><td>0 / 1</td>",
        "<th>classification</th><td>no</td>",
        "<th>mean ROUGE-L to pool</th><td>0.100</td>",
        '<td>0.200</td><td class="text">Write a haiku about autumn leaves.</td>',
        '<tr class="dropped"><td>1</td><td class="text">5 4</td><td class="text"></td><td>empty_output</td>',
    ):
        assert shown in html, shown
    listed = c.get("/browse?q=Sort+the").text
    assert '<a href="/item/2">2</a>' in listed and "<td>no</td>" in listed
    assert "<td>1 / 2</td>" in listed and "<td>0.20</td>" in listed
    assert c.get("/item/999").status_code == 404
    # Past SQLite's INTEGER range (a 20-digit id): still "not found", not a server error.
    for cid in (2**63 - 1, 2**63, 10**19 + 7, 10**40):
        assert c.get(f"/item/{cid}").status_code == 404, cid


def test_forms_need_the_session_token_and_same_origin(run_dir: Path) -> None:
    c = client(run_dir)
    tok = token(c.get("/rater").text)
    assert c.post("/rater", data={"name": "Ann", "next": "/rate"}).status_code == 403
    assert c.post("/rater", data={"csrf": "0" * 64, "name": "Ann"}).status_code == 403
    other = client(run_dir)
    other_tok = token(other.get("/rater").text)
    assert c.post("/rater", data={"csrf": other_tok, "name": "Ann"}).status_code == 403  # another session's
    evil = c.post("/rater", data={"csrf": tok, "name": "Ann"}, headers={"origin": "http://evil.example"})
    assert evil.status_code == 403
    ok = c.post("/rater", data={"csrf": tok, "name": "Ann"}, headers={"origin": BASE}, follow_redirects=False)
    assert ok.status_code == 303
    bad_next = c.post(
        "/rater", data={"csrf": tok, "name": "Ann", "next": "//evil.example/x"}, follow_redirects=False
    )
    assert bad_next.headers["location"] == "/rate"


def _rate(c: TestClient, tok: str, answers: tuple[str, str, str]) -> str:
    page = c.get("/rate").text
    key = re.search(r'name="item_key" value="([^"]+)"', page)
    assert key
    r = c.post(
        "/rate",
        data={
            "csrf": tok,
            "item_key": key.group(1),
            "valid_task": answers[0],
            "input_ok": answers[1],
            "output_ok": answers[2],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    return key.group(1)


def test_rating_flow_persists_and_summarises(run_dir: Path) -> None:
    c = client(run_dir, sample=3)
    assert c.get("/rate", follow_redirects=False).headers["location"].startswith("/rater")
    tok = login(c, "Ann")
    answers = [("yes", "yes", "yes"), ("yes", "no", "no"), ("no", "yes", "no")]
    keys = [_rate(c, tok, a) for a in answers]
    assert len(set(keys)) == 3
    assert 'id="all-done"' in c.get("/rate").text
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        stored = conn.execute(
            "SELECT rater, valid_task, input_ok, output_ok, created_at FROM review_ratings ORDER BY id"
        ).fetchall()
    assert [r[:4] for r in stored] == [("Ann", 1, 1, 1), ("Ann", 1, 0, 0), ("Ann", 0, 1, 0)]
    assert all(r[4] > 0 for r in stored)
    summary = c.get("/summary").text
    total = re.search(r'<tr class="total" data-rater="">(.*?)</tr>', summary, re.S)
    assert total
    cells = re.findall(r'<td class="num">([^<]*)</td>', total.group(1))
    # 3 items; valid 2/3, input 2/3, output 1/3, all three yes 1/3
    assert cells == ["3", "66.7%", "66.7%", "33.3%", "33.3%"]
    # Revising an item replaces the rater's earlier answer.
    r = c.post(
        "/rate",
        data={"csrf": tok, "item_key": keys[2], "valid_task": "yes", "input_ok": "yes", "output_ok": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM review_ratings").fetchone()[0] == 3


def test_incomplete_or_foreign_rating_is_refused(run_dir: Path) -> None:
    c = client(run_dir, sample=2)
    tok = login(c, "Ann")
    key = re.search(r'name="item_key" value="([^"]+)"', c.get("/rate").text)
    assert key
    assert (
        c.post("/rate", data={"csrf": tok, "item_key": key.group(1), "valid_task": "yes"}).status_code == 400
    )
    foreign = {
        "csrf": tok,
        "item_key": "instance:99999",
        "valid_task": "yes",
        "input_ok": "yes",
        "output_ok": "no",
    }
    assert c.post("/rate", data=foreign).status_code == 400


def test_two_raters_agreement_and_exports(run_dir: Path) -> None:
    ann, bob = client(run_dir, sample=4), client(run_dir, sample=4)
    ta, tb = login(ann, "Ann"), login(bob, "=Bob")
    for a, b in [
        (("yes", "yes", "yes"), ("yes", "yes", "no")),
        (("yes", "no", "no"), ("yes", "no", "no")),
        (("no", "yes", "yes"), ("yes", "yes", "yes")),
        (("yes", "yes", "no"), ("yes", "yes", "no")),
    ]:
        assert _rate(ann, ta, a) == _rate(bob, tb, b)  # same sample, same order for everyone
    html = ann.get("/summary").text
    agreement = re.search(r'<table class="list" id="data-agreement">(.*?)</table>', html, re.S)
    assert agreement
    rows_ = re.findall(
        r"<tr><td>(.*?)</td><td>(\w+)</td><td class=\"num\">(\d+)</td>"
        r"<td class=\"num\">([^<]*)</td><td class=\"num\">([^<]*)</td></tr>",
        agreement.group(1),
    )
    by_q = {q: (n, pct, kappa) for _, q, n, pct, kappa in rows_}
    # valid_task: Ann y,y,n,y / Bob y,y,y,y -> 3/4 agree; Bob constant -> expected agreement 3/4 -> kappa 0
    assert by_q["valid_task"] == ("4", "75.0%", "0.00")
    # input_ok identical -> 100%, kappa 1
    assert by_q["input_ok"] == ("4", "100.0%", "1.00")
    # output_ok: Ann y,n,y,n / Bob n,n,y,n -> 3/4; p_e = (2*1 + 2*3)/16 = 0.5 -> kappa 0.5
    assert by_q["output_ok"] == ("4", "75.0%", "0.50")
    csv_text = ann.get("/export/ratings.csv").text
    assert csv_text.splitlines()[0].startswith("kind,item_key,rater,valid_task")
    assert len(csv_text.splitlines()) == 9 and ",'=Bob," in csv_text  # formula-looking cells neutralised
    records = [json.loads(x) for x in ann.get("/export/ratings.jsonl").text.splitlines()]
    assert {r["rater"] for r in records} == {"Ann", "=Bob"} and all(r["instruction"] for r in records)
    assert ann.get("/export/ratings.csv?kind=response").text.count("\n") == 1


def test_sample_is_stable_across_restarts(run_dir: Path) -> None:
    first = client(run_dir, sample=3, seed=5)
    login(first, "Ann")
    keys = re.findall(r'name="item_key" value="([^"]+)"', first.get("/rate?pos=0").text)
    second = client(run_dir, sample=3, seed=5)
    login(second, "Bob")
    assert re.findall(r'name="item_key" value="([^"]+)"', second.get("/rate?pos=0").text) == keys


@pytest.fixture
def eval_file(tmp_path: Path) -> Path:
    path = tmp_path / "eval.json"
    path.write_text(
        json.dumps(
            {
                "kind": "tasks",
                "model": {"backend": "openai", "model": "tiny-model", "api": "completion"},
                "items": [
                    {
                        "id": "t1-0",
                        "task": "t1",
                        "instruction": "Say hi.",
                        "input": "",
                        "prediction": "hi <i>there</i>",
                        "references": ["hi"],
                        "scores": {"rougeL": 0.5},
                    },
                    {
                        "id": "t2-0",
                        "task": "t2",
                        "definition": "Add numbers.",
                        "input": "1 2",
                        "prediction": "3",
                        "references": "3",
                        "scores": {"rougeL": 1.0, "bad": "x"},
                    },
                    {"id": "t3-0", "task": "t3"},  # no prediction: nothing to rate
                    "not an item",
                ],
            }
        ),
        encoding="utf-8",
    )
    return path


def test_response_ratings(run_dir: Path, eval_file: Path) -> None:
    c = client(run_dir, eval_file=eval_file)
    tok = login(c, "Ann")
    page = c.get("/rate-responses").text
    assert '<span id="done-count">0</span> of 2 responses' in page
    # Raters see the scale the LLM judge is given: one rubric for both.
    for letter, meaning in RUBRIC.items():
        assert f"<b>{letter}</b> {meaning}" in page
        assert f"{letter}: the response is {meaning}." in build_judge_prompt("i", "", "r", "p")
    assert "hi &lt;i&gt;there&lt;/i&gt;" in page and "tiny-model" in page
    for grade in ("A", "C"):
        key = re.search(r'name="item_key" value="([^"]+)"', c.get("/rate-responses").text)
        assert key
        r = c.post(
            "/rate-responses",
            data={"csrf": tok, "item_key": key.group(1), "grade": grade},
            follow_redirects=False,
        )
        assert r.status_code == 303
    assert 'id="all-done"' in c.get("/rate-responses").text
    grades = re.search(r'<table class="list" id="grades">(.*?)</table>', c.get("/summary").text, re.S)
    assert grades
    assert re.findall(r'<td class="num">([^<]*)</td>', grades.group(1))[:5] == [
        "2",
        "50.0%",
        "0.0%",
        "50.0%",
        "0.0%",
    ]
    bad = c.post("/rate-responses", data={"csrf": tok, "item_key": "eval.json:tiny-model:t1-0", "grade": "E"})
    assert bad.status_code == 400


def test_unknown_run_is_a_user_error(tmp_path: Path) -> None:
    from selfinstruct.errors import UserError

    with pytest.raises(UserError):
        create_app(ReviewConfig(tmp_path / "nothing"))


def test_reads_the_evaluation_engines_report(run_dir: Path, tmp_path: Path) -> None:
    """The file `selfinstruct eval ... --out` writes, built with the evaluation package's own models."""
    from selfinstruct.evaluate.report import (
        EvalReport,
        ItemRecord,
        JudgeRecord,
        ModelInfo,
        aggregate,
        write_report,
    )

    items = [
        ItemRecord(
            id=f"task1-{i}",
            task="task1",
            category="Title Generation",
            instruction="Write a title.",
            input=f"Text {i} <script>window.__xss=9</script>",
            prompt="p",
            prediction=f"Title {i}",
            raw_output=f"Title {i}",
            finish_reason="stop",
            references=["A title"],
            scores={"rougeL": 50.0, "exact_match": 0.0},
            judge=JudgeRecord(rating="B", reason="ok", raw="B") if i == 0 else None,
        )
        for i in range(3)
    ]
    overall, per_category, per_task = aggregate(items)
    report = EvalReport(
        kind="tasks",
        created="2026-01-01T00:00:00Z",
        model=ModelInfo(backend="openai", model="m1", api="completion"),
        overall=overall,
        per_category=per_category,
        per_task=per_task,
        items=items,
    )
    path = tmp_path / "eval_out.json"
    write_report(report, path)
    c = client(run_dir, eval_file=path, sample=2)
    login(c, "Ann")
    page = c.get("/rate-responses").text
    assert "of 2 responses" in page and "m1" in page and "Write a title." in page
    assert "&lt;script&gt;window.__xss=9" in page and "rougeL 50.000" in page


def test_the_summary_shows_the_judges_table2_and_its_agreement_with_each_person(run_dir: Path) -> None:
    from selfinstruct.records import Answers
    from selfinstruct.store import RunStore

    ann = client(run_dir, sample=4)
    tok = login(ann, "Ann")
    people = [("yes", "yes", "yes"), ("yes", "no", "no"), ("no", "yes", "yes"), ("yes", "yes", "no")]
    keys = [_rate(ann, tok, answers) for answers in people]
    # The judge answers the same four items: valid task Y Y Y Y (Ann Y Y N Y), output Y N N N (Ann Y N Y N).
    judge = [(True, True, True), (True, False, False), (True, True, False), (True, True, False)]
    store = RunStore.open(run_dir)
    for key, (valid, inp, out) in zip(keys, judge, strict=True):
        store.save_quality_rating(
            int(key.split(":")[1]), "openai:judge:chat", Answers(valid, inp, out), {}, "r"
        )
    store.close()
    html = ann.get("/summary").text
    table = re.search(r'<table class="list" id="table2-judged">(.*?)</table>', html, re.S)
    assert table
    judged_row = re.search(r'<tr data-judge="openai:judge:chat">(.*?)</tr>', table.group(1), re.S)
    assert judged_row
    cells = re.findall(r'<td class="num">([^<]*)</td>', judged_row.group(1))
    # 4 items; valid 4/4 (Wilson [51-100]), output 1/4 (Wilson [5-70]).
    assert cells[0] == "4" and cells[1] == "100% [51-100]" and cells[3] == "25% [5-70]"
    assert "Ann (person)" in table.group(1)
    agreement = re.search(r'<table class="list" id="judge-agreement">(.*?)</table>', html, re.S)
    assert agreement
    row = re.search(r"<td>openai:judge:chat · Ann</td>(.*?)</tr>", agreement.group(1), re.S)
    assert row
    valid, _, output, _ = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
    # valid: 3/4 alike, the judge always yes -> kappa 0; output: 3/4 alike, p_e = (1*2 + 3*2)/16 = 0.5 -> 0.5.
    assert valid == "75% / 0.00 (n=4)" and output == "75% / 0.50 (n=4)"
