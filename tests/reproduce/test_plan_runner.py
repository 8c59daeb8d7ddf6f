"""The loop's plan (presets < YAML < flags, each step an ordinary command) and its resumable runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import typer
import yaml

from selfinstruct.cli.steps import StepCommands
from selfinstruct.errors import Interrupted, StepFailed, UserError
from selfinstruct.reproduce.loop import SETTINGS_FILE, open_loop, save_settings
from selfinstruct.reproduce.plan import build_plan, resolve_settings, to_flags
from selfinstruct.reproduce.runner import pending_steps, run_steps

TABLES = StepCommands()


def open_loop_(out: Path, *args: object, **kwargs: object) -> object:
    return open_loop(out, TABLES, *args, **kwargs)  # type: ignore[arg-type]


def test_flags_from_a_section() -> None:
    flags = to_flags(
        {"max_steps": 3, "--lora-r": 16, "merge": False, "packing": True, "stop": ["a", "b"], "x": None}
    )
    assert flags == [
        "--max-steps",
        "3",
        "--lora-r",
        "16",
        "--no-merge",
        "--packing",
        "--stop",
        "a",
        "--stop",
        "b",
    ]


def test_yaml_section_overrides_one_flag_and_keeps_the_preset(tmp_path: Path) -> None:
    config = tmp_path / "loop.yaml"
    config.write_text("finetune:\n  lora_r: 16\n  max-steps: 5\ngenerate: {num_instructions: 7}\n")
    settings = resolve_settings(None, config, {"generate": {"num-instructions": 9}})
    assert settings.preset == "cpu"
    assert settings.finetune == {"max-steps": 5, "max-seq-length": 256, "batch-size": 4, "lora-r": 16}
    assert settings.generate["num-instructions"] == 9  # flags win over YAML


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--preset 'huge'"):
        resolve_settings("huge", None)
    bad = tmp_path / "bad.yaml"
    bad.write_text("finetune: [1, 2\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+: "):
        resolve_settings(None, bad)
    bad.write_text("finetnue: {}\n")
    with pytest.raises(UserError, match="finetnue"):
        resolve_settings(None, bad)


def test_a_url_with_a_password_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    url = "http://user:s3cret@127.0.0.1:9/v1"
    with pytest.raises(UserError, match=r"generate\.base-url: a URL with credentials") as err:
        open_loop_(tmp_path / "loop", None, None, {"generate": {"backend": "openai", "base-url": [url]}})
    assert "s3cret" not in str(err.value)
    assert not (tmp_path / "loop").exists()


def test_plan_of_the_embedded_default(tmp_path: Path) -> None:
    settings = resolve_settings(None, None, {"superni": {"tasks": "/data/superni"}})
    steps = build_plan(settings, tmp_path, TABLES)
    names = [s.name for s in steps]
    assert names == [
        "generate", "prepare", "finetune",
        "eval-base-superni", "eval-tuned-superni", "compare-superni",
        "eval-base-user", "eval-tuned-user", "compare-user",
    ]  # fmt: skip
    by_name = {s.name: s for s in steps}
    assert by_name["generate"].argv[:3] == ("generate", "--out", str(tmp_path / "run"))
    assert "--num-instructions" in by_name["generate"].argv
    tuned = by_name["eval-tuned-user"].argv
    # The tuned model runs on llama.cpp: the base GGUF plus the adapter finetune wrote.
    assert tuned[tuned.index("--backend") + 1] == "embedded"
    assert tuned[tuned.index("--lora") + 1] == str(tmp_path / "model" / "adapter.gguf")
    assert "--tasks" in tuned and "user-oriented" in tuned
    assert all(s.estimate_s is not None for s in steps)  # the CPU preset prints an expected time


def test_plan_without_superni_and_on_a_server_needs_a_trainable_base(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"finetune\.base"):
        build_plan(
            resolve_settings(None, None, {"generate": {"backend": "openai", "model": "m"}}), tmp_path, TABLES
        )
    settings = resolve_settings(
        None,
        None,
        {"generate": {"backend": "openai", "model": "m"}, "finetune": {"base": "Qwen/Qwen2.5-0.5B"}},
    )
    steps = {s.name: s for s in build_plan(settings, tmp_path, TABLES)}
    assert "eval-base-superni" not in steps
    # The server only generated the data: base and tuned are the fine-tuned model, on one runtime.
    base = steps["eval-base-user"].argv
    assert base[base.index("--backend") + 1] == "transformers"
    assert base[base.index("--model") + 1] == "Qwen/Qwen2.5-0.5B"
    tuned = steps["eval-tuned-user"].argv
    assert tuned[tuned.index("--backend") + 1] == "transformers"
    assert tuned[tuned.index("--model") + 1] == str(tmp_path / "model")
    assert steps["generate"].estimate_s is None  # a server's speed is not known in advance


def _lm_flags(argv: tuple[str, ...]) -> dict[str, str]:
    return {f: argv[argv.index(f) + 1] for f in ("--backend", "--model", "--lora", "--base-url") if f in argv}


def test_base_and_tuned_are_evaluated_on_one_runtime(tmp_path: Path) -> None:
    # Embedded default: the base evaluation uses generate's own flags, the tuned one adds the adapter.
    settings = resolve_settings(None, None, {"generate": {"threads": 2, "batch-invariant": True}})
    steps = {s.name: s for s in build_plan(settings, tmp_path, TABLES)}
    base, tuned = steps["eval-base-user"].argv, steps["eval-tuned-user"].argv
    assert "--batch-invariant" in base and "--batch-invariant" in tuned  # the same kernels for both
    assert _lm_flags(base) in ({}, {"--backend": "embedded"}) and base[base.index("--threads") + 1] == "2"
    assert _lm_flags(tuned) == {"--backend": "embedded", "--lora": str(tmp_path / "model" / "adapter.gguf")}
    # Data from a server, a GGUF base: both evaluations on llama.cpp with that GGUF, never on the server.
    settings = resolve_settings(
        None,
        None,
        {
            "generate": {"backend": "openai", "base-url": ["http://127.0.0.1:9/v1"], "concurrency": 4},
            "finetune": {"base": "/models/small.gguf"},
        },
    )
    steps = {s.name: s for s in build_plan(settings, tmp_path, TABLES)}
    base_flags = _lm_flags(steps["eval-base-user"].argv)
    assert base_flags == {"--backend": "embedded", "--model": "/models/small.gguf"}
    assert _lm_flags(steps["eval-tuned-user"].argv)["--lora"] == str(tmp_path / "model" / "adapter.gguf")
    # A GGUF that generated the data is the base by default.
    settings = resolve_settings(None, None, {"generate": {"model": "/models/own.gguf"}})
    steps = {s.name: s for s in build_plan(settings, tmp_path, TABLES)}
    assert steps["finetune"].argv[steps["finetune"].argv.index("--base") + 1] == "/models/own.gguf"
    assert _lm_flags(steps["eval-base-user"].argv)["--model"] == "/models/own.gguf"


class FakeSteps:
    """Stands in for the child processes: records what ran and writes each step's declared outputs."""

    def __init__(
        self, out: Path, steps: Sequence, fail: str | None = None, interrupt: str | None = None
    ) -> None:
        self.out = out
        # A step runs with its own argv, or with its fresh_flags added when it starts from scratch.
        self.by_argv = {tuple(s.argv): s for s in steps} | {(*s.argv, *s.fresh_flags): s for s in steps}
        self.ran: list[str] = []
        self.flags: dict[str, tuple[str, ...]] = {}
        self.fail, self.interrupt = fail, interrupt

    def __call__(self, argv: Sequence[str]) -> int:
        step = self.by_argv[tuple(argv)]
        self.ran.append(step.name)
        self.flags[step.name] = tuple(argv[len(step.argv) :])
        if step.name == self.interrupt:
            raise Interrupted
        if step.name == self.fail:
            return 1
        for rel in step.outputs:
            (self.out / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.out / rel).write_text("{}")
        return 0


