"""The loop's folder: its saved settings, and one call that plans, runs what is pending, writes the page."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from selfinstruct.errors import UserError
from selfinstruct.reproduce.plan import ReproduceSettings, Step, build_plan, resolve_settings
from selfinstruct.reproduce.runner import StepRecord, pending_steps, run_child, run_steps

SETTINGS_FILE = "reproduce.yaml"


@dataclass(frozen=True)
class Loop:
    out: Path
    settings: ReproduceSettings
    steps: list[Step]
    pending: list[str]
    resumed: bool

    @property
    def expected_seconds(self) -> float | None:
        """Expected time of the pending steps, or None when one of them has no estimate."""
        todo = [s.estimate_s for s in self.steps if s.name in self.pending]
        return None if any(e is None for e in todo) else float(sum(e or 0.0 for e in todo))


def _first_difference(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> str | None:
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, Mapping) and isinstance(right, Mapping):
            found = _first_difference(left, right, f"{prefix}{key}.")
            if found:
                return found
        elif left != right:
            return f"{prefix}{key}: {left!r} there, {right!r} now"
    return None


def open_loop(
    out: Path,
    preset: str | None = None,
    config: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Loop:
    """A new loop folder, or the one at `out` with the settings it was started with (like a pipeline run)."""
    out = out.expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    saved_path = out / SETTINGS_FILE
    given = preset is not None or config is not None or any(overrides.values() if overrides else ())
    if saved_path.is_file():
        saved = ReproduceSettings(**(yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}))
        if given:
            wanted = resolve_settings(preset, config, overrides)
            diff = _first_difference(saved.model_dump(mode="json"), wanted.model_dump(mode="json"))
            if diff:
                raise UserError(
                    f"--out {out} was started with other settings ({diff}); rerun without settings to "
                    "resume it, or choose a new --out"
                )
        settings, resumed = saved, True
    else:
        if out.is_dir() and any(out.iterdir()):
            raise UserError(
                f"--out {out}: a non-empty folder that is not a reproduce folder (no {SETTINGS_FILE})"
            )
        settings, resumed = resolve_settings(preset, config, overrides), False
    steps = build_plan(settings, out)
    return Loop(out, settings, steps, pending_steps(out, steps), resumed)


def save_settings(loop: Loop) -> None:
    """Written once, before the first step, so a rerun resumes with the same settings."""
    path = loop.out / SETTINGS_FILE
    if path.exists():
        return
    loop.out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SETTINGS_FILE}.tmp")
    tmp.write_text(yaml.safe_dump(loop.settings.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    os.replace(tmp, path)


def run_loop(
    loop: Loop,
    *,
    child: Callable[[Sequence[str]], int] = run_child,
    on_event: Callable[[Step, str], None] | None = None,
) -> tuple[list[StepRecord], Path, Path]:
    """Run the pending steps, then write results.md and results.html; returns the records and both pages."""
    from selfinstruct.reproduce.results import collect, write_results

    save_settings(loop)
    records = run_steps(loop.out, loop.steps, child=child, on_event=on_event)
    md, html = write_results(loop.out, collect(loop.out, loop.settings, loop.steps, records))
    return records, md, html
