"""Exit codes a script can trust, from the real `selfinstruct` process: 2 for a user's mistake (with one
line on stderr), 1 for a runtime failure, 130 for Ctrl-C (and the run resumes)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import SELFINSTRUCT, count_rows, generate_command

from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "60"}  # narrow: a wrapped line would show


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SELFINSTRUCT, *args], capture_output=True, text=True, timeout=180, env=ENV, cwd=cwd
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# One user mistake per command: (arguments, text the one line must hold). {t} is the test's folder.
USER_ERRORS = {
    "generate": (["generate", "--out", "{t}/afile", "--no-progress"], "is a file"),
    "instructions": (["instructions", "--out", "{t}/afile/run", "--no-progress"], "which is a file"),
    "classify": (["classify", "{t}/missing", "--no-progress"], "not a selfinstruct run directory"),
    "instances": (["instances", "{t}/missing", "--no-progress"], "not a selfinstruct run directory"),
    "prepare": (["prepare", "{t}/missing"], "not a selfinstruct run directory"),
    "export": (["export", "{t}/missing"], "not a selfinstruct run directory"),
    "dedup": (["dedup", "{t}/afile", "--out", "{t}/afile"], "also an input"),
    "eval superni": (["eval", "superni", "--tasks", "{t}/missing", "--out", "{t}/r.json"], "missing"),
    "eval tasks": (["eval", "tasks", "--tasks", "{t}/missing.jsonl", "--out", "{t}/r.json"], "missing"),
    "eval compare": (["eval", "compare", "{t}/a.json", "{t}/b.json"], "a.json"),
    "finetune": (["finetune", "--data", "{t}/missing", "--out", "{t}/model"], "missing"),
    "report": (["report", "{t}/missing.jsonl", "--out", "{t}/r.html"], "missing"),
    "review": (["review", "{t}/missing"], "not a selfinstruct run directory"),
    "seeds": (["seeds", "{t}/afile"], "afile:1"),
    "config": (["config", "--show", "--config", "{t}/afile"], "afile"),
}


def test_every_command_exits_2_on_a_user_error_with_one_line(tmp_path: Path) -> None:
    # All at once: each process mostly waits on imports, and the suite's time matters.
    procs = {}
    for command, (args, _) in USER_ERRORS.items():
        folder = tmp_path / command.replace(" ", "_")
        folder.mkdir()
        (folder / "afile").write_text("not json, not yaml: [\n")
        procs[command] = subprocess.Popen(
            [*SELFINSTRUCT, *(a.format(t=folder) for a in args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
    for command, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        assert result.returncode == 2, (command, result.returncode, stderr)
        assert USER_ERRORS[command][1] in _one_error_line(result), command
        if command != "finetune":  # (finetune creates --out before it reads --data: its own module's)
            # A rejected command leaves nothing behind in the folder it was pointed at.
            folder = tmp_path / command.replace(" ", "_")
            assert sorted(p.name for p in folder.iterdir()) == ["afile"], command


def test_usage_error_exits_2() -> None:
    result = _run("dedup", "--no-such-option")
    assert result.returncode == 2
    assert "No such option" in result.stderr and "Traceback" not in result.stderr


def test_lm_failure_exits_1_and_the_run_resumes(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    args = [
        *("generate", "--out", str(tmp_path / "run"), "--backend", "openai", "--model", "fake-model"),
        *("--num-instructions", "4", "--max-retries", "0", "--no-progress", "--no-export"),
    ]
    result = _run(*args, "--base-url", dead)
    assert result.returncode == 1, result.stderr
    assert "LM request failed" in _one_error_line(result)
    with FakeOpenAIServer(self_instruct_responder) as server:
        result = _run(*args, "--base-url", server.base_url)
    assert result.returncode == 0, result.stderr


def test_ctrl_c_exits_130_with_one_line_and_the_run_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    db = run_dir / "run.sqlite"
    with FakeOpenAIServer(self_instruct_responder, latency=0.1) as server:
        proc = subprocess.Popen(
            generate_command(run_dir, server.base_url, num=20, concurrency=2, export=False),
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if count_rows(db, "SELECT COUNT(*) FROM gen_requests WHERE status='done'") >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1].decode()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        text = stderr.decode()
        assert proc.returncode == 130, text
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Interrupted."), text
        assert str(run_dir) in lines[0]
        kept_before = count_rows(db, "SELECT COUNT(*) FROM instructions")
        assert kept_before < 20

        result = subprocess.run(
            generate_command(run_dir, server.base_url, num=20, concurrency=2, export=False),
            env=ENV,
            capture_output=True,
            text=True,
        )
    assert result.returncode == 0, result.stderr
    assert "Resuming" in result.stderr
    assert count_rows(db, "SELECT COUNT(*) FROM instructions") >= 20