def test_rerun_skips_finished_steps_and_reruns_what_depends_on_a_redone_one(tmp_path: Path) -> None:
    steps = build_plan(resolve_settings(None, None), tmp_path, TABLES)
    first = FakeSteps(tmp_path, steps)
    run_steps(tmp_path, steps, child=first)
    assert first.ran == [s.name for s in steps]
    again = FakeSteps(tmp_path, steps)
    records = run_steps(tmp_path, steps, child=again)
    assert again.ran == [] and [r.name for r in records] == [s.name for s in steps]
    # The fine-tuned model went missing: fine-tune again, and everything that read it, but not the base eval.
    (tmp_path / "model" / "selfinstruct_finetune.json").unlink()
    third = FakeSteps(tmp_path, steps)
    run_steps(tmp_path, steps, child=third)
    assert third.ran == ["finetune", "eval-tuned-user", "compare-user"]


def test_a_failed_or_interrupted_step_is_not_marked_done(tmp_path: Path) -> None:
    steps = build_plan(resolve_settings(None, None), tmp_path, TABLES)
    with pytest.raises(StepFailed, match="step finetune failed"):
        run_steps(tmp_path, steps, child=FakeSteps(tmp_path, steps, fail="finetune"))
    assert pending_steps(tmp_path, steps)[0] == "finetune"
    with pytest.raises(Interrupted):
        run_steps(tmp_path, steps, child=FakeSteps(tmp_path, steps, interrupt="finetune"))
    resumed = FakeSteps(tmp_path, steps)
    run_steps(tmp_path, steps, child=resumed)
    assert resumed.ran[0] == "finetune" and "generate" not in resumed.ran


