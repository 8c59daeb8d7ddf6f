"""The loop's folder: its saved settings, and one call that plans, runs what is pending, writes the page."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from selfinstruct.errors import UserError
from selfinstruct.paths import LOCK_NAME, atomic_write, created_dirs, lock_folder
from selfinstruct.reproduce.plan import (
    ReproduceSettings,
    Step,
    StepTables,
    build_plan,
    check_plan,
    resolve_settings,
)
from selfinstruct.reproduce.runner import MARKERS, StepRecord, pending_steps, run_child, run_steps

SETTINGS_FILE = "reproduce.yaml"


@dataclass(frozen=True)
class Loop:
    out: Path
    settings: ReproduceSettings
    steps: list[Step]
    pending: list[str]
    resumed: bool
    changes: tuple[str, ...] = ()  # with --update: how the given settings differ from the folder's

    @property
    def expected_seconds(self) -> float | None:
        """Expected time of the pending steps, or None when one of them has no estimate."""
        todo = [s.estimate_s for s in self.steps if s.name in self.pending]
        return None if any(e is None for e in todo) else float(sum(e or 0.0 for e in todo))


def differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every setting that differs, as `key: old there, new now`, in key order."""
    found: list[str] = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, Mapping) and isinstance(right, Mapping):
            found += differences(left, right, f"{prefix}{key}.")
        elif left != right:
            found.append(f"{prefix}{key}: {left!r} there, {right!r} now")
    return found


# Settings an update cannot take: the generated data already in the folder was drawn from them.
FIXED_ON_UPDATE = ("generate.seeds",)


def open_loop(
    out: Path,
    tables: StepTables,
    preset: str | None = None,
    config: Path | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    update: bool = False,
) -> Loop:
    """A new loop folder, or the one at `out` with the settings it was started with (like a pipeline run).

    Other settings for an existing folder are refused unless `update`: then they replace the saved ones and
    the steps whose commands they change rerun (generate resumes its run, so the data made so far is kept).
    Every step's command line is checked by its command (`tables`) before anything is written or run."""
    out = out.expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    saved_path = out / SETTINGS_FILE
    given = preset is not None or config is not None or any(overrides.values() if overrides else ())
    changes: list[str] = []
    if saved_path.is_file():
        saved = ReproduceSettings(**(yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}))
        saved._where = {
            (section, flag): f"{saved_path}: "
            for section, values in saved.model_dump().items()
            if isinstance(values, dict)
            for flag in values
        }
        settings = saved
        if given:
            wanted = resolve_settings(preset, config, overrides, tables)
            changes = differences(saved.model_dump(mode="json"), wanted.model_dump(mode="json"))
            if changes and not update:
                more = f" and {len(changes) - 1} more" if len(changes) > 1 else ""
                raise UserError(
                    f"--out {out} was started with other settings ({changes[0]}{more}); rerun without "
                    "settings to resume it, add --update to rerun what they change, or choose a new --out"
                )
            fixed = [c for c in changes if c.split(":", 1)[0].startswith(FIXED_ON_UPDATE)]
            if fixed:
                raise UserError(
                    f"--update: {fixed[0]}; the instructions already generated come from the old seeds, "
                    "choose a new --out for other seeds"
                )
            settings = wanted
        resumed = True
    else:
        if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
            raise UserError(
                f"--out {out}: a non-empty folder that is not a reproduce folder (no {SETTINGS_FILE})"
            )
        settings, resumed = resolve_settings(preset, config, overrides, tables), False
    steps = build_plan(settings, out, tables)
    check_plan(settings, steps, tables)
    return Loop(out, settings, steps, pending_steps(out, steps), resumed, tuple(changes))


HISTORY = "history"


def archive_previous(loop: Loop) -> Path | None:
    """Before an update replaces the settings: copy the old settings, results pages, reports and step
    markers to history/<time>/, so the results of the settings being replaced are not lost."""
    if not loop.changes:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = loop.out / HISTORY / stamp
    names = [SETTINGS_FILE, "results.md", "results.html"]
    names += [f"eval/{p.name}" for p in sorted((loop.out / "eval").glob("*")) if p.suffix in (".json", ".md")]
    names += [f"{MARKERS}/{p.name}" for p in sorted((loop.out / MARKERS).glob("*.json"))]
    for rel in names:
        source = loop.out / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    return dest


def save_settings(loop: Loop) -> None:
    """Written before the first step, so a rerun resumes with the same settings; an update replaces them."""
    path = loop.out / SETTINGS_FILE
    if path.exists() and not loop.changes:
        return
    with atomic_write(path) as handle:
        handle.write(yaml.safe_dump(loop.settings.model_dump(mode="json"), sort_keys=False))


def run_loop(
    loop: Loop,
    *,
    child: Callable[[Sequence[str]], int] = run_child,
    on_event: Callable[[Step, str], None] | None = None,
) -> tuple[list[StepRecord], Path, Path]:
    """Run the pending steps, then write results.md and results.html; returns the records and both pages."""
    from selfinstruct.reproduce.results import collect, write_results

    with created_dirs(loop.out):
        lock = lock_folder(loop.out, "loop")  # a second loop here would run the same steps at once
    try:
        archive_previous(loop)
        save_settings(loop)
        records = run_steps(loop.out, loop.steps, child=child, on_event=on_event)
        md, html = write_results(loop.out, collect(loop.out, loop.settings, loop.steps, records))
    finally:
        lock.release()
    return records, md, html
