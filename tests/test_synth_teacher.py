"""The OpenAI-compatible teacher client against a real, misbehaving HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import time

import pytest
from fake_teacher import FakeTeacher, Fault

from plumbing import InputError
from synthesis.seeds import Seed
from synthesis.teacher import (
    OpenAITeacher,
    TeacherConfig,
    TeacherRequest,
    TeacherUnreachable,
    make_teacher,
    parse_retry_after,
)

FAST = dict(timeout_s=0.5, max_retries=3, backoff_s=0.01, max_backoff_s=0.05, jitter_seed=0)


def _requests(prompts: list[str]) -> list[TeacherRequest]:
    return [TeacherRequest(f"k{i}", p, Seed(id=f"s{i}", code="")) for i, p in enumerate(prompts)]


def _echo(prompt: str) -> str:
    return f"answer to {prompt}"


FAULTS = {
    "429 once": lambda attempt: (
        Fault("status", status=429, retry_after=0.3) if attempt == 0 else None
    ),
    "500 twice": lambda attempt: Fault("status", status=500) if attempt < 2 else None,
    "hang once": lambda attempt: Fault("hang", seconds=1.5) if attempt == 0 else None,
    "drop once": lambda attempt: Fault("drop") if attempt == 0 else None,
    "garbage once": lambda attempt: (
        Fault("bytes", body=b"\xff\xfe<html>") if attempt == 0 else None
    ),
    "bad utf-8 content": lambda attempt: Fault("content_bytes"),
    "truncated": lambda attempt: Fault("length"),
    "always 503": lambda attempt: Fault("status", status=503),
    "400": lambda attempt: Fault("status", status=400),
}


def test_retries_are_bounded_and_every_request_ends_once() -> None:
    prompts = list(FAULTS) + [f"plain {i}" for i in range(6)]
    with FakeTeacher(
        _echo, faults=lambda p, attempt: FAULTS[p](attempt) if p in FAULTS else None
    ) as server:
        teacher = OpenAITeacher(server.url, "m", TeacherConfig(workers=4, **FAST))
        t0 = time.perf_counter()
        replies = {req.prompt: reply for req, reply in teacher.run(_requests(prompts))}
        wall = time.perf_counter() - t0
    assert sorted(replies) == sorted(prompts)  # each exactly once
    for prompt in prompts:
        if prompt.startswith("plain"):
            assert replies[prompt].text == _echo(prompt) and server.asked[prompt] == 1
    assert replies["429 once"].error is None and server.asked["429 once"] == 2
    assert replies["429 once"].seconds >= 0.3  # Retry-After was honoured
    assert replies["500 twice"].attempts == 3 and replies["500 twice"].text == _echo("500 twice")
    assert replies["hang once"].error is None and server.asked["hang once"] == 2
    assert replies["drop once"].error is None and server.asked["drop once"] == 2
    assert replies["garbage once"].error is None and server.asked["garbage once"] == 2
    bad = replies["bad utf-8 content"]
    assert (
        bad.error is None and "\ufffd" in bad.text and bad.text.endswith(_echo("bad utf-8 content"))
    )
    assert replies["truncated"].finish_reason == "length"
    assert replies["truncated"].text == _echo("truncated")[: len(_echo("truncated")) // 2]
    failed = replies["always 503"]
    assert failed.retryable and "HTTP 503" in failed.error and "after 4 attempts" in failed.error
    assert server.asked["always 503"] == 4  # 1 + max_retries
    refused = replies["400"]
    assert (
        not refused.retryable and refused.error.startswith("HTTP 400") and server.asked["400"] == 1
    )
    assert teacher.n_requests == len(server.requests)
    assert wall < 10


def test_requests_run_concurrently_up_to_workers() -> None:
    with FakeTeacher(_echo, latency_s=0.2) as server:
        teacher = OpenAITeacher(server.url, "m", TeacherConfig(workers=8, **FAST))
        replies = list(teacher.run(_requests([f"p{i}" for i in range(24)])))
    assert len(replies) == 24 and all(r.error is None for _, r in replies)
    assert server.max_in_flight == 8


def test_api_key_comes_from_the_named_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-test-123")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeTeacher(_echo) as server:
        keyed = OpenAITeacher(server.url, "m", TeacherConfig(api_key_env="MY_TEACHER_KEY", **FAST))
        list(keyed.run(_requests(["a"])))
        keyless = OpenAITeacher(server.url, "m", TeacherConfig(**FAST))  # local servers need none
        list(keyless.run(_requests(["b"])))
    assert server.auth == ["Bearer sk-test-123", None]


def test_refused_key_is_fatal() -> None:
    with FakeTeacher(_echo, faults=lambda p, a: Fault("status", status=401)) as server:
        teacher = OpenAITeacher(server.url, "m", TeacherConfig(workers=2, **FAST))
        with pytest.raises(TeacherUnreachable, match="HTTP 401"):
            list(teacher.run(_requests(["a", "b", "c"])))
        assert len(server.requests) <= 3  # no retries of a refused key


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_teacher_raises_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    teacher = OpenAITeacher(url, "m", TeacherConfig(workers=2, **FAST))
    with pytest.raises(TeacherUnreachable, match="no request succeeded"):
        list(teacher.run(_requests(["a", "b"])))
    assert teacher.n_requests == 2 * 4
    breaker = OpenAITeacher(url, "m", TeacherConfig(workers=2, max_consecutive_failures=3, **FAST))
    with pytest.raises(TeacherUnreachable, match="3 requests in a row failed"):
        list(breaker.run(_requests([f"p{i}" for i in range(50)])))
    assert breaker.n_requests < 50


def test_teacher_specs() -> None:
    assert make_teacher("openai:http://h:1/v1#my/model", TeacherConfig()).model == "my/model"
    for bad in ["openai:http://h/v1", "gpt4", "openai:ftp://h/v1#m", "hf:/no/such/dir"]:
        with pytest.raises(Exception, match="--teacher"):
            make_teacher(bad, TeacherConfig())
    assert parse_retry_after("2") == 2.0 and parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert parse_retry_after("soon") is None


@pytest.mark.slow
def test_hf_teacher_batched_equals_one_by_one(tiny_base, tmp_path) -> None:
    """The local-model teacher: batched greedy generation (left padding, chat template) gives
    the same answers as one prompt at a time, and a token-limit stop is reported as 'length'.
    The tiny base's weights are re-drawn at random so that its answers differ per prompt."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from synthesis.teacher import HFTeacher

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(tiny_base)
    config.initializer_range = 0.5  # large random weights: answers depend on the prompt
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_base).save_pretrained(tmp_path)
    tiny_base = tmp_path
    prompts = ["def add(a, b):", "Write a function that reverses a list.", "x = [1, 2, 3]\nfor"]
    batched = HFTeacher(str(tiny_base), TeacherConfig(batch_size=3, max_tokens=12, device="cpu"))
    single = HFTeacher(str(tiny_base), TeacherConfig(batch_size=1, max_tokens=12, device="cpu"))
    together = {req.prompt: reply for req, reply in batched.run(_requests(prompts))}
    alone = {req.prompt: reply for req, reply in single.run(_requests(prompts))}
    assert sorted(together) == sorted(prompts)
    for prompt in prompts:
        assert together[prompt].text == alone[prompt].text, (prompt, together[prompt].text)
        assert together[prompt].finish_reason == alone[prompt].finish_reason
        assert together[prompt].finish_reason in {"stop", "length"}
    assert any(reply.finish_reason == "length" for reply in together.values())
    assert len({reply.text for reply in together.values()}) > 1  # real, different answers