def test_a_changed_command_reruns_its_step(tmp_path: Path) -> None:
    steps = build_plan(resolve_settings(None, None), tmp_path, TABLES)
    run_steps(tmp_path, steps, child=FakeSteps(tmp_path, steps))
    changed = build_plan(resolve_settings(None, None, {"finetune": {"max-steps": 3}}), tmp_path, TABLES)
    assert pending_steps(tmp_path, changed) == ["finetune", "eval-tuned-user", "compare-user"]


def test_finetune_restarts_after_a_change_and_resumes_after_an_interruption(tmp_path: Path) -> None:
    steps = build_plan(resolve_settings(None, None), tmp_path, TABLES)
    run_steps(tmp_path, steps, child=FakeSteps(tmp_path, steps))
    # A changed command: its old checkpoints must not be continued.
    changed = build_plan(resolve_settings(None, None, {"finetune": {"max-steps": 3}}), tmp_path, TABLES)
    first = FakeSteps(tmp_path, changed, interrupt="eval-tuned-user")
    with pytest.raises(Interrupted):
        run_steps(tmp_path, changed, child=first)
    assert first.ran[0] == "finetune" and first.flags["finetune"] == ("--restart",)
    # Interrupted later: the finished fine-tuning is kept.
    second = FakeSteps(tmp_path, changed, interrupt="eval-tuned-user")
    with pytest.raises(Interrupted):
        run_steps(tmp_path, changed, child=second)
    assert "finetune" not in second.ran
    # New data for fine-tuning: finetune from scratch, even though its own command did not change.
    (tmp_path / "data" / "finetune.jsonl").unlink()
    with pytest.raises(Interrupted):
        run_steps(tmp_path, changed, child=(redo := FakeSteps(tmp_path, changed, interrupt="finetune")))
    assert redo.ran == ["prepare", "finetune"] and redo.flags["finetune"] == ("--restart",)
    # The fine-tuning on the new data was interrupted: the rerun resumes it, without --restart.
    resumed = FakeSteps(tmp_path, changed)
    run_steps(tmp_path, changed, child=resumed)
    assert resumed.ran[0] == "finetune" and resumed.flags["finetune"] == ()
    assert not list((tmp_path / "steps").glob("*.started"))


