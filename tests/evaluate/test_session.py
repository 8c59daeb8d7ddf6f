"""The evaluation session and registry: a newly registered evaluation runs through the same session as the
built-in ones (model replies through the cache, reports `eval compare` reads), unknown kinds are refused,
and Ctrl-C exits 130 saying where the replies are kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from selfinstruct.cli.eval import eval_app
from selfinstruct.errors import InputFileError, UserError
from selfinstruct.evaluate import registry, session
from selfinstruct.evaluate.compare import compare_reports
from selfinstruct.evaluate.items import EvalItem, ItemSet, ItemSpec
from selfinstruct.evaluate.report import load_report
from selfinstruct.evaluate.run import GenerationOptions
from selfinstruct.evaluate.session import EvalConfig, run_evaluation
from selfinstruct.lm.settings import LMSettings
from selfinstruct.testing.fake_server import FakeOpenAIServer


def _load_quiz(spec: ItemSpec) -> ItemSet:
    """A toy evaluation: a JSON object of question -> answer, one task per question."""
    quiz = json.loads(spec.source.read_text(encoding="utf-8"))
    items = []
    for ordinal, (question, answer) in enumerate(quiz.items()):
        prompt = spec.template.render(input=question) if spec.template else f"Q: {question}\nA:"
        items.append(
            EvalItem(
                id=f"q{ordinal}",
                task=f"q{ordinal}",
                category="quiz",
                instruction="Answer the question.",
                input=question,
                references=(answer,),
                prompt=prompt,
                ordinal=ordinal,
            )
        )
    return ItemSet(items, [item.task for item in items], group_by="round", options={"rounds": 1})


@pytest.fixture
def quiz(monkeypatch: pytest.MonkeyPatch) -> registry.Evaluation:
    evaluation = registry.Evaluation(
        "quiz", "Quiz evaluation", frozenset({"input"}), _load_quiz, inputs=lambda spec: [spec.source]
    )
    monkeypatch.setitem(registry.EVALUATIONS, "quiz", evaluation)
    return evaluation


def _answer(prompt: str, body: dict[str, Any]) -> str:
    return " Paris" if "France" in prompt else " no idea"


def test_a_registered_evaluation_runs_like_the_built_in_ones(tmp_path: Path, quiz: Any) -> None:
    source = tmp_path / "quiz.json"
    source.write_text(json.dumps({"Capital of France?": "Paris", "Capital of Peru?": "Lima"}), "utf-8")
    out = tmp_path / "eval" / "quiz.json"
    with FakeOpenAIServer(responder=_answer) as server:
        lm = LMSettings(backend="openai", base_url=[server.base_url], model="fake", api="completion")
        config = EvalConfig(
            "quiz",
            source,
            out,
            GenerationOptions(postprocess="strip"),
            lm=lm,
            template="Question: {input}\nAnswer:",
            quiet=True,
        )
        report = run_evaluation(config)
        again = run_evaluation(config)
        assert server.requests_served == 2  # the rerun is answered by the cache beside --out
        prompts = [body["prompt"] for body in server.bodies]
    # Requests are in flight together: the server may see them in either order.
    assert sorted(prompts) == ["Question: Capital of France?\nAnswer:", "Question: Capital of Peru?\nAnswer:"]
    assert again.usage["eval"]["cache_hits"] == 2 and (tmp_path / "eval" / session.CACHE_NAME).is_file()
    assert report.kind == "quiz" and report.group_by == "round"
    assert [item.prediction for item in report.items] == ["Paris", "no idea"]
    assert report.overall.rougeL == 50.0 and report.options["rounds"] == 1
    assert report.options["template"] == "Question: {input}\nAnswer:"
    assert load_report(out) == again
    assert out.with_suffix(".md").read_text(encoding="utf-8").startswith("# Quiz evaluation")
    assert compare_reports(report, again).paired == 2
    # The evaluation's inputs are protected; its template fields are its own.
    with pytest.raises(UserError, match="is also an input file"):
        run_evaluation(EvalConfig("quiz", source, source, GenerationOptions(), lm=lm, quiet=True))
    with pytest.raises(UserError, match="unknown field"):
        run_evaluation(EvalConfig("quiz", source, out, GenerationOptions(), lm=lm, template="{definition}"))
    assert json.loads(source.read_text(encoding="utf-8"))["Capital of Peru?"] == "Lima"


def test_a_report_of_an_unknown_evaluation_is_refused(tmp_path: Path, quiz: Any) -> None:
    source = tmp_path / "quiz.json"
    source.write_text(json.dumps({"Capital of France?": "Paris"}), "utf-8")
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text('{"id": "q0", "prediction": "Paris"}\n', "utf-8")
    out = tmp_path / "r.json"
    run_evaluation(EvalConfig("quiz", source, out, GenerationOptions(), predictions=predictions, quiet=True))
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["kind"] == "quiz" and data["overall"]["rougeL"] == 100.0
    (tmp_path / "other.json").write_text(json.dumps({**data, "kind": "nope"}), "utf-8")
    with pytest.raises(InputFileError, match=r"not an evaluation report .*unknown evaluation 'nope'"):
        load_report(tmp_path / "other.json")
    with pytest.raises(UserError, match="no evaluation named 'nope'"):
        registry.get_evaluation("nope")


def test_ctrl_c_exits_130_and_says_where_the_replies_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "generate_records", interrupted)
    tasks = tmp_path / "t.jsonl"
    tasks.write_text('{"instruction": "Say hi.", "instances": [{"input": "", "output": "hi"}]}\n', "utf-8")
    with FakeOpenAIServer(responder=_answer) as server:
        args = ["tasks", "--tasks", str(tasks), "--backend", "openai", "--base-url", server.base_url]
        result = CliRunner().invoke(eval_app, [*args, "--out", str(tmp_path / "o.json"), "-q"])
    assert result.exit_code == 130, result.output
    assert f"cached in {tmp_path / session.CACHE_NAME}" in " ".join(result.output.split())
    assert not (tmp_path / "o.json").exists()
