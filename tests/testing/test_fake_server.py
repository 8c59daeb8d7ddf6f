"""The fake OpenAI-compatible server, spoken to with plain httpx."""

from __future__ import annotations

import email.utils
import threading
import time

import httpx
import pytest

from selfinstruct.testing.fake_server import FakeOpenAIServer, FaultPlan, cut_reply


def _post(server: FakeOpenAIServer, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=body, timeout=10)


def test_completion_cut_by_max_tokens_reports_length_and_usage() -> None:
    with FakeOpenAIServer(lambda prompt, body: " one two\nthree four five") as server:
        reply = _post(server, "/completions", {"model": "m", "prompt": "a b c", "max_tokens": 3}).json()
    choice = reply["choices"][0]
    assert choice["text"] == " one two\nthree"
    assert choice["finish_reason"] == "length"
    assert reply["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_stop_sequence_wins_before_length() -> None:
    with FakeOpenAIServer(lambda prompt, body: "alpha beta\n\ngamma delta") as server:
        reply = _post(server, "/completions", {"prompt": "x", "max_tokens": 50, "stop": ["\n\n"]}).json()
    assert reply["choices"][0] == {"index": 0, "finish_reason": "stop", "text": "alpha beta"}


def test_chat_endpoint_answers_the_last_user_message() -> None:
    seen: list[str] = []

    def responder(prompt: str, body: dict[str, object]) -> str:
        seen.append(prompt)
        return "sure thing"

    with FakeOpenAIServer(responder) as server:
        body = {"messages": [{"role": "user", "content": "do it"}], "max_tokens": 10}
        reply = _post(server, "/chat/completions", body).json()
        models = httpx.get(f"{server.base_url}/models").json()
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": "sure thing"}
    assert seen == ["do it"]
    assert models["data"][0]["id"] == "fake-model"


def test_more_than_four_stops_are_rejected_like_openai() -> None:
    with FakeOpenAIServer() as server:
        response = _post(server, "/completions", {"prompt": "x", "stop": ["a", "b", "c", "d", "e"]})
    assert response.status_code == 400


def test_api_key_is_checked() -> None:
    with FakeOpenAIServer(api_key="sekret") as server:
        denied = _post(server, "/completions", {"prompt": "x"})
        allowed = httpx.post(
            f"{server.base_url}/completions",
            json={"prompt": "x"},
            headers={"Authorization": "Bearer sekret"},
        )
    assert (denied.status_code, allowed.status_code) == (401, 200)


def test_refusals_echo_the_authorization_header_and_basic_auth_is_checked() -> None:
    with FakeOpenAIServer(basic_auth=("ann", "pw")) as server:
        wrong = httpx.post(f"{server.base_url}/completions", json={"prompt": "x"}, auth=("ann", "nope"))
        right = httpx.post(f"{server.base_url}/completions", json={"prompt": "x"}, auth=("ann", "pw"))
    assert (wrong.status_code, right.status_code) == (401, 200)
    # Echoed as some real servers do, so that a client's redaction is really put to the test.
    assert "Basic YW5uOm5vcGU=" in wrong.json()["error"]["message"]


def test_sticky_garbage_is_the_same_for_the_same_prompt() -> None:
    plan = FaultPlan(seed=1, sticky_garbage=0.5, sticky_times=2)
    prompts = [f"prompt {i}" for i in range(40)]
    with FakeOpenAIServer(faults=plan) as server, httpx.Client() as http:
        rounds = [
            [http.post(f"{server.base_url}/completions", json={"prompt": p}) for p in prompts]
            for _ in range(3)
        ]
    bad = [i for i, r in enumerate(rounds[0]) if not _usable(r)]
    assert 8 <= len(bad) <= 32  # about half the prompts are picked
    for i in range(len(prompts)):
        # A picked prompt gets the very same malformed body twice, then a real answer; the others are fine.
        if i in bad:
            assert rounds[0][i].content == rounds[1][i].content and not _usable(rounds[1][i])
        assert _usable(rounds[2][i])
    assert server.faults_injected == {"sticky_garbage": 2 * len(bad)}
    bodies = {rounds[0][i].content for i in bad}
    assert len(bodies) > 2  # different prompts, different garbage


def _usable(response: httpx.Response) -> bool:
    try:
        choices = response.json().get("choices")
    except ValueError:
        return False
    return isinstance(choices, list) and bool(choices) and isinstance(choices[0], dict)


@pytest.mark.parametrize("fmt", ["ms", "date"])
def test_retry_after_in_milliseconds_or_as_an_http_date(fmt: str) -> None:
    plan = FaultPlan(rate_limit=1.0, retry_after=2.0, retry_after_format=fmt)  # type: ignore[arg-type]
    with FakeOpenAIServer(faults=plan) as server:
        response = _post(server, "/completions", {"prompt": "x"})
    if fmt == "ms":
        assert response.headers["retry-after-ms"] == "2000" and "retry-after" not in response.headers
    else:
        when = email.utils.parsedate_to_datetime(response.headers["retry-after"]).timestamp()
        assert 2.0 <= when - time.time() <= 3.5


def test_fault_plan_is_deterministic_and_close_to_its_shares() -> None:
    plan = FaultPlan(seed=7, rate_limit=0.1, server_error=0.1, empty=0.1, garbage=0.1)
    outcomes = []
    for _ in range(2):
        with FakeOpenAIServer(faults=plan) as server:
            with httpx.Client() as http:
                codes = [
                    http.post(f"{server.base_url}/completions", json={"prompt": "p q"}).status_code
                    for _ in range(200)
                ]
            outcomes.append((codes, dict(server.faults_injected)))
    assert outcomes[0] == outcomes[1]
    injected = outcomes[0][1]
    assert set(injected) == {"rate_limit", "server_error", "empty", "garbage"}
    assert all(10 <= count <= 35 for count in injected.values())
    codes = outcomes[0][0]
    assert codes.count(429) == injected["rate_limit"] and codes.count(500) == injected["server_error"]


def test_rate_limit_reply_carries_retry_after() -> None:
    with FakeOpenAIServer(faults=FaultPlan(rate_limit=1.0, retry_after=1.5)) as server:
        response = _post(server, "/completions", {"prompt": "x"})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1.5"


def test_stop_cuts_connections_and_refuses_new_ones() -> None:
    server = FakeOpenAIServer(latency=5.0).start()
    url = server.base_url
    with httpx.Client(timeout=10) as http:
        errors: list[BaseException] = []

        def call() -> None:
            try:
                http.post(f"{url}/completions", json={"prompt": "x"})
            except httpx.HTTPError as exc:
                errors.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.3)
        server.stop()
        thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1 and server.requests_served == 0
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}/completions", json={"prompt": "x"}, timeout=2)