def test_a_loop_folder_keeps_its_settings(tmp_path: Path) -> None:
    out = tmp_path / "loop"
    loop = open_loop_(out, "cpu", None, {"generate": {"num-instructions": 5}})
    save_settings(loop)
    run_steps(out, loop.steps, child=FakeSteps(out, loop.steps))
    assert (out / SETTINGS_FILE).is_file()
    resumed = open_loop_(out)  # no settings given: the saved ones
    assert resumed.resumed and resumed.settings.generate["num-instructions"] == 5 and resumed.pending == []
    with pytest.raises(UserError, match=r"other settings \(generate.num-instructions: 5 there, 6 now\)"):
        open_loop_(out, None, None, {"generate": {"num-instructions": 6}})
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("mine")
    with pytest.raises(UserError, match="not a reproduce folder"):
        open_loop_(other)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_a_step_does_not_outlive_a_killed_loop(tmp_path: Path) -> None:
    # The loop process runs a long "step"; killing the loop with SIGKILL must take the step down too.
    pid_file = tmp_path / "child.pid"
    step = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    loop = (
        "from selfinstruct.reproduce.runner import run_child; import sys; "
        f"run_child([], program=(sys.executable, '-c', {step!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", loop])
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    child = int(pid_file.read_text())
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the step kept running after the loop was killed")


