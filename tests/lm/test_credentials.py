"""Credentials in a --base-url (`http://user:secret@host/v1`): sent as Basic auth, never stored, printed
or logged. The end-to-end tests run the real CLI against the fake server and grep every byte it left."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.conftest import generate_command

from selfinstruct.config import resolve_settings
from selfinstruct.errors import LMError
from selfinstruct.lm.base import Decoding, Request
from selfinstruct.lm.client import LMClient
from selfinstruct.lm.credentials import UrlCredentials, public_url, public_urls, split_credentials
from selfinstruct.lm.openai_compat import OpenAICompatLM
from selfinstruct.lm.settings import LMSettings
from selfinstruct.testing.fake_server import FakeOpenAIServer
from selfinstruct.testing.responder import self_instruct_responder

USER, SECRET = "alice", "pw-5ecr3t-9z"
TOKEN = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()  # what the Basic header carries


def _with_credentials(url: str, user: str = USER, password: str = SECRET) -> str:
    return url.replace("http://", f"http://{user}:{password}@", 1)


@pytest.mark.parametrize(
    ("url", "public", "credentials"),
    [
        ("http://h:8000/v1", "http://h:8000/v1", None),
        ("http://u:p@h:8000/v1", "http://h:8000/v1", UrlCredentials("u", "p")),
        ("https://u:p%40ss%3Aw@H.example/v1?x=1", "https://H.example/v1?x=1", UrlCredentials("u", "p@ss:w")),
        ("http://u:p@[::1]:8080/v1", "http://[::1]:8080/v1", UrlCredentials("u", "p")),
        ("http://u:p@[::1]/v1", "http://[::1]/v1", UrlCredentials("u", "p")),
        ("http://u:p@[2001:DB8::1]:8000/v1/", "http://[2001:DB8::1]:8000/v1/", UrlCredentials("u", "p")),
        ("http://[::1]:8000/v1", "http://[::1]:8000/v1", None),
        ("http://token@h/v1", "http://h/v1", UrlCredentials("token", "")),
        # Case, ports, paths, queries and fragments as written; an "@" after the host is not user-info.
        ("HTTPS://u:p@GPU-Host.Example:443/V1", "HTTPS://GPU-Host.Example:443/V1", UrlCredentials("u", "p")),
        (
            "http://u:p@h:8000/a/b?key=v@x&y=1#frag@z",
            "http://h:8000/a/b?key=v@x&y=1#frag@z",
            UrlCredentials("u", "p"),
        ),
        ("http://h/v1?user=a@b", "http://h/v1?user=a@b", None),
        ("http://u:p@h/v1?", "http://h/v1?", UrlCredentials("u", "p")),
        ("http://u:p@h:8000", "http://h:8000", UrlCredentials("u", "p")),
        ("http://us%40er:p:w@h/", "http://h/", UrlCredentials("us@er", "p:w")),
        ("//u:p@h/v1", "//h/v1", UrlCredentials("u", "p")),
    ],
)
def test_split_credentials(url: str, public: str, credentials: UrlCredentials | None) -> None:
    assert split_credentials(url) == (public, credentials)
    assert public_url(url) == public
    assert "p@ss" not in repr(split_credentials(url)[1])


def test_public_urls_makes_the_dumped_url_lists_public() -> None:
    dumped = {"base_url": ["http://u:p@[::1]:8000/v1", "http://h/v1"], "judge_base_url": ["http://a:b@j/v1"]}
    assert public_urls(dumped, "base_url", "judge_base_url") == {
        "base_url": ["http://[::1]:8000/v1", "http://h/v1"],
        "judge_base_url": ["http://j/v1"],
    }
    assert public_urls(None, "base_url") is None  # an unset judge dumps as None


def _client(url: str, key_env: str = "SI_TEST_KEY") -> LMClient:
    settings = LMSettings(backend="openai", base_url=[url], model="fake-model", api_key_env=key_env)
    return LMClient(OpenAICompatLM(settings), settings, backoff_initial=0.01, backoff_max=0.05)


async def _ask(client: LMClient) -> str:
    try:
        return (await client.complete(Request("Say hi", Decoding(max_tokens=8)))).text
    finally:
        await client.aclose()


def test_url_credentials_go_as_basic_auth_even_with_an_api_key_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SI_TEST_KEY", "sk-env-key-1")  # set too: the URL's credentials win there
    with FakeOpenAIServer(basic_auth=(USER, SECRET)) as server:
        client = _client(_with_credentials(server.base_url))
        assert asyncio.run(_ask(client)) == " Say hi"
        [stats] = client.endpoint_stats()
        assert stats.endpoint == server.base_url  # shown without the credentials
    # Endpoints without credentials in their URL still get the key.
    with FakeOpenAIServer(api_key="sk-env-key-1") as server:
        assert asyncio.run(_ask(_client(server.base_url))) == " Say hi"


def test_a_refused_password_is_masked_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SI_TEST_KEY", raising=False)
    with FakeOpenAIServer(basic_auth=(USER, "another-password")) as server, pytest.raises(LMError) as info:
        asyncio.run(_ask(_client(_with_credentials(server.base_url))))
    message = str(info.value)
    # The fake echoes the Authorization header it got: the token (base64 of user:password) is masked.
    assert "401" in message and "Authorization 'Basic ***'" in message
    assert SECRET not in message and TOKEN not in message and f"{USER}:" not in message


def test_settings_dump_drops_the_credentials_but_keeps_them_for_the_requests() -> None:
    settings = resolve_settings(
        None, {"lm.backend": "openai", "lm.base_url": [f"http://{USER}:{SECRET}@h/v1"]}
    )
    assert settings.lm.base_url == [f"http://{USER}:{SECRET}@h/v1"]  # in memory, for the backend
    assert settings.model_dump(mode="json")["lm"]["base_url"] == ["http://h/v1"]
    assert SECRET not in settings.model_dump_json()


def test_every_settings_model_dumps_the_urls_public_through_the_one_function() -> None:
    """The run's LM and judge (`RunSettings`) and the evaluation's (`EvalSettings`): IPv6 kept bracketed."""
    from selfinstruct.evaluate.settings import EvalSettings

    secret = f"http://{USER}:{SECRET}@[::1]:8000/v1?x=1"
    run = resolve_settings(
        None,
        {"lm.backend": "openai", "lm.base_url": [secret], "quality.judge_base_url": [secret]},
    )
    dumped = run.model_dump(mode="json")
    assert dumped["lm"]["base_url"] == dumped["quality"]["judge_base_url"] == ["http://[::1]:8000/v1?x=1"]
    lm = LMSettings(backend="openai", base_url=[secret])
    evaluation = EvalSettings(lm=lm, judge=lm).model_dump(mode="json")
    assert evaluation["lm"]["base_url"] == evaluation["judge"]["base_url"] == ["http://[::1]:8000/v1?x=1"]
    assert SECRET not in run.model_dump_json() + EvalSettings(lm=lm, judge=lm).model_dump_json()


def _files_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _leaks(blobs: dict[str, bytes]) -> list[str]:
    needles = [SECRET.encode(), TOKEN.encode(), SECRET.encode("utf-16-le")]
    return [name for name, blob in blobs.items() if any(n in blob for n in needles)]


def test_the_password_reaches_no_file_and_no_output(tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": "sk-also-set-77", "PYTHONUNBUFFERED": "1"}
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(self_instruct_responder, basic_auth=(USER, SECRET)) as server:
        url = _with_credentials(server.base_url)
        done = subprocess.run(
            generate_command(run_dir, url, num=6), capture_output=True, env=env, timeout=300
        )
        assert done.returncode == 0, done.stderr.decode()
        assert server.requests_served > 0
        # The summary shows the endpoint, without its credentials.
        summary = json.loads((run_dir / "summary.json").read_text())
        assert [e["endpoint"] for e in summary["endpoints"]] == [server.base_url]
        # A wrong password: exit 1, one line, the password still nowhere.
        wrong = _with_credentials(server.base_url, password=SECRET + "-old")
        refused = subprocess.run(
            generate_command(tmp_path / "refused", wrong, num=6), capture_output=True, env=env, timeout=300
        )
        assert refused.returncode == 1
        assert len(refused.stderr.decode().strip().splitlines()) == 1, refused.stderr.decode()
    assert {"run.sqlite", "summary.json", "summary.md"} <= set(_files_bytes(run_dir))
    outputs = {
        "generate stdout": done.stdout,
        "generate stderr": done.stderr,
        "refused stdout": refused.stdout,
        "refused stderr": refused.stderr,
    }
    blobs = {**_files_bytes(run_dir), **_files_bytes(tmp_path / "refused"), **outputs}
    assert _leaks(blobs) == []
    # The check itself can fail: the URL as typed would be found.
    assert _leaks({"typed": url.encode()}) == ["typed"]


def test_the_password_is_not_in_the_wal_of_a_killed_run(tmp_path: Path) -> None:
    """Killed mid-run the WAL is left as it was: its bytes must be clean too."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with FakeOpenAIServer(self_instruct_responder, basic_auth=(USER, SECRET), latency=0.05) as server:
        command = generate_command(run_dir, _with_credentials(server.base_url), num=200)
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wal = run_dir / "run.sqlite-wal"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if wal.exists() and server.requests_served >= 20:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    blobs = _files_bytes(run_dir)
    assert "run.sqlite-wal" in blobs and server.requests_served >= 20
    assert _leaks(blobs) == []