@pytest.mark.parametrize(
    ("text", "max_tokens", "stops", "expected"),
    [
        ("a b c", 5, [], ("a b c", "stop")),
        ("a b c", 2, [], ("a b", "length")),
        ("a b STOP c d", 3, ["STOP"], ("a b ", "stop")),
        ("a b c d STOP", 2, ["STOP"], ("a b", "length")),
        ("", 3, [], ("", "stop")),
    ],
)
def test_cut_reply(text: str, max_tokens: int, stops: list[str], expected: tuple[str, str]) -> None:
    assert cut_reply(text, max_tokens, stops) == expected


def test_the_scale_responder_keeps_passing_the_novelty_filter() -> None:
    """At the paper's scale the pool holds tens of thousands of instructions: the scale responder's must
    stay new (the plain responder's few thousand combinations stop passing after a few hundred)."""
    from selfinstruct.novelty.index import NoveltyIndex
    from selfinstruct.parse import split_instructions
    from selfinstruct.prompts import generation_prompt
    from selfinstruct.testing.responder import scale_responder

    index = NoveltyIndex(top_k=0)
    kept = total = 0
    for n in range(300):
        prompt = generation_prompt([f"Task number {n} of the pool.", "Write a haiku about rain."])
        for item in split_instructions(scale_responder(prompt, {}), 3):
            total += 1
            kept += index.check_and_add(item).kept
    assert total > 1000 and kept / total > 0.98