def test_update_reruns_what_the_new_settings_change_and_keeps_the_old_results(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selfinstruct.cli.reproduce import reproduce
    from selfinstruct.reproduce.loop import HISTORY, archive_previous

    out = tmp_path / "loop"
    loop = open_loop_(out, "cpu", None, {"generate": {"num-instructions": 5}})
    save_settings(loop)
    run_steps(out, loop.steps, child=FakeSteps(out, loop.steps))
    (out / "results.md").write_text("results of the 5-instruction loop")
    wanted = {"generate": {"num-instructions": 8}, "finetune": {"max-steps": 3}}

    # --dry-run shows the changes and the plan, and touches nothing.
    saved = (out / SETTINGS_FILE).read_text()
    cli = typer_app(reproduce)
    result = CliRunner().invoke(
        cli, ["--out", str(out), "--update", "--dry-run", "--config", str(_yaml(tmp_path, wanted))]
    )
    assert result.exit_code == 0, result.output
    assert "generate.num-instructions: 5 there, 8 now" in result.output
    assert (out / SETTINGS_FILE).read_text() == saved and not (out / HISTORY).exists()

    updated = open_loop_(out, "cpu", None, wanted, update=True)
    assert updated.changes == (
        "finetune.max-steps: 30 there, 3 now",
        "generate.num-instructions: 5 there, 8 now",
    )
    # The base model's evaluations read nothing the update changes: kept.
    assert updated.pending == ["generate", "prepare", "finetune", "eval-tuned-user", "compare-user"]
    archived = archive_previous(updated)
    save_settings(updated)
    assert archived is not None
    assert (archived / "results.md").read_text() == "results of the 5-instruction loop"
    assert (archived / SETTINGS_FILE).read_text() == saved
    assert (archived / "eval" / "base_user.json").is_file()
    assert (archived / "steps" / "finetune.json").is_file()
    ran = FakeSteps(out, updated.steps)
    run_steps(out, updated.steps, child=ran)
    assert ran.ran == updated.pending and ran.flags["finetune"] == ("--restart",)
    # The folder now holds the new settings: a plain rerun resumes them with nothing left to do.
    again = open_loop_(out)
    assert again.settings.generate["num-instructions"] == 8 and again.pending == [] and not again.changes


def test_update_cannot_change_the_seeds_of_the_generated_data(tmp_path: Path) -> None:
    out = tmp_path / "loop"
    save_settings(open_loop_(out, "cpu", None, {}))
    with pytest.raises(UserError, match=r"^--update: generate.seeds: .*choose a new --out"):
        open_loop_(out, "cpu", None, {"generate": {"seeds": "medical"}}, update=True)
    with pytest.raises(UserError, match=r"add --update to rerun what they change"):
        open_loop_(out, "cpu", None, {"generate": {"seeds": "medical"}})


def _yaml(tmp_path: Path, sections: dict[str, dict[str, object]]) -> Path:
    path = tmp_path / "update.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


def typer_app(command: Callable[..., None]) -> typer.Typer:
    """A one-command app for CliRunner."""
    app = typer.Typer()
    app.command()(command)
    return app


def test_a_second_loop_in_the_same_folder_is_refused_while_one_runs(tmp_path: Path) -> None:
    from selfinstruct.errors import ResourceBusyError
    from selfinstruct.paths import lock_folder
    from selfinstruct.reproduce.loop import run_loop

    out = tmp_path / "loop"
    out.mkdir()
    loop = open_loop_(out, "cpu", None, {})
    held = lock_folder(out, "loop")
    try:
        ran = FakeSteps(out, loop.steps)
        with pytest.raises(ResourceBusyError, match="is writing this loop"):
            run_loop(loop, child=ran)
        assert ran.ran == [] and not (out / SETTINGS_FILE).exists()
    finally:
        held.release()
    assert open_loop_(out).pending == [s.name for s in loop.steps]  # the lock file alone is no foreign folder


def test_sections_take_settings_keys_or_flag_names_and_keep_the_flag_names(tmp_path: Path) -> None:
    config = tmp_path / "loop.yaml"
    config.write_text(
        "generate:\n  num_instructions: 7\n  generation: {temperature: 0.5}\n  lm: {threads: 1}\n"
        "  copy-filter: false\nprepare:\n  min_quality: output\nfinetune: {lora_r: 16}\n"
        "superni: {tasks: /data/superni, limit: 3}\n"
    )
    settings = resolve_settings(None, config, None, TABLES)
    assert settings.generate == {
        "num-instructions": 7,
        "gen-temperature": 0.5,
        "threads": 1,
        "copy-filter": False,
    }
    assert settings.prepare == {"min-quality": "output"} and settings.finetune["lora-r"] == 16
    steps = {s.name: s for s in build_plan(settings, tmp_path, TABLES)}
    generate = steps["generate"].argv
    assert generate[generate.index("--gen-temperature") + 1] == "0.5" and "--no-copy-filter" in generate
    prepare = steps["prepare"].argv
    # The loop decontaminates against the sets it evaluates on.
    assert [prepare[i + 1] for i, a in enumerate(prepare) if a == "--decontaminate"] == [
        "user-oriented",
        "/data/superni",
    ]


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("generate: {temprature: 0.5, num-instructions: 10}\n", "loop.yaml:1: generate.temprature"),
        (
            "generate:\n  num-instructions: 10\n  generation: {temprature: 0.5}\n",
            "loop.yaml:3: generate.generation.temprature",
        ),
        ("prepare:\n  templates: fancy\n", "loop.yaml:2: step prepare"),
        ("generate:\n  threads: 0\n", "loop.yaml:2: step generate"),
        ("finetune:\n  max-steps: lots\n", "loop.yaml:2: step finetune"),
        ("superni: {tasks: /d, limit: -1}\n", "loop.yaml:1: step eval-base-superni"),
        ("user_oriented:\n  max-new-tokens: 0\n", "loop.yaml:2: step eval-base-user"),
        ("superni: {tasks: /d}\neval:\n  max-new-tokens: 0\n", "loop.yaml:3: step eval-base-superni"),
    ],
)
def test_a_bad_key_or_value_is_refused_at_plan_time_naming_file_line_and_step(
    tmp_path: Path, yaml_text: str, fragment: str
) -> None:
    config = tmp_path / "loop.yaml"
    config.write_text(yaml_text)
    with pytest.raises(UserError) as err:
        open_loop_(tmp_path / "loop", None, config)
    assert fragment in str(err.value), str(err.value)
    assert "\n" not in str(err.value) and not (tmp_path / "loop").exists()


def test_the_dry_run_refuses_a_misspelt_key_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "loop.yaml"
    config.write_text("generate: {temprature: 0.5, num-instructions: 10}\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfinstruct",
            "reproduce",
            "--out",
            str(tmp_path / "loop"),
            "--config",
            str(config),
            "--dry-run",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "loop.yaml:1: generate.temprature" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Plan" not in done.stderr
