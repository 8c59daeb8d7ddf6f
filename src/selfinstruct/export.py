"""Writing a run's data out: the paper's files, stage-4 fine-tuning data, Alpaca JSON, chat messages
(also OpenAI's fine-tuning chat format) and Parquet, with a dataset card (README.md, `export_card`) that
makes the folder a Hugging Face dataset: `datasets.load_dataset(EXPORT_DIR)` loads the instances."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from selfinstruct import __version__, export_card
from selfinstruct.analysis.stats import table1
from selfinstruct.config import RunSettings
from selfinstruct.errors import UserError
from selfinstruct.paths import atomic_write, check_output_dir
from selfinstruct.pipeline.prepare import prepare_run
from selfinstruct.pipeline.summary import summarize
from selfinstruct.quality.gate import GateResult, apply_gate
from selfinstruct.records import Task
from selfinstruct.store import RunReader, RunStore

FORMATS = ("paper", "finetune", "alpaca", "openai-chat", "parquet")


def _write_jsonl(path: Path, rows: Iterable[dict[str, object]]) -> int:
    count = 0
    with atomic_write(path) as handle:  # never leave a half-written file behind
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def instance_rows(tasks: Iterable[Task]) -> list[dict[str, object]]:
    """One row per instance: the paper's all_generated_instances.jsonl."""
    return [
        {
            "instruction": t.instruction,
            "input": i.input,
            "output": i.output,
            "is_classification": t.is_classification,
        }
        for t in tasks
        for i in t.instances
    ]


