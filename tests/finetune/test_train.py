"""Fine-tuning on CPU with a tiny random Llama: LoRA and full, loss masking, reload + generate, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfinstruct.errors import UserError
from selfinstruct.finetune import build_config, run_finetune
from selfinstruct.finetune.train import SUMMARY_NAME, build_trainer
from selfinstruct.pipeline.prepare import write_finetune_jsonl
from selfinstruct.records import FinetuneExample

EOS = "<|endoftext|>"  # the tiny tokenizer's end-of-sequence token (conftest.py)


def _config(data: Path, base: Path, out: Path, **kw: object):
    settings: dict[str, object] = {
        "include_seeds": False,
        "max_seq_length": 64,
        "batch_size": 4,
        "progress": False,
        "learning_rate": 5e-3,
    }
    settings.update(kw)
    return build_config(data=data, base=str(base), out=out, **settings)


def _generate(model_dir: Path, prompt: str) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > ids["input_ids"].shape[1]
    return tokenizer.decode(out[0, ids["input_ids"].shape[1] :])


def test_prompt_tokens_are_masked_from_the_loss(
    tiny_base: Path, instances_file: Path, tmp_path: Path
) -> None:
    trainer, facts = build_trainer(_config(instances_file, tiny_base, tmp_path / "m"))
    tokenizer = trainer.processing_class
    assert facts["examples"] == len(trainer.train_dataset)
    raw = trainer.train_dataset  # tokenized by TRL, labels built from the completion mask
    assert "labels" in raw.column_names
    seen_prompt_tokens = 0
    from selfinstruct.finetune.data import load_examples

    _, examples = load_examples(instances_file, include_seeds=False)
    by_ids = {tuple(tokenizer(ex.prompt + ex.completion)["input_ids"]): ex for ex in examples}
    for row in raw:
        ex = by_ids[tuple(row["input_ids"])]
        n_prompt = len(tokenizer(ex.prompt)["input_ids"])
        labels = row["labels"]
        assert all(label == -100 for label in labels[:n_prompt])
        assert labels[n_prompt:] == row["input_ids"][n_prompt:]
        assert tokenizer.decode(labels[n_prompt:]) == ex.completion  # the completion, ending with EOS
        assert ex.completion.endswith(EOS)
        seen_prompt_tokens += n_prompt
    assert seen_prompt_tokens > 0
    # The collator keeps the mask and pads labels with -100 too.
    batch = trainer.data_collator([raw[0], raw[1], raw[2]])
    assert batch["labels"].shape == batch["input_ids"].shape
    pad = batch["attention_mask"] == 0
    assert (batch["labels"][pad] == -100).all()
    assert (batch["labels"] == -100).sum() > pad.sum()


def test_lora_trains_saves_adapter_and_merged_model(
    tiny_base: Path, instances_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lora"
    summary = run_finetune(_config(instances_file, tiny_base, out, max_steps=4, save_steps=10))
    assert summary.steps == 4 and summary.method == "lora"
    assert summary.tokens > 0 and summary.train_seconds > 0
    assert [s for s, _ in summary.loss_history] == [1, 2, 3, 4]
    assert summary.final_loss == summary.loss_history[-1][1]
    assert 0 < summary.trainable_parameters < summary.total_parameters
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert (out / "checkpoints" / "checkpoint-4").is_dir()  # saved at the end even off the save_steps grid
    written = json.loads((out / SUMMARY_NAME).read_text())
    assert written["steps"] == 4 and len(written["loss_history"]) == 4
    assert isinstance(_generate(out, "Add the two numbers.\nInput: 2 and 3\nOutput:"), str)

    # The merged model equals base + adapter.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[5, 17, 42, 99, 120]])
    merged = AutoModelForCausalLM.from_pretrained(out)
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), out / "adapter")
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    with torch.no_grad():
        a, b, c = (m.eval()(ids).logits for m in (merged, with_adapter, base))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(a, c, atol=1e-4)


def test_loss_goes_down_with_full_finetuning(tiny_base: Path, instances_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "full"
    summary = run_finetune(
        _config(
            instances_file, tiny_base, out, method="full", max_steps=12, learning_rate=3e-3, save_steps=100
        )
    )
    assert summary.adapter_dir is None and not (out / "adapter").exists()
    assert summary.trainable_parameters == summary.total_parameters
    losses = [loss for _, loss in summary.loss_history]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3  # it learns
    assert isinstance(_generate(out, "Name a primary colour.\nOutput:"), str)


def test_rerun_resumes_from_last_checkpoint(tiny_base: Path, instances_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    first = run_finetune(_config(instances_file, tiny_base, out, max_steps=2, save_steps=2))
    assert first.resumed_from is None and first.steps == 2
    second = run_finetune(_config(instances_file, tiny_base, out, max_steps=4, save_steps=2))
    assert second.resumed_from is not None and second.resumed_from.endswith("checkpoint-2")
    assert second.steps == 4
    # The first two steps come from the restored trainer state, not from training them again.
    assert second.loss_history[:2] == first.loss_history
    assert [s for s, _ in second.loss_history] == [1, 2, 3, 4]
    state = json.loads((out / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def test_checkpoints_of_another_training_run_are_refused_or_restarted(
    tiny_base: Path, instances_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resume"
    run_finetune(_config(instances_file, tiny_base, out, max_steps=2, save_steps=2))
    # Other LoRA rank, or other data: resuming would continue the wrong training.
    with pytest.raises(UserError, match=r"checkpoints of another training run \(changed: lora_r\)"):
        run_finetune(_config(instances_file, tiny_base, out, max_steps=4, save_steps=2, lora_r=4))
    other_data = tmp_path / "other.jsonl"
    other_data.write_text("\n".join(instances_file.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(UserError, match=r"changed: the data"):
        run_finetune(_config(other_data, tiny_base, out, max_steps=4, save_steps=2))
    # Fewer steps than the checkpoint holds is not a resume either.
    with pytest.raises(UserError, match=r"past --max-steps 1"):
        run_finetune(_config(instances_file, tiny_base, out, max_steps=1, save_steps=2))
    again = run_finetune(_config(other_data, tiny_base, out, max_steps=2, save_steps=2, restart=True))
    assert again.resumed_from is None and again.steps == 2


def test_packing_builds_full_rows(tiny_base: Path, instances_file: Path, tmp_path: Path) -> None:
    cfg = _config(instances_file, tiny_base, tmp_path / "packed", packing=True, max_steps=2, batch_size=2)
    trainer, facts = build_trainer(cfg)
    assert len(trainer.train_dataset) < facts["examples"]  # several examples share a row
    assert max(len(r["input_ids"]) for r in trainer.train_dataset) <= 64
    trainer.train()
    assert trainer.state.global_step == 2


def test_prompt_completion_file_with_seed_tasks(tiny_base: Path, tmp_path: Path) -> None:
    data = tmp_path / "pc.jsonl"
    write_finetune_jsonl(
        [FinetuneExample(f"Say the number {i}.\nOutput:", f" {i}<|endoftext|>") for i in range(10)], data
    )
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(
        json.dumps(
            {
                "id": "seed_task_0",
                "name": "colour",
                "instruction": "Name a primary colour.",
                "instances": [{"input": "", "output": "blue"}],
                "is_classification": False,
            }
        )
        + "\n",
        encoding="utf-8",
    )
    _, facts = build_trainer(_config(data, tiny_base, tmp_path / "m", include_seeds=True, seeds=seeds))
    assert facts["examples"] == 11


def test_run_directory_needs_an_export(tiny_base: Path, instances_file: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(UserError, match="selfinstruct export"):
        run_finetune(_config(run, tiny_base, tmp_path / "m"))
    (run / "export").mkdir()
    (run / "export" / "all_generated_instances.jsonl").write_text(instances_file.read_text())
    _, facts = build_trainer(_config(run, tiny_base, tmp_path / "m"))
    assert facts["data_file"].endswith("all_generated_instances.jsonl")


def test_bad_base_model_is_a_user_error(instances_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--base"):
        build_trainer(_config(instances_file, tmp_path / "no-such-model", tmp_path / "m"))


def test_packed_rows_give_the_loss_of_the_examples_apart(
    tiny_base: Path, instances_file: Path, tmp_path: Path
) -> None:
    """Packing (the MFU option): padding-free rows with position ids, attention kept within each example."""
    import torch

    padded, _ = build_trainer(_config(instances_file, tiny_base, tmp_path / "a", method="full"))
    packed, _ = build_trainer(
        _config(instances_file, tiny_base, tmp_path / "b", method="full", packing=True, max_seq_length=128)
    )
    row = max(packed.train_dataset, key=lambda r: len(r["seq_lengths"]))
    assert len(row["seq_lengths"]) >= 3  # several examples share the row, no padding
    batch = packed.data_collator([row])
    assert "attention_mask" not in batch and batch["input_ids"].shape[1] == sum(row["seq_lengths"])
    ends = torch.tensor(row["seq_lengths"]).cumsum(0).tolist()
    pieces = [
        {"input_ids": row["input_ids"][a:b], "labels": row["labels"][a:b]}
        for a, b in zip([0, *ends[:-1]], ends, strict=True)
    ]
    apart = padded.data_collator(pieces)  # the same examples, one padded row each
    model = padded.model.eval()
    with torch.no_grad():
        loss_packed = model(**batch).loss
        loss_apart = model(**apart).loss
        # Without the position ids the examples would attend to each other: a different loss.
        crossed = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    torch.testing.assert_close(loss_packed, loss_apart, atol=1e-5, rtol=1e-5)
    assert abs(float(crossed) - float(loss_apart)) > 1e-4  # 10x the tolerance above


def test_speed_options_reach_the_trainer(tmp_path: Path) -> None:
    import importlib.util

    from selfinstruct.finetune.train import sft_arguments

    cfg = build_config(data=tmp_path, out=tmp_path, torch_compile=True, optim="adamw_torch", packing=True)
    args = sft_arguments(cfg, tmp_path, "fp32")
    assert args.torch_compile and args.optim == "adamw_torch" and args.packing and args.padding_free is False
    assert (
        sft_arguments(build_config(data=tmp_path, out=tmp_path), tmp_path, "fp32").optim
        == "adamw_torch_fused"
    )
    if importlib.util.find_spec("liger_kernel") is None:
        with pytest.raises(UserError, match="liger-kernel"):
            sft_arguments(build_config(data=tmp_path, out=tmp_path, liger_kernel=True), tmp_path, "fp32")


def test_a_second_training_into_the_same_folder_is_refused_while_one_runs(
    tiny_base: Path, instances_file: Path, tmp_path: Path
) -> None:
    """Two trainings into one OUT would mix their checkpoints: the second is refused before it loads
    anything, and the folder is usable again once the first lets go."""
    from selfinstruct.errors import ResourceBusyError
    from selfinstruct.paths import lock_folder

    out = tmp_path / "m"
    out.mkdir()
    held = lock_folder(out, "model")  # as the running training holds it (flock: per open file)
    try:
        with pytest.raises(ResourceBusyError, match=rf"^{out}: another selfinstruct process \(pid \d+\)"):
            run_finetune(_config(instances_file, tiny_base, out, max_steps=1))
        assert not (out / "checkpoints").exists()
    finally:
        held.release()
    assert run_finetune(_config(instances_file, tiny_base, out, max_steps=1)).steps == 1
