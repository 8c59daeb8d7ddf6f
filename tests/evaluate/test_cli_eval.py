"""End to end: `eval superni`, `eval tasks` (with a judge) and `eval compare` against the fake
OpenAI-compatible server on 127.0.0.1, through the real LM client and SQLite response cache."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from selfinstruct.cli.eval import eval_app
from selfinstruct.testing.fake_server import FakeOpenAIServer, FaultPlan

DATA = Path(__file__).resolve().parents[1] / "data" / "superni"
ANSWERED = "task1393_superglue_copa_text_completion"  # replies are the first reference
GARBAGE = "task288_gigaword_summarization"  # replies share no word with any reference
MIXED = "task1385_anli_r1_entailment"  # first instance answered, the others garbage
FILTER = f"{ANSWERED},{GARBAGE},{MIXED}"
NONSENSE = "zqxj vvkw."
runner = CliRunner()


def superni_lookup() -> dict[str, tuple[str, str, int]]:
    """input -> (task, first reference, index of the instance within its task)."""
    lookup = {}
    for name in (ANSWERED, GARBAGE, MIXED):
        task = json.loads((DATA / "tasks" / f"{name}.json").read_text(encoding="utf-8"))
        for index, instance in enumerate(task["Instances"]):
            lookup[instance["input"].strip()] = (name, instance["output"][0], index)
    return lookup


def superni_responder(prompt: str, body: dict[str, Any]) -> str:
    text_input = prompt.rsplit("\nInput: ", 1)[1].rsplit("\nOutput:", 1)[0]
    for key, (task, reference, index) in LOOKUP.items():
        if text_input in (key, key + "."):
            if task == ANSWERED or (task == MIXED and index == 0):
                # The rest after the first period must be cut off by the default post-processing.
                return f" {reference}. Then the model keeps on talking."
            return " " + NONSENSE
    raise AssertionError(f"unexpected prompt: {prompt!r}")


LOOKUP = superni_lookup()


def run_superni(server: FakeOpenAIServer, out: Path, *extra: str) -> Any:
    args = [
        "superni",
        "--tasks",
        str(DATA),
        "--tasks-filter",
        FILTER,
        "--backend",
        "openai",
        "--model",
        "fake",
    ]
    args += ["--base-url", server.base_url, "--out", str(out), "--quiet", *extra]
    result = runner.invoke(eval_app, args)
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text(encoding="utf-8"))


def test_superni_scores_cache_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "base.json"
    with FakeOpenAIServer(responder=superni_responder) as server:
        # A first, partial run (one instance per task) is then resumed with two per task.
        run_superni(server, out, "--limit", "1")
        assert server.requests_served == 3
        report = run_superni(server, out, "--limit", "2")
        assert server.requests_served == 6  # only the 3 new instances were requested
        # A full rerun answers from the cache: no request reaches the server.
        assert report["usage"]["eval"]["requests"] == 6 and report["usage"]["eval"]["cache_hits"] == 3
        again = run_superni(server, out, "--limit", "2")
        assert server.requests_served == 6
        assert again["usage"]["eval"]["cache_hits"] == 6
        bodies = list(server.bodies)
    assert again["per_task"] == report["per_task"]
    assert all(body["temperature"] == 0 and body["max_tokens"] == 128 for body in bodies)
    assert all(body["stop"] == ["."] for body in bodies)  # first-sentence scoring stops at the period
    assert (tmp_path / "eval_cache.sqlite").is_file()

    tasks = {row["name"]: row for row in report["per_task"]}
    assert [row["name"] for row in report["per_task"]] == [n for n in split_order() if n in tasks]
    assert (tasks[ANSWERED]["rougeL"], tasks[ANSWERED]["exact_match"], tasks[ANSWERED]["n"]) == (
        100.0,
        100.0,
        2,
    )
    assert (tasks[GARBAGE]["rougeL"], tasks[GARBAGE]["exact_match"]) == (0.0, 0.0)
    assert (tasks[MIXED]["rougeL"], tasks[MIXED]["exact_match"]) == (50.0, 50.0)
    assert report["overall"]["n"] == 6
    assert report["overall"]["rougeL"] == pytest.approx(100 * 3 / 6)
    categories = {row["name"]: row for row in report["per_category"]}
    assert categories["Textual Entailment"]["rougeL"] == 50.0

    items = {item["id"]: item for item in report["items"]}
    assert len(items) == 6
    for item in items.values():
        assert {"id", "task", "instruction", "input", "prediction", "references", "scores"} <= item.keys()
        assert item["prompt"].startswith("Definition: ") and item["prompt"].endswith("Output:")
        if item["task"] == ANSWERED:
            assert item["prediction"] in item["references"]
            assert "keeps on talking" not in item["raw_output"]
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "ROUGE-L 50.00" in markdown and f"| {GARBAGE} | Title Generation | 2 | 0.00 | 0.00 |" in markdown


def test_failed_run_says_how_to_resume_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    args = [
        "superni",
        "--tasks",
        str(DATA),
        "--tasks-filter",
        ANSWERED,
        "--limit",
        "6",
        "--backend",
        "openai",
    ]
    args += ["--model", "fake", "--out", str(out), "--max-retries", "0", "--concurrency", "1", "-q"]
    # Half the requests fail for good (no retries): the run stops with a hint, keeping the replies it got.
    faults = FaultPlan(seed=3, server_error=0.5)
    with FakeOpenAIServer(responder=superni_responder, faults=faults) as flaky:
        result = runner.invoke(eval_app, [*args, "--base-url", flaky.base_url])
        answered = flaky.requests_served
    assert result.exit_code == 1
    assert "rerun to resume" in result.output and not out.exists()
    assert 0 < answered < 6
    with FakeOpenAIServer(responder=superni_responder) as healthy:
        result = runner.invoke(eval_app, [*args, "--base-url", healthy.base_url])
        assert result.exit_code == 0, result.output
        assert healthy.requests_served == 6 - answered  # only the missing replies are requested
    assert json.loads(out.read_text(encoding="utf-8"))["overall"]["rougeL"] == 100.0


def split_order() -> list[str]:
    return [line.strip() for line in (DATA / "test_tasks.txt").read_text().splitlines() if line.strip()]


def test_compare_two_superni_runs(tmp_path: Path) -> None:
    def weaker(prompt: str, body: dict[str, Any]) -> str:
        return " " + NONSENSE

    with FakeOpenAIServer(responder=superni_responder) as good, FakeOpenAIServer(responder=weaker) as bad:
        run_superni(bad, tmp_path / "a.json", "--limit", "2", "--cache", str(tmp_path / "a.sqlite"))
        run_superni(good, tmp_path / "b.json", "--limit", "2", "--cache", str(tmp_path / "b.sqlite"))
        # Without the early stop the server writes on, and post-processing yields the same predictions.
        late = run_superni(
            good,
            tmp_path / "late.json",
            "--limit",
            "2",
            "--no-early-stop",
            "--cache",
            str(tmp_path / "l.sqlite"),
        )
        assert all(
            item["raw_output"].endswith("keeps on talking.")
            for item in late["items"]
            if item["task"] == ANSWERED
        )
    out = tmp_path / "cmp.json"
    result = runner.invoke(
        eval_app,
        [
            "compare",
            str(tmp_path / "a.json"),
            str(tmp_path / "b.json"),
            "--samples",
            "200",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    comparison = json.loads(out.read_text(encoding="utf-8"))
    early = json.loads((tmp_path / "b.json").read_text(encoding="utf-8"))
    assert [i["prediction"] for i in early["items"]] == [i["prediction"] for i in late["items"]]
    rows = {(r["level"], r["name"]): r for r in comparison["rows"]}
    assert comparison["paired"] == 6
    assert rows["overall", "overall"]["diff"] == pytest.approx(50.0)
    assert rows["task", ANSWERED]["diff"] == 100.0
    assert rows["task", ANSWERED]["ci_low"] == rows["task", ANSWERED]["ci_high"] == 100.0
    assert rows["task", GARBAGE]["diff"] == 0.0
    assert out.with_suffix(".md").read_text(encoding="utf-8").startswith("# Comparison (rougeL)")


TASK_ROWS = [
    {
        "id": "t1",
        "name": "capital",
        "instruction": "Name the capital.",
        "is_classification": False,
        "instances": [{"input": "France", "output": "Paris is the capital of France."}],
    },
    {
        "id": "t2",
        "name": "sentiment",
        "instruction": "Classify the sentiment.",
        "is_classification": True,
        "instances": [{"input": "I love it", "output": "Positive"}],
    },
    {
        "id": "t3",
        "name": "poem",
        "instruction": "Write a haiku about rain.",
        "is_classification": False,
        "instances": [{"input": "", "output": "Soft rain on the roof"}],
    },
]


def task_responder(prompt: str, body: dict[str, Any]) -> str:
    if "Rate the response with one letter" in prompt:
        response = prompt.split("Response to rate:\n", 1)[1].split("\n\nRate the response", 1)[0]
        if response.startswith("Paris"):
            return "**Rating:** a\nReason: correct and complete."
        if response == NONSENSE:
            return "d) The response is unrelated gibberish."
        return "I am not sure how to rate this one."
    assert body.get("model") == "fake", "model requests must not go to the judge model"
    if prompt.startswith("Name the capital."):
        return " Paris is the capital of France."
    if prompt.startswith("Write a haiku"):
        return " Soft rain falls all night"
    return " " + NONSENSE


def test_tasks_with_judge_reports_rating_shares(tmp_path: Path) -> None:
    tasks_file = tmp_path / "user.jsonl"
    tasks_file.write_text("\n".join(json.dumps(row) for row in TASK_ROWS) + "\n", encoding="utf-8")
    out = tmp_path / "user.json"
    with FakeOpenAIServer(responder=task_responder) as server:
        args = ["tasks", "--tasks", str(tasks_file), "--backend", "openai", "--model", "fake"]
        args += ["--base-url", server.base_url, "--out", str(out), "--judge", "openai/judge-model"]
        result = runner.invoke(eval_app, args)
        assert result.exit_code == 0, result.output
        served = server.requests_served
        judge_bodies = [b for b in server.bodies if b.get("model") == "judge-model"]
        rerun = runner.invoke(eval_app, args)
        assert rerun.exit_code == 0, rerun.output
        assert server.requests_served == served == 6
    assert len(judge_bodies) == 3 and all("messages" in b for b in judge_bodies)  # the judge talks chat
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["judge"]["model"] == "judge-model"
    assert report["overall"]["ratings"] == {"A": 1, "B": 0, "C": 0, "D": 1, "unrated": 1}
    items = {item["task"]: item for item in report["items"]}
    assert items["capital"]["judge"] == {
        "rating": "A",
        "reason": "correct and complete.",
        "raw": "**Rating:** a\nReason: correct and complete.",
    }
    assert items["sentiment"]["judge"]["rating"] == "D"
    assert items["poem"]["judge"]["rating"] is None
    assert items["capital"]["scores"]["rougeL"] == 100.0
    assert items["sentiment"]["scores"] == {"rougeL": 0.0, "exact_match": 0.0}
    # "Soft rain falls all night" vs "Soft rain on the roof": LCS "soft rain" -> P 2/5, R 2/5.
    assert items["poem"]["scores"]["rougeL"] == pytest.approx(40.0)
    assert items["poem"]["prompt"] == "Write a haiku about rain.\nOutput:"
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert re.search(r"\| share % \| 33\.33 \| 0\.00 \| 0\.00 \| 33\.33 \| 33\.33 \|", markdown)


def test_user_mistakes_exit_2_with_one_line(tmp_path: Path) -> None:
    result = runner.invoke(
        eval_app, ["superni", "--tasks", str(tmp_path / "nope"), "--out", str(tmp_path / "o.json")]
    )
    assert result.exit_code == 2
    assert "no such folder" in result.output
    result = runner.invoke(
        eval_app,
        ["superni", "--tasks", str(DATA), "--template", "{nope} {input}", "--out", str(tmp_path / "o.json")],
    )
    assert result.exit_code == 2 and "unknown field" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}", encoding="utf-8")
    result = runner.invoke(eval_app, ["compare", str(bad), str(bad)])
    assert result.exit_code == 2 and "not an evaluation report" in result.output


# -- given predictions (--predictions) -------------------------------------------------------------------

PAPER_PREDICTIONS = (
    Path(__file__).resolve().parents[1] / "data" / "user_oriented" / "text-davinci-001_predictions.jsonl"
)


def _paper_rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in PAPER_PREDICTIONS.read_text(encoding="utf-8").splitlines()]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _score_given(args: list[str], out: Path) -> Any:
    result = runner.invoke(eval_app, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text(encoding="utf-8"))


def test_the_papers_prediction_file_scores_by_line_order(tmp_path: Path) -> None:
    from selfinstruct.evaluate.metrics import score_prediction

    report = _score_given(
        ["tasks", "--tasks", "user-oriented", "--predictions", str(PAPER_PREDICTIONS)], tmp_path / "p.json"
    )
    rows = _paper_rows()
    assert report["model"]["backend"] == "predictions" and report["overall"]["n"] == 252
    assert report["group_by"] == "motivation_app" and len(report["per_category"]) == 71
    for item, row in zip(report["items"], rows, strict=True):
        assert item["raw_output"] == row["response"] and item["finish_reason"] == "given"
        assert item["prediction"] == row["response"].strip()  # --postprocess strip, the tasks default
        assert item["references"] == [row["target"]]
        assert item["scores"] == score_prediction(row["response"].strip(), [row["target"]])
    markdown = (tmp_path / "p.md").read_text(encoding="utf-8")
    assert "## Per motivation_app" in markdown and "| Grammarly |" in markdown

    # The same outputs keyed by id (or task + index) give the same report, and `eval compare` pairs them.
    by_id = [{"id": f"user_oriented_task_{i}-0", "prediction": r["response"]} for i, r in enumerate(rows)]
    by_task = [
        {"task": f"user_oriented_task_{i}", "index": 0, "response": r["response"]} for i, r in enumerate(rows)
    ]
    for name, keyed in (("id", by_id), ("task", by_task)):
        path = _write_jsonl(tmp_path / f"{name}.jsonl", keyed[::-1])  # any order
        other = _score_given(
            ["tasks", "--tasks", "user-oriented", "--predictions", str(path)], tmp_path / f"{name}.json"
        )
        assert other["per_category"] == report["per_category"] and other["overall"] == report["overall"]
    result = runner.invoke(
        eval_app,
        [
            "compare",
            str(tmp_path / "p.json"),
            str(tmp_path / "id.json"),
            "--samples",
            "50",
            "--out",
            str(tmp_path / "c.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    comparison = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert comparison["paired"] == 252 and comparison["rows"][0]["diff"] == 0.0
    assert comparison["option_differences"] == {}


def test_paper_format_with_a_filter_and_a_wrong_order(tmp_path: Path) -> None:
    rows = _paper_rows()
    report = _score_given(
        [
            "tasks",
            "--tasks",
            "user-oriented",
            "--tasks-filter",
            "user_oriented_task_1?",
            "--predictions",
            str(PAPER_PREDICTIONS),
        ],
        tmp_path / "f.json",
    )
    assert [i["raw_output"] for i in report["items"]] == [rows[i]["response"] for i in range(10, 20)]
    swapped = _write_jsonl(tmp_path / "swapped.jsonl", [rows[1], rows[0], *rows[2:]])
    result = runner.invoke(
        eval_app,
        [
            "tasks",
            "--tasks",
            "user-oriented",
            "--predictions",
            str(swapped),
            "--out",
            str(tmp_path / "s.json"),
        ],
    )
    assert result.exit_code == 2 and not (tmp_path / "s.json").exists()
    assert f"{swapped}:1: 'instruction' differs from instance 0" in result.output


def _superni_predictions() -> list[dict[str, Any]]:
    """What superni_responder would answer, as a predictions file keyed by instance id."""
    rows = []
    for name in (ANSWERED, GARBAGE, MIXED):
        task = json.loads((DATA / "tasks" / f"{name}.json").read_text(encoding="utf-8"))
        for index, instance in enumerate(task["Instances"][:2]):
            good = name == ANSWERED or (name == MIXED and index == 0)
            text = f" {instance['output'][0]}. Then the model keeps on talking." if good else " " + NONSENSE
            rows.append({"id": instance["id"], "prediction": text})
    return rows


def _superni_given_args(predictions: Path, tasks_filter: str = FILTER) -> list[str]:
    """`eval superni` on the first 2 instances of the filtered tasks, scoring the given predictions."""
    return ["superni", "--tasks", str(DATA), "--tasks-filter", tasks_filter, "--limit", "2", "--predictions",
            str(predictions)]  # fmt: skip


def test_superni_predictions_score_like_the_model_and_compare(tmp_path: Path) -> None:
    with FakeOpenAIServer(responder=superni_responder) as server:
        model = run_superni(server, tmp_path / "model.json", "--limit", "2")
    path = _write_jsonl(tmp_path / "preds.jsonl", _superni_predictions())
    args = _superni_given_args(path)
    given = _score_given(args, tmp_path / "given.json")
    assert [(i["id"], i["prediction"], i["scores"]) for i in given["items"]] == [
        (i["id"], i["prediction"], i["scores"]) for i in model["items"]
    ]
    assert given["per_category"] == model["per_category"] and given["overall"] == model["overall"]
    assert given["usage"] == {}  # no request was made
    result = runner.invoke(
        eval_app, ["compare", str(tmp_path / "model.json"), str(tmp_path / "given.json"), "--samples", "50"]
    )
    assert result.exit_code == 0, result.output
    assert "Paired items: 6" in result.output and "Warning" not in result.output
    # task + index rows work for SuperNI too
    task_rows = [
        {"task": ANSWERED, "index": 1, "prediction": "x"},
        {"task": ANSWERED, "index": 99, "prediction": "y"},
    ]
    other = _write_jsonl(tmp_path / "task.jsonl", task_rows)
    report = _score_given(
        [*_superni_given_args(other, ANSWERED), "--missing-as-empty"],
        tmp_path / "t.json",
    )
    reasons = [(i["raw_output"], i["finish_reason"]) for i in report["items"]]
    assert reasons == [("", "missing"), ("x", "given")]
    assert report["options"]["missing_as_empty"] == 1


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"prediction": "a"}], ":1: no id: give 'id', or 'task' and 'index'"),
        ([{"id": "x", "prediction": 3}], ":1: 'prediction' must be a string"),
        ([{"id": "x"}], ":1: no prediction: expected a 'prediction'"),
        ([{"task": "task_nope", "index": 0, "prediction": "a"}], ":1: no task named 'task_nope'"),
        ([{"task": ANSWERED, "index": -1, "prediction": "a"}], ":1: 'task' must be a string and 'index'"),
        ("duplicate", ":2: a second prediction for item"),
        ("missing", ": no prediction for item"),
    ],
)
def test_bad_prediction_files_exit_2_naming_the_line(tmp_path: Path, rows: Any, message: str) -> None:
    good = _superni_predictions()
    if rows == "duplicate":
        rows = [good[0], good[0], *good[1:]]
    elif rows == "missing":
        rows = good[1:]
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    out = tmp_path / "o.json"
    args = _superni_given_args(path)
    result = runner.invoke(eval_app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert f"{path}{message}" in " ".join(result.output.split())
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    if rows == good[1:]:
        assert "and 5 more" not in result.output and "--missing-as-empty" in result.output
        report = _score_given([*args, "--missing-as-empty"], out)
        missing = [i for i in report["items"] if i["finish_reason"] == "missing"]
        assert [(i["id"], i["prediction"], i["scores"]["rougeL"]) for i in missing] == [
            (good[0]["id"], "", 0.0)
        ]


def test_given_predictions_can_be_judged(tmp_path: Path) -> None:
    tasks_file = _write_jsonl(tmp_path / "user.jsonl", TASK_ROWS)
    preds = _write_jsonl(
        tmp_path / "preds.jsonl",
        [
            {"id": "t1-0", "prediction": "Paris is the capital of France."},
            {"id": "t2-0", "prediction": NONSENSE},
            {"id": "t3-0", "prediction": "Soft rain falls all night"},
        ],
    )
    with FakeOpenAIServer(responder=task_responder) as server:
        report = _score_given(
            [
                "tasks",
                "--tasks",
                str(tasks_file),
                "--predictions",
                str(preds),
                "--judge",
                "openai/judge-model",
                "--base-url",
                server.base_url,
            ],
            tmp_path / "j.json",
        )
        assert server.requests_served == 3 and all(b["model"] == "judge-model" for b in server.bodies)
    assert report["overall"]["ratings"] == {"A": 1, "B": 0, "C": 0, "D": 1, "unrated": 1}
    assert report["usage"]["judge"]["requests"] == 3
    assert report["group_by"] == "category"


def test_an_output_that_is_an_input_is_refused_and_kept(tmp_path: Path) -> None:
    tasks_file = _write_jsonl(tmp_path / "user.jsonl", TASK_ROWS)
    preds = _write_jsonl(tmp_path / "preds.jsonl", [{"id": f"t{n}-0", "prediction": "x"} for n in (1, 2, 3)])
    link = tmp_path / "link.json"
    link.symlink_to(preds)
    before = {path: path.read_bytes() for path in (tasks_file, preds)}
    base = ["tasks", "--tasks", str(tasks_file), "--predictions", str(preds)]
    for out in (preds, tasks_file, link, tmp_path / "preds.json"):  # preds.json's Markdown is preds.md: fine
        result = runner.invoke(eval_app, [*base, "--out", str(out)])
        if out.name == "preds.json":
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2, result.output
        assert "is also an input file" in result.output
    assert {path: path.read_bytes() for path in before} == before
    report = tmp_path / "r.json"
    _score_given([*base], report)
    result = runner.invoke(eval_app, ["compare", str(report), str(report), "--out", str(report)])
    assert result.exit_code == 2 and "is also an input file" in result.output
    assert json.loads(report.read_text(encoding="utf-8"))["kind"] == "tasks"


def test_tasks_read_the_model_and_judge_from_a_config_file(tmp_path: Path) -> None:
    """`eval tasks --config`: the file's `eval:` section sets the LM, the decoding and the judge (which
    talks chat and takes the answering LM's endpoint unless given its own); a flag wins over the file."""
    tasks_file = tmp_path / "user.jsonl"
    tasks_file.write_text("\n".join(json.dumps(row) for row in TASK_ROWS) + "\n", encoding="utf-8")
    out = tmp_path / "user.json"
    with FakeOpenAIServer(responder=task_responder) as server:
        config = tmp_path / "eval.yaml"
        config.write_text(
            "eval:\n"
            "  max-new-tokens: 7\n"
            f"  lm:\n    backend: openai\n    model: fake\n    base_url: [{server.base_url}]\n"
            "  judge:\n    backend: openai\n    model: judge-model\n",
            encoding="utf-8",
        )
        args = ["tasks", "--tasks", str(tasks_file), "--config", str(config), "--out", str(out)]
        result = runner.invoke(eval_app, [*args, "--max-new-tokens", "9"])
        assert result.exit_code == 0, result.output
        model_bodies = [b for b in server.bodies if b.get("model") == "fake"]
        judge_bodies = [b for b in server.bodies if b.get("model") == "judge-model"]
    assert len(model_bodies) == 3 and {b["max_tokens"] for b in model_bodies} == {9}  # the flag won
    assert len(judge_bodies) == 3 and all("messages" in b for b in judge_bodies)
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["judge"]["model"] == "judge-model" and report["options"]["max_new_tokens"] == 9
    assert report["overall"]["ratings"]["A"] == 1

    config.write_text("eval:\n  lm:\n    concurrency: 0\n", encoding="utf-8")
    result = runner.invoke(eval_app, args)
    assert result.exit_code == 2
    assert f"{config}:3: setting lm.concurrency:" in result.output
