"""What a user sees at 80 columns: the live progress lines and the end-of-run tables, none cut."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

from rich.console import Console

from selfinstruct.lm.client import StageUsage, UsageStats
from selfinstruct.pipeline.runner import PipelineState
from selfinstruct.pipeline.session import RunProgress
from selfinstruct.pipeline.summary import USAGE_COLUMNS, RunSummary, summary_tables


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=80, force_terminal=True, color_system=None, legacy_windows=False), out


def _summary() -> RunSummary:
    usage = UsageStats()
    for stage, requests in (("classify", 1_204), ("instances", 1_204), ("instructions", 412)):
        usage.stages[stage] = StageUsage(
            requests=requests, cache_hits=37, prompt_tokens=1_234_567, completion_tokens=98_765, retries=3
        )
    return RunSummary(
        gen_requests=412,
        gen_requests_truncated=17,
        candidates=2_345,
        kept=1_204,
        candidate_verdicts={"novelty": 900, "too_short": 141, "kept": 1_204, "non_ascii_start": 100},
        classified=1_204,
        classification=301,
        instructions_with_instances=1_100,
        instances=4_000,
        instances_kept=3_000,
        instance_verdicts={"kept": 3_000, "input_equals_output": 500, "conflicting_outputs": 500},
        usage=usage.as_rows(),
        endpoints=[
            {"endpoint": "http://127.0.0.1:8000/v1", "requests": 2820, "errors": 2, "mean_latency_s": 0.2}
        ],
        wall_seconds=1234.5,
    )


def test_the_end_of_run_tables_fit_80_columns_with_every_label_on_one_line() -> None:
    console, out = _console()
    for table in summary_tables(_summary()):
        console.print(table)
    text = out.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    for label in (
        "stage-1 replies cut by max_tokens",
        "classification tasks / classified",
        "instances dropped: input_equals_output",
        "dropped: non_ascii_start",
        "http://127.0.0.1:8000/v1",
    ):
        assert any(label in line for line in lines), label
    header = next(line for line in lines if "requests" in line and "cached" in line)
    positions = [header.index(column) for column in USAGE_COLUMNS]
    assert positions == sorted(positions)  # LM usage in columns of its own, in one header line
    row = next(line for line in lines if line.lstrip("│ ").startswith("instructions"))
    assert "412" in row and "1,333,332" in row  # requests and tokens of that stage on its own line


def test_the_progress_display_keeps_its_labels_whole_at_80_columns() -> None:
    console, out = _console()
    display = RunProgress(console, enabled=True)
    usage = UsageStats()
    usage.stages["instructions"] = StageUsage(
        requests=1_234, prompt_tokens=9_876_543, completion_tokens=12_345
    )
    client = SimpleNamespace(usage=usage, in_flight=64)
    state = PipelineState(target=52_000, kept=12_345, instructions_finished=12_000)
    display.update(state, client, time.monotonic() - 60)
    console.print(*display.progress.get_renderables())
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    assert max(len(line) for line in lines) <= 80
    assert "instructions" in lines[0] and "12345/52000 kept" in lines[0]
    assert lines[1].strip() == "64 in flight · 20.6 req/s · 9,888,888 tokens · 12000 given instances"
