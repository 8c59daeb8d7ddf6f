"""The export folder as a Hugging Face dataset: its card (README.md) loads with `datasets` and
`huggingface_hub`, says what made the data, and holds generated text without breaking; `--push-to-hub`
uploads it in one commit. The Hub itself is never reached (the test machines have no network): the upload is
checked at the `HfApi` boundary."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from huggingface_hub import DatasetCard
from tests.conftest import SELFINSTRUCT, openai_overrides

from selfinstruct.analysis.stats import Table1
from selfinstruct.export import export_run
from selfinstruct.export_card import (
    CardFacts,
    CardFile,
    card_metadata,
    md_text,
    settings_changes,
    size_category,
)
from selfinstruct.pipeline.session import execute, open_run
from selfinstruct.pipeline.summary import RunSummary
from selfinstruct.prompts import INPUT_FIRST_HEADER
from selfinstruct.quality.gate import GateResult
from selfinstruct.store import RunStore
from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder

JSON_CONFIGS = {
    "all_generated_instances",
    "alpaca",
    "chat_messages",
    "finetune",
    "machine_generated_instances",
    "machine_generated_instructions",
    "is_clf_or_not",
}
# Text that would end a table cell, open a code span or a fence, start a heading or a rule, or end the YAML
# header, were it pasted into the card as it is.
EVIL = "a | b `tick` ```fence``` $x$ <b>bold</b> *em* [link](http://x)\n---\n# heading\n| c | d |"
TOKEN = "hf_testsecret0123456789abcdef"


def _load(path: Path, name: str | None, cache: Path) -> Any:
    import datasets

    return datasets.load_dataset(str(path), name, split="train", cache_dir=str(cache))


def _card(path: Path) -> tuple[dict[str, Any], str]:
    card = DatasetCard.load(path / "README.md")
    return card.data.to_dict(), card.text


def _section(body: str, heading: str) -> str:
    """The lines under a `## ` or `### ` heading, up to the next heading."""
    lines = body.split("\n")
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start:end]).strip()


def _table_rows(text: str) -> list[list[str]]:
    """A Markdown table's body rows as cells, split on unescaped pipes."""
    rows = [line for line in text.splitlines() if line.startswith("|")][2:]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows]


