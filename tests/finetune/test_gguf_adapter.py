"""The GGUF LoRA adapter converter against llama.cpp itself, on a tiny llama GGUF written here.

The tiny base is a random transformers Llama whose weights are written to GGUF the way llama.cpp's own
converter does (query/key rows permuted). First llama.cpp's logits of that GGUF must equal transformers'
(the reference is sound); then a PEFT LoRA adapter with random, non-zero A and B is converted, loaded by
llama.cpp on top of the base, and its logits must equal the PEFT model's: the adapter changes llama.cpp's
logits by exactly what the LoRA matrices say.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
llama_cpp = pytest.importorskip("llama_cpp")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from selfinstruct.errors import AdapterConversionError  # noqa: E402
from selfinstruct.finetune.gguf_adapter import permute_rows, write_gguf_adapter  # noqa: E402
from selfinstruct.lm.llamacpp_load import load_high_level  # noqa: E402

VOCAB = 300  # 3 special tokens, 256 byte tokens (llama.cpp's SPM vocabulary needs <0x0A>), the rest plain
HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 128
TOKENS = [1, 70, 101, 200, 33, 150, 7, 299, 120, 42, 42, 64]


def _config() -> object:
    return transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=FFN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )


def write_tiny_llama_gguf(model: object, path: Path) -> None:
    """The model's fp32 weights as a llama GGUF, laid out as llama.cpp's converter lays them out."""
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tokens += [f"w{i}" for i in range(VOCAB - len(tokens))]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (VOCAB - 259)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * VOCAB)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, LAYERS)
    for hf_name, tensor in model.state_dict().items():
        data = tensor.detach().float().numpy()
        name = names.get_name(hf_name, try_suffixes=(".weight",))
        assert name is not None, hf_name
        if ".attn_q." in name:
            data = permute_rows(data, HEADS)
        elif ".attn_k." in name:
            data = permute_rows(data, KV_HEADS)
        writer.add_tensor(name, np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llama_cpp_logits(model_path: Path, lora_path: Path | None = None) -> np.ndarray:
    extra = {"lora_path": str(lora_path)} if lora_path else {}
    # AMX-safe, as every GGUF load in the project (llama.cpp's AMX path crashes on AMX VMs).
    llm = load_high_level(
        llama_cpp, model_path, n_ctx=64, n_batch=64, n_threads=1, logits_all=True, verbose=False, **extra
    )
    try:
        llm.eval(TOKENS)
        return np.array(llm.scores[: len(TOKENS)], dtype=np.float32)
    finally:
        llm.close()


def hf_logits(model: object) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([TOKENS])).logits[0].float().numpy()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(_config()).eval()
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama-f32.gguf"
    write_tiny_llama_gguf(model, path)
    return model, path


def _adapter(model: object, directory: Path, **lora: object) -> object:
    """A LoRA with random A and B (PEFT's init_lora_weights=False): its effect is far from zero."""
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj"],
        init_lora_weights=False,
        **lora,
    )
    torch.manual_seed(1)
    tuned = peft.get_peft_model(model, config).eval()
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.mul_(0.2)  # a clear but not overwhelming change of the logits
    tuned.save_pretrained(directory)
    return tuned


def test_llama_cpp_reads_the_tiny_base_as_transformers_does(tiny: tuple[object, Path]) -> None:
    model, path = tiny
    np.testing.assert_allclose(llama_cpp_logits(path), hf_logits(model), atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("rslora", [False, True])
def test_adapter_changes_llama_cpp_logits_as_the_lora_says(
    tiny: tuple[object, Path], tmp_path: Path, rslora: bool
) -> None:
    import copy

    model, base = tiny
    tuned = _adapter(copy.deepcopy(model), tmp_path / "adapter", use_rslora=rslora)
    info = write_gguf_adapter(tmp_path / "adapter", base, tmp_path / "adapter.gguf")
    assert info.tensors == LAYERS * 6 and info.rank == 4 and info.architecture == "llama"
    assert info.alpha == pytest.approx(16.0 if rslora else 8.0)  # rsLoRA's alpha/sqrt(r) as alpha/r

    reader = gguf.GGUFReader(tmp_path / "adapter.gguf")
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert {t.name for t in reader.tensors} >= {"blk.0.attn_q.weight.lora_a", "blk.1.ffn_down.weight.lora_b"}

    base_cpp, tuned_cpp = llama_cpp_logits(base), llama_cpp_logits(base, tmp_path / "adapter.gguf")
    base_hf, tuned_hf = hf_logits(model), hf_logits(tuned)
    assert np.abs(tuned_hf - base_hf).mean() > 0.05  # the LoRA matters...
    np.testing.assert_allclose(tuned_cpp, tuned_hf, atol=2e-3, rtol=1e-3)  # ...and llama.cpp applies it
    np.testing.assert_allclose(tuned_cpp - base_cpp, tuned_hf - base_hf, atol=3e-3, rtol=1e-3)


def test_unsupported_adapters_are_refused(tiny: tuple[object, Path], tmp_path: Path) -> None:
    import copy

    model, base = tiny
    _adapter(copy.deepcopy(model), tmp_path / "dora", use_dora=True)
    with pytest.raises(AdapterConversionError, match="DoRA"):
        write_gguf_adapter(tmp_path / "dora", base, tmp_path / "dora.gguf")
    with pytest.raises(AdapterConversionError, match="no PEFT adapter"):
        write_gguf_adapter(tmp_path, base, tmp_path / "none.gguf")
    assert not list(tmp_path.glob("*.gguf*"))  # nothing half-written


def _finetune(base: Path, data: Path, out: Path, **settings: object) -> object:
    from selfinstruct.finetune import build_config, run_finetune

    values: dict[str, object] = {
        "include_seeds": False,
        "max_seq_length": 96,
        "batch_size": 4,
        "max_steps": 3,
        "learning_rate": 2e-2,
        "lora_dropout": 0.0,
        "progress": False,
    }
    return run_finetune(build_config(data=data, base=str(base), out=out, **{**values, **settings}))


def test_finetune_on_a_gguf_base_writes_the_adapter_llama_cpp_runs(
    tiny: tuple[object, Path], instances_file: Path, tmp_path: Path
) -> None:
    """`finetune --base x.gguf`, LoRA: OUT/adapter.gguf on llama.cpp equals the merged model."""
    _, base = tiny
    out = tmp_path / "tuned"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = _finetune(base, instances_file, out)
    # PEFT's "Could not find a config file in <the GGUF's folder>" at every save is silenced (issue 21).
    assert not [w for w in caught if "Could not find a config file" in str(w.message)]
    assert summary.gguf_adapter == str(out / "adapter.gguf") and summary.gguf_base == str(base)
    merged = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    base_cpp, tuned_cpp = llama_cpp_logits(base), llama_cpp_logits(base, out / "adapter.gguf")
    tuned_hf = hf_logits(merged)
    change = np.abs(tuned_cpp - base_cpp).max()
    assert change > 0.05  # three steps at a high rate moved the model...
    assert np.abs(tuned_cpp - tuned_hf).max() < change / 20  # ...and llama.cpp + adapter is that model


def test_full_finetuning_on_a_gguf_base_says_there_is_no_adapter(
    tiny: tuple[object, Path], instances_file: Path, tmp_path: Path
) -> None:
    _, base = tiny
    summary = _finetune(base, instances_file, tmp_path / "full", method="full", max_steps=1)
    assert summary.gguf_adapter is None and "full fine-tuning" in (summary.gguf_note or "")
    assert not (tmp_path / "full" / "adapter.gguf").exists()
