"""Running the loop's steps resumably: each finished step leaves a marker; a rerun skips what is complete.

A step is complete when its marker exists, names the same command, and its outputs exist. A step whose
input step ran again in this invocation reruns too. Steps run as child processes (`python -m selfinstruct
...`) with the terminal passed through, so each shows its own progress and a crash in one (or its memory:
the fine-tuning step's model is freed when it exits) cannot take the loop down. The marker is written only
after the child exits 0, and removed before a step starts, so a step killed halfway is never marked done;
the steps themselves resume their own work (generate from its run store, finetune from its checkpoints).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from selfinstruct.errors import Interrupted, StepFailed
from selfinstruct.paths import atomic_write
from selfinstruct.reproduce.plan import Step

MARKERS = "steps"


@dataclass(frozen=True)
class StepRecord:
    """What a finished step's marker holds (and the results page shows)."""

    name: str
    argv: list[str]
    seconds: float
    finished: str
    ran_now: bool = False


def marker_path(out: Path, step: Step) -> Path:
    return out / MARKERS / f"{step.name}.json"


def read_marker(out: Path, step: Step) -> StepRecord | None:
    try:
        raw = json.loads(marker_path(out, step).read_text(encoding="utf-8"))
        return StepRecord(raw["name"], list(raw["argv"]), float(raw["seconds"]), str(raw["finished"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or unreadable: the step is not known to be done


def is_complete(out: Path, step: Step) -> bool:
    record = read_marker(out, step)
    return (
        record is not None
        and record.argv == list(step.argv)
        and all((out / rel).exists() for rel in step.outputs)
    )


def pending_steps(out: Path, steps: Sequence[Step]) -> list[str]:
    """Names of the steps a run would execute now (incomplete ones and those downstream of them)."""
    rerun: set[str] = set()
    for step in steps:
        if not is_complete(out, step) or rerun.intersection(step.needs):
            rerun.add(step.name)
    return [s.name for s in steps if s.name in rerun]


def _started_path(out: Path, step: Step) -> Path:
    return out / MARKERS / f"{step.name}.started"


def _resumable(out: Path, step: Step, todo: set[str]) -> bool:
    """An interrupted attempt of this very command, on inputs that have not changed since, may resume."""
    try:
        started = json.loads(_started_path(out, step).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        started == list(step.argv)
        and read_marker(out, step) is None  # finished once, it reruns because something changed
        and not todo.intersection(step.needs)
    )


def _write_marker(out: Path, record: StepRecord) -> None:
    with atomic_write(out / MARKERS / f"{record.name}.json") as handle:
        handle.write(json.dumps(asdict(record), indent=1))


SELFINSTRUCT = (sys.executable, "-m", "selfinstruct")


def _die_with_parent() -> None:
    """Runs in the child before exec (Linux): SIGTERM it when the loop's process dies, even by SIGKILL or a
    caller's timeout, so no step goes on orphaned, writing into the loop's folder behind a rerun's back."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def run_child(argv: Sequence[str], program: Sequence[str] = SELFINSTRUCT) -> int:
    """`python -m selfinstruct ARGV` with this terminal. Ctrl-C reaches the child too (same process group);
    we wait for it to stop on its own (it commits and says how to resume), forwarding SIGINT if it was sent
    to us alone, and only then stop ourselves."""
    linux = sys.platform.startswith("linux")
    proc = subprocess.Popen([*program, *argv], preexec_fn=_die_with_parent if linux else None)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        try:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise Interrupted from None


StepCallback = Callable[[Step, str], None]


def run_steps(
    out: Path,
    steps: Sequence[Step],
    *,
    child: Callable[[Sequence[str]], int] = run_child,
    on_event: StepCallback | None = None,
) -> list[StepRecord]:
    """Run what is pending, in order; return one record per step (skipped ones from their markers)."""
    todo = set(pending_steps(out, steps))
    fresh = {s.name for s in steps if s.name in todo and not _resumable(out, s, todo)}
    # Every step to run loses its "done" marker now, not when its turn comes: interrupted between steps,
    # the loop must not find a stale marker behind an input that was redone.
    for step in steps:
        if step.name in todo:
            marker_path(out, step).unlink(missing_ok=True)
        if step.name in fresh:
            _started_path(out, step).unlink(missing_ok=True)
    records: list[StepRecord] = []
    for step in steps:
        if step.name not in todo:
            record = read_marker(out, step)
            assert record is not None  # complete implies a readable marker
            records.append(record)
            if on_event:
                on_event(step, "skipped")
            continue
        if on_event:
            on_event(step, "start")
        started = time.monotonic()
        _started_path(out, step).parent.mkdir(parents=True, exist_ok=True)
        _started_path(out, step).write_text(json.dumps(list(step.argv)), encoding="utf-8")
        code = child((*step.argv, *step.fresh_flags) if step.name in fresh else step.argv)
        if code == 130:
            raise Interrupted
        if code != 0:
            raise StepFailed(
                f"step {step.name} failed (exit {code}); fix the cause above and rerun to resume"
            )
        record = StepRecord(
            step.name,
            list(step.argv),
            round(time.monotonic() - started, 1),
            datetime.now(UTC).isoformat(timespec="seconds"),
        )
        _write_marker(out, record)
        _started_path(out, step).unlink(missing_ok=True)
        records.append(replace(record, ran_now=True))
        if on_event:
            on_event(step, "done")
    return records