def chat_rows(tasks: Iterable[Task]) -> list[dict[str, object]]:
    """OpenAI fine-tuning chat format: the instruction (and input) as the user turn."""
    rows: list[dict[str, object]] = []
    for t in tasks:
        for i in t.instances:
            user = t.instruction if not i.input.strip() else f"{t.instruction}\n\n{i.input}"
            rows.append(
                {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": i.output}]}
            )
    return rows


def _model_tag(store: RunStore) -> str:
    settings = store.get_meta("settings") or {}
    lm = settings.get("lm", {}) if isinstance(settings, dict) else {}
    name = str(lm.get("model") or lm.get("backend") or "lm")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "lm"


@dataclass(frozen=True)
class ExportResult:
    """{format name: (path, rows)}, what the quality gate let through, and the dataset card."""

    files: dict[str, tuple[Path, int]]
    gate: GateResult
    card: Path | None = None


def export_run(
    run_dir: Path,
    out_dir: Path | None = None,
    formats: Iterable[str] = FORMATS,
    *,
    include_seeds: bool = True,
    min_quality: str = "auto",
    gate_judge: str | None = None,
    license_id: str | None = None,
    repo_id: str | None = None,
) -> ExportResult:
    """Write the requested formats, each with the instances the quality gate lets through (`min_quality`,
    `quality.gate`), and the dataset card listing them; the paper's instruction files keep every kept
    instruction. `license_id` goes into the card's header, `repo_id` into its loading example."""
    formats = list(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise UserError(f"--format: unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    export_card.check_license(license_id)
    out = out_dir or run_dir / "export"
    check_output_dir(out)
    store = RunStore.open(run_dir)
    try:
        gate = apply_gate(store, min_quality, gate_judge)
        tasks = store.generated_tasks(only=gate.passed)
        written: dict[str, tuple[Path, int]] = {}
        if "paper" in formats:
            written.update(_paper_files(store, out, tasks, gate))
        if "finetune" in formats:
            # The same stage 4 as `selfinstruct prepare`: the run's seed, its model's EOS text, the gate.
            result = prepare_run(
                run_dir,
                out / "finetune.jsonl",
                include_seeds=include_seeds,
                min_quality=min_quality,
                gate_judge=gate_judge,
                record=False,
            )
            written["finetune"] = (result.path, result.rows)
        if "alpaca" in formats:
            path = out / "alpaca.json"
            rows = [{k: r[k] for k in ("instruction", "input", "output")} for r in instance_rows(tasks)]
            with atomic_write(path) as handle:
                handle.write(json.dumps(rows, ensure_ascii=False, indent=1))
            written["alpaca"] = (path, len(rows))
        if "openai-chat" in formats:
            path = out / "chat_messages.jsonl"
            written["openai-chat"] = (path, _write_jsonl(path, chat_rows(tasks)))
        if "parquet" in formats:
            path = out / "instances.parquet"
            rows = instance_rows(tasks)
            table = pa.Table.from_pylist(
                rows,
                schema=pa.schema(
                    [
                        ("instruction", pa.string()),
                        ("input", pa.string()),
                        ("output", pa.string()),
                        ("is_classification", pa.bool_()),
                    ]
                ),
            )
            with atomic_write(path, binary=True) as handle:
                pq.write_table(table, handle)
            written["parquet"] = (path, len(rows))
        facts = _card_facts(store, out, written, gate, tasks, include_seeds, license_id, repo_id)
        card = out / export_card.CARD_NAME
        with atomic_write(card) as handle:
            handle.write(export_card.dataset_card(facts))
        return ExportResult(written, gate, card)
    finally:
        store.close()


def _card_facts(
    store: RunReader,
    out: Path,
    written: dict[str, tuple[Path, int]],
    gate: GateResult,
    tasks: list[Task],
    include_seeds: bool,
    license_id: str | None,
    repo_id: str | None,
) -> export_card.CardFacts:
    """What the dataset card says, read from the run and from what this export wrote."""
    saved = store.get_meta("settings")
    settings = saved if isinstance(saved, dict) else {}
    lm = settings.get("lm")
    if not isinstance(lm, dict):
        lm = {}
    seeds = store.seed_tasks()
    instances = instance_rows(tasks)
    return export_card.CardFacts(
        files=[
            export_card.CardFile(key, path.relative_to(out).as_posix(), rows)
            for key, (path, rows) in written.items()
            if path.is_file()
        ],
        instances=len(instances),
        backend=str(lm.get("backend") or "embedded"),
        model=None if lm.get("model") is None else str(lm["model"]),
        seeds=None if settings.get("seeds") is None else str(settings["seeds"]),
        seed_tasks=len(seeds),
        seed_classification=sum(1 for t in seeds if t.is_classification),
        changes=export_card.settings_changes(settings, RunSettings().model_dump(mode="json")),
        settings_recorded=isinstance(saved, dict),
        version=__version__,
        # Table 1 as the report counts it: every kept instruction, with the instances exported.
        table1=table1(store.generated_tasks(with_instances_only=False, only=gate.passed)),
        summary=summarize(store),
        gate=gate,
        include_seeds=include_seeds,
        license=license_id,
        repo_id=repo_id,
        contamination=store.get_meta("contamination"),
        examples=[{k: r[k] for k in ("instruction", "input", "output")} for r in instances[:3]],
    )


def _paper_files(
    store: RunStore, out: Path, tasks: list[Task], gate: GateResult
) -> dict[str, tuple[Path, int]]:
    rows = store.stored_instructions()
    written: dict[str, tuple[Path, int]] = {}
    path = out / "machine_generated_instructions.jsonl"
    written["machine_generated_instructions"] = (
        path,
        _write_jsonl(
            path,
            (
                {
                    "instruction": r.instruction,
                    "most_similar": dict(r.most_similar),
                    "avg_similarity_score": r.avg_similarity,
                    "max_similarity_score": r.max_similarity,
                    "request_idx": r.request_id,
                }
                for r in rows
            ),
        ),
    )
    path = out / f"is_clf_or_not_{_model_tag(store)}.jsonl"
    written["is_clf_or_not"] = (
        path,
        _write_jsonl(
            path,
            (
                {"instruction": r.instruction, "is_classification": r.clf_reply}
                for r in rows
                if r.is_classification is not None
            ),
        ),
    )
    by_instruction = store.kept_instances_by_instruction(gate.passed)
    path = out / "machine_generated_instances.jsonl"
    written["machine_generated_instances"] = (
        path,
        _write_jsonl(
            path,
            (
                {
                    "instruction": r.instruction,
                    "is_classification": r.is_classification,
                    "raw_instances": r.instances_reply,
                    "finish_reason": r.instances_finish,
                    "instances": [asdict(x) for x in by_instruction.get(r.id, ())],
                    "most_similar": dict(r.most_similar),
                    "avg_similarity_score": r.avg_similarity,
                }
                for r in rows
                if r.instances_status == "done"
            ),
        ),
    )
    path = out / "all_generated_instances.jsonl"
    written["all_generated_instances"] = (path, _write_jsonl(path, instance_rows(tasks)))
    return written
