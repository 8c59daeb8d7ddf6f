"""The loop's results page (Markdown and HTML), written from the files the steps left behind.

Everything on the page is read from the loop's folder: the step markers (commands, times), the run's
summary, the fine-tuning summary and the evaluation reports. Differences carry the paired bootstrap
interval of `eval compare`; the verdict sentences only say "improved" or "got worse" where the interval
excludes zero.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import yaml

from selfinstruct.evaluate.compare import CompareMetric, Comparison, compare_reports
from selfinstruct.evaluate.report import EvalReport, load_report
from selfinstruct.paths import atomic_write
from selfinstruct.reproduce.plan import ReproduceSettings, Step
from selfinstruct.reproduce.runner import StepRecord

PACKAGES = ("selfinstruct", "llama-cpp-python", "torch", "transformers", "peft", "trl", "gguf")
MIN_GROUP = 10
EVALS = {"superni": "SuperNI subset", "user": "User-oriented tasks (the paper's 252)"}


@dataclass(frozen=True)
class EvalPair:
    key: str
    label: str
    base: EvalReport
    tuned: EvalReport
    comparisons: dict[str, Comparison]  # metric -> comparison (tuned - base)


@dataclass
class Results:
    settings: ReproduceSettings
    steps: list[tuple[Step, StepRecord]]
    machine: dict[str, str]
    generation: dict[str, Any] = field(default_factory=dict)
    prepare: dict[str, Any] = field(default_factory=dict)  # stage 4's record (data/finetune.prepare.json)
    finetune: dict[str, Any] = field(default_factory=dict)
    evals: list[EvalPair] = field(default_factory=list)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def total_seconds(self) -> float:
        return sum(record.seconds for _, record in self.steps)

    def data_lines(self) -> list[str]:
        """What the training data was made of: stage 4's gate and decontamination, and Table 2 as each
        judge answered it on the generated data (plain sentences, for both pages)."""
        lines = []
        if self.prepare:
            gate = self.prepare.get("gate") or {}
            decon = self.prepare.get("decontamination") or {}
            kept = gate.get("kept")
            gate_text = (
                f"quality gate {gate.get('level')} (judge {gate.get('judge')}) kept {kept} of "
                f"{gate.get('considered')} instances"
                if kept is not None
                else "no quality gate"
            )
            decon_text = (
                f"decontamination against {', '.join(decon['sets'])} removed {decon.get('instances', 0)} "
                f"instances ({decon.get('instructions', 0)} instructions left without any)"
                if decon.get("sets")
                else "no decontamination"
            )
            lines.append(
                f"Training data: {self.prepare.get('rows', '?')} prompt/completion pairs; {gate_text}; "
                f"{decon_text}."
            )
        quality = self.generation.get("quality") or {}
        for judge in quality.get("judges") or []:
            shares = ", ".join(
                f"{label} {judge[key]['percent']:.0f}%"
                for key, label in (
                    ("valid_task", "valid task"),
                    ("input_ok", "input appropriate"),
                    ("output_ok", "output correct"),
                    ("all", "all three"),
                )
                if isinstance(judge.get(key), dict) and judge[key].get("percent") is not None
            )
            lines.append(
                f"Table 2 of the generated data as judged by {judge.get('rater')} ({judge.get('items')} "
                f"instances): {shares or 'nothing rated clearly'} (the paper's expert: 92%, 79%, 58%, 54%)."
            )
        return lines


def machine_facts() -> dict[str, str]:
    """What the numbers were measured on."""
    facts = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count() or "?"),
        "memory": _memory(),
    }
    for name in PACKAGES:
        try:
            facts[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "?"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def collect(
    out: Path, settings: ReproduceSettings, steps: Sequence[Step], records: Sequence[StepRecord]
) -> Results:
    results = Results(settings, list(zip(steps, records, strict=True)), machine_facts())
    results.generation = _read_json(out / "run" / "summary.json")
    results.prepare = _read_json(out / "data" / "finetune.prepare.json")
    results.finetune = _read_json(out / "model" / "selfinstruct_finetune.json")
    for key, label in EVALS.items():
        base_path, tuned_path = out / "eval" / f"base_{key}.json", out / "eval" / f"tuned_{key}.json"
        if not (base_path.is_file() and tuned_path.is_file()):
            continue
        base, tuned = load_report(base_path), load_report(tuned_path)
        seed = int(settings.compare.get("seed", 0))
        samples = int(settings.compare.get("samples", 1000))
        metrics: list[CompareMetric] = ["rougeL", "exact_match"]
        if any(item.judge for item in base.items) and any(item.judge for item in tuned.items):
            metrics.append("rating")
        comparisons: dict[str, Comparison] = {
            metric: compare_reports(
                base, tuned, metric, samples=samples, seed=seed, a_name="base", b_name="tuned"
            )
            for metric in metrics
        }
        results.evals.append(EvalPair(key, label, base, tuned, comparisons))
    return results


def _fmt_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def verdicts(pair: EvalPair, metric: str = "rougeL") -> list[str]:
    """Plain sentences: overall, then the groups (of MIN_GROUP items or more) whose interval excludes 0."""
    comparison = pair.comparisons[metric]
    overall = next(r for r in comparison.rows if r.level == "overall")
    ci = f"{overall.diff:+.2f}, 95% CI [{overall.ci_low:+.2f}, {overall.ci_high:+.2f}]"
    if overall.ci_low > 0:
        lines = [
            f"{pair.label}: the tuned model improved ({metric} {overall.a:.2f} -> {overall.b:.2f}, {ci})."
        ]
    elif overall.ci_high < 0:
        lines = [
            f"{pair.label}: the tuned model got worse ({metric} {overall.a:.2f} -> {overall.b:.2f}, {ci})."
        ]
    else:
        lines = [
            f"{pair.label}: no difference the interval can tell from zero "
            f"({metric} {overall.a:.2f} -> {overall.b:.2f}, {ci})."
        ]
    # A bootstrap interval over a handful of items says little: groups are named from MIN_GROUP items on.
    groups = [r for r in comparison.rows if r.level == "category" and r.significant and r.n >= MIN_GROUP]
    up = [f"{r.name} ({r.diff:+.1f})" for r in groups if r.diff > 0]
    down = [f"{r.name} ({r.diff:+.1f})" for r in groups if r.diff < 0]
    if up:
        lines.append(f"Better beyond the interval: {', '.join(up)}.")
    if down:
        lines.append(f"Worse beyond the interval: {', '.join(down)}.")
    return lines


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("selfinstruct.reproduce", "templates"),
        # By the name's ending: "results.html.j2" must match, or nothing on the HTML page is escaped.
        autoescape=jinja2.select_autoescape(["html", "html.j2"], default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _context(results: Results) -> dict[str, Any]:
    return {
        "r": results,
        "settings_yaml": yaml.safe_dump(results.settings.model_dump(mode="json"), sort_keys=False),
        "command": lambda argv: shlex.join(["selfinstruct", *argv]),
        "fmt_seconds": _fmt_seconds,
        "verdicts": verdicts,
        "md": _md_cell,
        "min_group": MIN_GROUP,
    }


def _md_cell(text: object) -> str:
    """Untrusted text (model output, task names) inside a Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def write_results(out: Path, results: Results) -> tuple[Path, Path]:
    """RESULTS.md and results.html in the loop's folder, each written whole through a temporary file."""
    env, context = _env(), _context(results)
    written = []
    for name, template in (("results.md", "results.md.j2"), ("results.html", "results.html.j2")):
        path = out / name
        page = env.get_template(template).render(**context)
        with atomic_write(path) as handle:  # a full disk or read-only folder is one line, not a traceback
            handle.write(page)
        written.append(path)
    return written[0], written[1]