# -- loading ------------------------------------------------------------------------------------------------
def test_load_dataset_reads_the_instances_by_default_and_every_other_file_by_its_config(
    fake_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    result = export_run(fake_run, out)
    rows = {key: n for key, (_, n) in result.files.items()}
    assert result.card == out / "README.md"

    default = _load(out, None, tmp_path / "cache")
    instances = [
        json.loads(line) for line in (out / "all_generated_instances.jsonl").read_text().splitlines()
    ]
    assert default.column_names == ["instruction", "input", "output", "is_classification"]
    assert default.to_list() == instances and len(instances) == rows["parquet"] > 0

    meta, _ = _card(out)
    names = [c["config_name"] for c in meta["configs"]]
    assert set(names) == JSON_CONFIGS and names[0] == "all_generated_instances"
    assert [c.get("default", False) for c in meta["configs"]] == [True] + [False] * (len(names) - 1)
    by_config = {"chat_messages": "openai-chat"}
    for name in names:
        assert len(_load(out, name, tmp_path / "cache")) == rows[by_config.get(name, name)], name
    assert _load(out, "alpaca", tmp_path / "cache").column_names == ["instruction", "input", "output"]


def test_only_the_requested_formats_files_are_listed(fake_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_run(fake_run, out)  # every format first: the folder keeps those files
    export_run(fake_run, out, ["alpaca", "finetune"])
    meta, _ = _card(out)
    assert [(c["config_name"], c.get("default")) for c in meta["configs"]] == [
        ("alpaca", True),
        ("finetune", None),
    ]
    assert len(_load(out, None, tmp_path / "cache")) == len(json.loads((out / "alpaca.json").read_text()))

    # Parquet alone is a config of its own (datasets reads one file format per folder); JSON beside it is
    # named in the card with the call that loads it.
    parquet = tmp_path / "parquet"
    export_run(fake_run, parquet, ["parquet", "finetune"])
    meta, body = _card(parquet)
    assert [c["config_name"] for c in meta["configs"]] == ["instances"]
    assert _load(parquet, None, tmp_path / "cache").column_names[:3] == ["instruction", "input", "output"]
    assert 'load_dataset("json", data_files="finetune.jsonl")' in body


# -- the header ---------------------------------------------------------------------------------------------
def test_header_parses_with_huggingface_hub_and_gives_back_the_licence(
    fake_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "export"
    done = subprocess.run(
        [*SELFINSTRUCT, "export", str(fake_run), "--out", str(out), "--license", "cc-by-4.0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert f"Dataset card: {out / 'README.md'}" in done.stderr
    meta, body = _card(out)
    assert meta["license"] == "cc-by-4.0"
    assert meta["language"] == ["en"] and meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"] and "self-instruct" in meta["tags"]
    assert meta["pretty_name"] == "Self-Instruct data made with fake-model"
    assert "Released under the licence `cc-by-4.0`" in body

    unlicensed = tmp_path / "unlicensed"
    export_run(fake_run, unlicensed)
    meta, body = _card(unlicensed)
    assert "license" not in meta and "No licence was chosen" in body
    assert "Gemma" not in body  # made with another model


def test_a_malformed_licence_is_refused_before_any_work(fake_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    done = subprocess.run(
        [*SELFINSTRUCT, "export", str(fake_run), "--out", str(out), "--license", "cc by\n---"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: --license") and not out.exists()


def test_size_categories_are_the_hubs_buckets() -> None:
    assert [size_category(n) for n in (0, 999, 1000, 9_999, 10_000, 2_500_000, 10**13)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "1M<n<10M",
        "n>1T",
    ]


def test_the_embedded_default_model_brings_the_gemma_terms() -> None:
    facts = CardFacts(
        files=[CardFile("alpaca", "alpaca.json", 3)],
        instances=3,
        backend="embedded",
        model=None,
        seeds=None,
        seed_tasks=0,
        seed_classification=0,
        changes=[],
        settings_recorded=True,
        version="0",
        table1=Table1(1, 0, 1, 0, 3, 0, 1.0, 0.0, 1.0),
        summary=RunSummary(1, 0, 1, 1, {"kept": 1}, 1, 0, 1, 3, 3, {"kept": 3}),
        gate=GateResult("none", note="the run is not rated"),
    )
    from selfinstruct.export_card import dataset_card

    card = dataset_card(facts)
    assert "license" not in card_metadata(facts)
    assert "Gemma Terms of Use" in card and "https://ai.google.dev/gemma/terms" in card
    assert "No licence was chosen" in card and "270M parameters" in card


# -- the body -----------------------------------------------------------------------------------------------
def test_settings_section_lists_exactly_what_differs_from_the_defaults(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(self_instruct_responder) as server:
        overrides = openai_overrides(
            server.base_url,
            **{"seed": 7, "generation.temperature": 0.9, "filters.blacklist_extra": ["video"]},
        )
        run = open_run(run_dir, None, overrides)
        try:
            execute(run, show_progress=False)
        finally:
            run.close()
    export_run(run_dir, tmp_path / "export")
    _, body = _card(tmp_path / "export")
    rows = {r[0]: r[1:] for r in _table_rows(_section(body, "### Settings that differ from the defaults"))}
    assert rows == {
        "num_instructions": ["12", "100"],
        "seed": ["7", "42"],
        "lm.backend": ['"openai"', '"embedded"'],
        "lm.model": ['"fake-model"', "null"],
        "lm.base_url": [f'\\["{server.base_url}"\\]', '\\["http://127.0.0.1:8000/v1"\\]'],
        "lm.concurrency": ["4", "8"],
        "generation.temperature": ["0.9", "0.7"],
        "filters.blacklist_extra": ['\\["video"\\]', "\\[\\]"],
    }


def test_settings_changes_flattens_and_names_unknown_keys() -> None:
    defaults = {"a": 1, "lm": {"model": None, "urls": ["x"]}, "empty": {}}
    saved = {"a": 1, "lm": {"model": "m", "urls": ["x", "y"]}, "empty": {}, "old": True}
    changes = settings_changes(saved, defaults)
    assert [(c.key, c.value, c.default, c.known) for c in changes] == [
        ("lm.model", "m", None, True),
        ("lm.urls", ["x", "y"], ["x"], True),
        ("old", True, None, False),
    ]


def test_a_rated_runs_card_shows_table2_and_the_gate(fake_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(fake_run, run_dir)
    rated = subprocess.run(
        [*SELFINSTRUCT, "rate", str(run_dir), "--judge", "checks", "--no-progress"],
        capture_output=True,
        text=True,
    )
    assert rated.returncode == 0, rated.stderr
    result = export_run(run_dir, tmp_path / "export")
    _, body = _card(tmp_path / "export")
    table2 = _section(body, "## Data quality (the paper's Table 2)")
    rows = {r[0]: r for r in _table_rows(table2)}
    assert rows["judge checks"][1] == str(result.gate.considered)
    assert rows["paper (expert)"][2:] == ["92%", "79%", "58%", "54%"]
    gate = _section(body, "## Quality gate")
    assert gate.startswith("quality gate: all (judge checks): kept ")
    assert result.gate.passed is not None and f"kept {len(result.gate.passed)} of" in gate
    limits = _section(body, "## Known limitations")
    assert "Rated by judge checks on" in limits and "upper bounds" in limits
    assert "Nobody rated" not in limits


def test_unrated_run_says_its_quality_is_unmeasured(fake_run: Path, tmp_path: Path) -> None:
    export_run(fake_run, tmp_path / "export")
    _, body = _card(tmp_path / "export")
    assert "## Data quality" not in body and "## Contamination check" not in body
    limits = _section(body, "## Known limitations")
    assert "Nobody rated this data" in limits and "No contamination check" in limits
    assert re.search(r"kept \d+ of \d+ candidate instructions \(\d+\.\d%\)", limits)
    funnel = {r[0]: r[1] for r in _table_rows(_section(body, "## Filter funnel"))}
    summary = json.loads((fake_run / "summary.json").read_text())
    assert funnel["candidates"] == str(summary["candidates"]) and funnel["kept"] == str(summary["kept"])
    assert funnel["instances kept"] == str(summary["instances_kept"])
    assert "@inproceedings{wang-etal-2023-self-instruct" in _section(body, "## Citation")


def _evil_responder(prompt: str, body: dict[str, Any]) -> str:
    if prompt.startswith(INPUT_FIRST_HEADER):
        return f"Example 1\nInput: {EVIL}\nOutput: {EVIL} out\n\n"
    return self_instruct_responder(prompt, body)


def test_generated_text_cannot_break_the_card(tmp_path: Path) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    run_dir = tmp_path / "run"
    model = "evil|model`x`\n---"
    with FakeOpenAIServer(_evil_responder) as server:
        run = open_run(
            run_dir,
            None,
            openai_overrides(
                server.base_url, **{"lm.model": model, "filters.blacklist_extra": ["a|b", "`q`"]}
            ),
        )
        try:
            execute(run, show_progress=False)
        finally:
            run.close()
    store = RunStore.open(run_dir)
    try:
        judge = "judge|`j`\n---\n# x"
        from selfinstruct.records import Answers

        for i, item in enumerate(store.rating_items()):  # half pass the gate, half have no clear answer
            answers = Answers(True, True, True) if i % 2 else Answers(True, None, False)
            store.save_quality_rating(item.instance_id, judge, answers, {}, "")
        store.set_meta("contamination", {"sets": [{"name": EVIL, "flagged": 2}], EVIL: 1.5, "ngram": 13})
    finally:
        store.close()
    out = tmp_path / "export"
    result = export_run(run_dir, out)
    text = (out / "README.md").read_text()

    # The header survives whole and says what card_metadata says.
    meta, body = _card(out)
    assert meta["pretty_name"] == "Self-Instruct data made with evil|model`x` ---"
    assert text.startswith("---\n") and text.count("\n---\n") == 1

    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(body)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == [
        "Self-Instruct data made with evil\\|model\\`x\\` ---",
        "Files",
        "How it was made",
        "Settings that differ from the defaults",
        "Statistics (the paper's Table 1)",
        "Filter funnel",
        "Quality gate",
        "Data quality (the paper's Table 2)",
        "Contamination check",
        "Examples",
        "Licence",
        "Known limitations",
        "Citation",
    ]
    kinds = {t.type for t in tokens}
    assert "hr" not in kinds and "html_block" not in kinds
    assert not any(c.type == "html_inline" for t in tokens for c in t.children or [])
    # Every table row has its header's number of cells (unescaped pipes counted in the source).
    for block in re.findall(r"(?:^\|.*\n)+", body, flags=re.M):
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in block.splitlines()}
        assert len(widths) == 1, block
    # The examples' fence holds: its content is the first instances as JSON.
    fences = [t for t in tokens if t.type == "fence"]
    assert [t.info for t in fences] == ["python", "json", "bibtex"]
    examples = json.loads("[" + fences[1].content.replace("}\n{", "},\n{") + "]")
    first = json.loads((out / "all_generated_instances.jsonl").read_text().splitlines()[0])
    assert examples[0] == {k: first[k] for k in ("instruction", "input", "output")} and EVIL in first["input"]
    # Rendered, the generated text reads as it was written, on one line.
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(body)
    assert "evil|model`x` ---" in html and " ".join(EVIL.split()) not in body
    assert "judge|`j` --- # x" in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    assert result.gate.judge == judge


def test_md_text_escapes_what_markdown_would_read() -> None:
    assert md_text("a|b `c` *d* _e_ snake_case [f](g) <h> $i$ &amp; ~j~\n---") == (
        "a\\|b \\`c\\` \\*d\\* \\_e\\_ snake_case \\[f\\](g) \\<h\\> \\$i\\$ \\&amp; \\~j\\~ ---"
    )


# -- pushing to the Hub -------------------------------------------------------------------------------------
@dataclass
class HubLog:
    """What the fake `HfApi` was asked; `fail` makes the upload refused, `public_repo` the repo public."""

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    fail: Exception | None = None
    public_repo: bool = False


def _fake_hf_api(log: HubLog) -> type:
    class FakeHfApi:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            log.calls.append(("init", args, kwargs))

        def create_repo(self, repo_id: str, **kwargs: Any) -> Any:
            log.calls.append(("create_repo", (repo_id,), kwargs))
            return SimpleNamespace(url=f"https://huggingface.co/datasets/{repo_id}")

        def repo_info(self, repo_id: str, **kwargs: Any) -> Any:
            log.calls.append(("repo_info", (repo_id,), kwargs))
            return SimpleNamespace(private=not log.public_repo)

        def upload_folder(self, **kwargs: Any) -> Any:
            log.calls.append(("upload_folder", (), kwargs))
            if log.fail is not None:
                raise log.fail
            return None

    return FakeHfApi


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HubLog:
    """`huggingface_hub.HfApi` replaced by a recorder, and no token anywhere huggingface_hub looks."""
    import huggingface_hub
    import huggingface_hub.constants

    log = HubLog()
    monkeypatch.setattr(huggingface_hub, "HfApi", _fake_hf_api(log))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-cached-token"))
    return log


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from selfinstruct.cli.main import _main

    monkeypatch.setattr(sys, "argv", ["selfinstruct", *args])
    code = _main()
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_push_to_hub_creates_the_repo_and_uploads_the_folder_in_one_commit(
    fake_run: Path, tmp_path: Path, hub: HubLog, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    out = tmp_path / "export"
    code, output = _cli(
        monkeypatch,
        capsys,
        "export",
        str(fake_run),
        "--out",
        str(out),
        "--push-to-hub",
        "me/data",
        "--private",
    )
    assert code == 0, output
    assert (
        TOKEN not in output
        and "Pushed 9 files to https://huggingface.co/datasets/me/data (private)" in output
    )
    kinds = [kind for kind, _, _ in hub.calls]
    assert kinds == ["init", "create_repo", "repo_info", "upload_folder"]
    assert hub.calls[0][2] == {}  # huggingface_hub finds the token itself: it never passes through us
    assert hub.calls[1][1:] == (("me/data",), {"repo_type": "dataset", "exist_ok": True, "private": True})
    upload = hub.calls[3][2]
    assert upload["repo_id"] == "me/data" and upload["repo_type"] == "dataset"
    assert Path(upload["folder_path"]) == out
    assert sorted(upload["allow_patterns"]) == sorted(p.name for p in out.iterdir())
    assert "README.md" in upload["allow_patterns"] and "token" not in upload
    _, body = _card(out)
    assert 'load_dataset("me/data")' in body


def test_push_refused_by_the_hub_is_one_line_without_the_token(
    fake_run: Path, tmp_path: Path, hub: HubLog, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.fail = OSError(f"403 Forbidden for token {TOKEN}\nmore detail")
    code, output = _cli(
        monkeypatch, capsys, "export", str(fake_run), "--out", str(tmp_path / "e"), "--push-to-hub", "me/data"
    )
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 1 and len(lines) == 1 and "upload failed" in lines[0] and "Traceback" not in output
    assert TOKEN not in output and "***" in lines[0]
    assert [kind for kind, _, _ in hub.calls].count("upload_folder") == 1


def test_private_push_to_an_existing_public_repo_uploads_nothing(
    fake_run: Path, tmp_path: Path, hub: HubLog, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.public_repo = True
    args = ("export", str(fake_run), "--out", str(tmp_path / "e"), "--push-to-hub", "me/data", "--private")
    code, output = _cli(monkeypatch, capsys, *args)
    assert code == 1 and "exists and is public" in output
    assert "upload_folder" not in [kind for kind, _, _ in hub.calls]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("--push-to-hub", "me/data"), 1, "no Hugging Face token"),  # no HF_TOKEN, no cached login
        (("--push-to-hub", "not a repo"), 2, "is not a dataset repository id"),
        (("--push-to-hub", "me/data/extra"), 2, "is not a dataset repository id"),
        (("--push-to-hub", "me/da..ta"), 2, "is not a dataset repository id"),
        (("--private",), 2, "--private: only with --push-to-hub"),
    ],
)
def test_push_mistakes_are_refused_before_any_work(
    fake_run: Path,
    tmp_path: Path,
    hub: HubLog,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    args: tuple[str, ...],
    code: int,
    says: str,
) -> None:
    out = tmp_path / "export"
    exit_code, output = _cli(monkeypatch, capsys, "export", str(fake_run), "--out", str(out), *args)
    lines = [line for line in output.splitlines() if line.strip()]
    assert exit_code == code and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0]
    assert not out.exists() and hub.calls == []
