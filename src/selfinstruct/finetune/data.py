"""Training data for fine-tuning: resolve `--data`, add seed tasks, hand TRL a prompt/completion dataset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from selfinstruct.errors import UserError
from selfinstruct.lm.embedded import EMBEDDED_EOS
from selfinstruct.pipeline.prepare import DEFAULT_EOS, read_finetune_data
from selfinstruct.records import FinetuneExample, Task
from selfinstruct.seeds import user_oriented

if TYPE_CHECKING:
    from datasets import Dataset

# Files `selfinstruct export RUN_DIR` writes, in order of preference: the prepared pairs carry the run's
# own seed and template draws; the instance file is encoded here if it is all there is.
RUN_DIR_FILES = ("export/finetune.jsonl", "export/all_generated_instances.jsonl")


GATED_DATA = "training_data.jsonl"  # a gated run's stage-4 data, written into the model folder


def gated_data_file(
    data: Path, out: Path, min_quality: str, gate_judge: str | None, include_seeds: bool
) -> Path | None:
    """For a run directory whose quality gate applies (`quality.gate`): its stage-4 data with only the
    instances that pass, prepared as `selfinstruct prepare` does into OUT/training_data.jsonl (what the
    model was trained on stays beside it). None where no gate applies (a file, or an unrated run)."""
    from selfinstruct.pipeline.prepare import prepare_run
    from selfinstruct.quality.gate import apply_gate
    from selfinstruct.store import DB_NAME, RunStore

    if not (data / DB_NAME).is_file() or min_quality == "none":
        return None
    store = RunStore.open(data)
    try:
        gate = apply_gate(store, min_quality, gate_judge)
    finally:
        store.close()
    if gate.passed is None:
        return None
    out.mkdir(parents=True, exist_ok=True)
    result = prepare_run(
        data, out / GATED_DATA, include_seeds=include_seeds, min_quality=min_quality, gate_judge=gate_judge
    )
    return result.path


def resolve_data_file(data: Path) -> Path:
    """A JSONL file as is, or the exported training file of a run directory."""
    if data.is_file():
        return data
    if data.is_dir():
        for name in RUN_DIR_FILES:
            if (data / name).is_file():
                return data / name
        raise UserError(
            f"{data} has no exported training data ({' or '.join(RUN_DIR_FILES)}): "
            f"run `selfinstruct export {data}` first"
        )
    raise UserError(f"--data {data}: no such file or directory")


def _run_seed_tasks(run_dir: Path) -> list[Task] | None:
    """The seed tasks a run was generated from, when its store records them."""
    try:
        from selfinstruct.store import RunStore
    except ImportError:  # the store is optional for fine-tuning a plain file
        return None
    try:
        store = RunStore.open(run_dir)
    except UserError:  # a folder with exported files but no run database
        return None
    try:
        return store.seed_tasks() if store.has_seeds() else None
    finally:
        store.close()


def seed_tasks_for(data: Path, seeds: Path | None, *, allow_eval_data: bool = False) -> list[Task]:
    """`--seeds` if given, else the run's own seeds (run directory), else the project's default set."""
    from selfinstruct.seeds import load_seed_tasks

    if seeds is not None:
        return load_seed_tasks(seeds, allow_eval_data=allow_eval_data, force_flag=user_oriented.FORCE_FLAG)
    if data.is_dir():
        run_seeds = _run_seed_tasks(data)
        if run_seeds:
            return run_seeds
    return load_seed_tasks(None)


def load_examples(
    data: Path,
    *,
    include_seeds: bool = True,
    seeds: Path | None = None,
    seed: int = 0,
    allow_eval_data: bool = False,
    gated: Path | None = None,
) -> tuple[Path, list[FinetuneExample]]:
    """Resolve `data` (or take the `gated` file prepared from it) and read its examples (stage 4 encoding
    for instance files, seeds added).

    The paper's user-oriented evaluation set is refused as data or seeds unless `allow_eval_data`."""
    if not allow_eval_data and user_oriented.is_user_oriented_name(data):
        raise user_oriented.refuse_for_training("--data", data)
    path = gated if gated is not None else resolve_data_file(data)
    seed_tasks = seed_tasks_for(data, seeds, allow_eval_data=allow_eval_data) if include_seeds else []
    examples = read_finetune_data(path, seed=seed, seed_tasks=seed_tasks)
    if not examples:
        raise UserError(f"{path}: no training examples")
    if not allow_eval_data:
        matches = user_oriented.count_matches(prompts=(ex.prompt for ex in examples))
        if matches:
            raise user_oriented.refuse_for_training("--data", data, matches)
    return path, examples


# End-of-sequence texts stage 4 may have written (`selfinstruct prepare --eos`, the run's model's): the
# paper's GPT-3 one first, then Gemma's, Llama 2's / Mistral's, Qwen's chat end, Llama 3's.
KNOWN_EOS_MARKERS = (DEFAULT_EOS, EMBEDDED_EOS, "</s>", "<|im_end|>", "<|end_of_text|>", "<|eot_id|>")


def common_eos_marker(completions: Sequence[str]) -> str | None:
    """The known EOS text that every completion ends with (a prepared file uses one), else None."""
    if not completions:
        return None
    for marker in KNOWN_EOS_MARKERS:
        if all(c.endswith(marker) for c in completions):
            return marker
    return None


def swap_eos(completion: str, eos_token: str, marker: str | None = DEFAULT_EOS) -> str:
    """Replace the file's EOS text (`marker`) by the model's own EOS token; add it where missing."""
    if marker and completion.endswith(marker) and marker != eos_token:
        completion = completion[: -len(marker)]
    return completion if completion.endswith(eos_token) else completion + eos_token


def to_dataset(examples: Sequence[FinetuneExample], eos_token: str) -> Dataset:
    """A `datasets.Dataset` in TRL's prompt-completion format (TRL masks the prompt out of the loss)."""
    from datasets import Dataset

    completions = [ex.completion for ex in examples]
    marker = common_eos_marker(completions)
    return Dataset.from_dict(
        {
            "prompt": [ex.prompt for ex in examples],
            "completion": [swap_eos(c, eos_token, marker) for c in completions],
        }
    )
