"""The GPU benchmark script (tiny config on CPU here) and CUDA runs that skip cleanly without a GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from selfinstruct.finetune import build_config, run_finetune

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "finetune_gpu.py"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("finetune_gpu_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_table_picks_the_right_card() -> None:
    bench = _bench()
    assert bench.peak_flops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4e12)
    assert bench.peak_flops("NVIDIA H100 PCIe") == pytest.approx(756e12)
    assert bench.peak_flops("NVIDIA H200") == pytest.approx(989.4e12)
    assert bench.peak_flops("Some CPU") is None


def test_qwen2_config_is_about_half_a_billion_parameters() -> None:
    from transformers import AutoModelForCausalLM

    config = _bench().qwen2_config(tiny=False)
    with torch.device("meta"):  # shapes only, no memory
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    assert 480e6 < params < 510e6


def test_benchmark_script_runs_tiny() -> None:
    result = _bench().main(["--tiny", "--windows", "2"])
    assert result["steps"] == 1 + 2
    assert len(result["windows_tokens_per_s"]) == 2
    assert result["tokens_per_s_median"] > 0
    if not torch.cuda.is_available():
        assert result["mfu"] is None and result["precision"] == "fp32"


def test_benchmark_anchor_setup_with_lora_runs_tiny() -> None:
    """The issue's anchor layout (no packing, full rows) with LoRA: 4N FLOPs per token, few trainables."""
    result = _bench().main(["--tiny", "--windows", "1", "--method", "lora", "--no-packing", "--full-rows"])
    assert result["packing"] == "none" and result["method"] == "lora"
    assert 0 < result["trainable_parameters"] < result["parameters"] / 4  # r8 on a 64-wide model
    assert result["flops_per_token"] == 4 * result["parameters"]
    assert result["tokens_per_s_median"] > 0


@pytest.mark.gpu
@needs_cuda
def test_benchmark_reports_mfu_on_cuda() -> None:
    result = _bench().main(["--tiny", "--windows", "2"])
    assert result["precision"] == "bf16"
    assert result["peak_memory_gib"] is not None
    if _bench().peak_flops(torch.cuda.get_device_name()) is not None:
        assert result["mfu"] is not None and 0 < result["mfu"] < 1


@pytest.mark.gpu
@needs_cuda
def test_bf16_lora_run_on_cuda(tiny_base: Path, instances_file: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    out = tmp_path / "gpu"
    cfg = build_config(
        data=instances_file, base=str(tiny_base), out=out, max_steps=3, include_seeds=False, progress=False
    )
    summary = run_finetune(cfg)
    assert summary.precision == "bf16" and summary.steps == 3
    assert AutoModelForCausalLM.from_pretrained(out) is not None