def test_teacher_backend_is_checked_before_any_work(tmp_path) -> None:
    """--teacher-backend: only an hf: teacher has one, and only hf | vllm exist."""
    from plumbing import InputError
    from synthesis.teacher import TeacherConfig, make_teacher

    with pytest.raises(InputError, match="only an hf:PATH teacher has a backend"):
        make_teacher("openai:http://127.0.0.1:1/v1#m", TeacherConfig(backend="vllm"))
    with pytest.raises(InputError, match="--teacher-backend 'sglang': choose from hf, vllm"):
        make_teacher(f"hf:{tmp_path}", TeacherConfig(backend="sglang"))


def test_a_pool_of_endpoints_shares_requests_and_retries_a_dead_one_elsewhere() -> None:
    cfg = TeacherConfig(workers=2, **{**FAST, "max_retries": 0})
    with FakeTeacher(_echo) as one, FakeTeacher(_echo) as two:
        pool = make_teacher([f"openai:{one.url}#m", f"openai:{two.url}#m"], cfg)
        replies = [reply for _, reply in pool.run(_requests([f"p{i}" for i in range(10)]))]
        assert all(r.error is None for r in replies)
        assert len(one.requests) == len(two.requests) == 5  # round robin
        dead = f"http://127.0.0.1:{_closed_port()}/v1"
        pool = make_teacher([f"openai:{dead}#m", f"openai:{one.url}#m"], cfg)
        replies = [reply for _, reply in pool.run(_requests([f"q{i}" for i in range(10)]))]
        # with no retries asked for, every request still tries both endpoints: none is lost
        assert all(r.error is None for r in replies), [r.error for r in replies]
        assert pool.n_requests_by_endpoint == [5, 10]
        assert sorted(r.attempts for r in replies) == [1] * 5 + [2] * 5
    with pytest.raises(InputError, match="a teacher pool is servers of one model"):
        make_teacher(["openai:http://h:1/v1#a", "openai:http://h:2/v1#b"], TeacherConfig())
    with pytest.raises(InputError, match="a teacher pool"):
        make_teacher(["openai:http://h:1/v1#a", "toy"], TeacherConfig())
    assert make_teacher(["toy"], TeacherConfig()).__class__.__name__ == "ToyTeacher"
