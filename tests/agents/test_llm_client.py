"""LLMClient against the scripted server: n splitting, servers that ignore n, cache modes, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.llm.cache import ResponseCache
from agents.llm.client import LLMClient, LLMError
from tests.fake_llm_server import FakeLLMServer

MESSAGES = [{"role": "user", "content": "hello"}]


def _complete(client: LLMClient, **kwargs):
    return asyncio.run(client.complete(MESSAGES, **kwargs))


def test_large_n_is_split_with_distinct_seeds(fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = lambda request: f"sample seed={request['seed']} i={request['choice_index']}"
    client = LLMClient(model="m", base_url=fake_llm.base_url, api_key_env=None, max_n_per_request=2, seed=3)
    completion = _complete(client, n=5, temperature=0.7)
    assert len(completion.texts) == 5
    assert [r["n"] for r in fake_llm.requests] == [2, 2, 1]
    assert len({r["seed"] for r in fake_llm.requests}) == 3 and fake_llm.requests[0]["seed"] == 3
    assert completion.usage.calls == 3


def test_server_that_ignores_n_is_asked_again(fake_llm: FakeLLMServer) -> None:
    fake_llm.ignore_n = True
    fake_llm.responder = lambda request: f"seed={request['seed']}"
    client = LLMClient(model="m", base_url=fake_llm.base_url, api_key_env=None)
    completion = _complete(client, n=3, temperature=0.7)
    assert len(completion.texts) == 3 and len(set(completion.texts)) == 3  # distinct seeds, distinct samples
    assert len(fake_llm.requests) == 3 and completion.usage.calls == 3


def test_cache_modes(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    write = LLMClient(model="m", base_url=fake_llm.base_url, api_key_env=None, cache=ResponseCache(path))
    first = _complete(write)
    assert _complete(write).texts == first.texts and len(fake_llm.requests) == 1
    _complete(write, temperature=0.9)  # sampled requests skip the cache by default
    _complete(write, temperature=0.9)
    assert len(fake_llm.requests) == 3
    read_only = LLMClient(model="m", base_url=fake_llm.base_url, api_key_env=None,
                          cache=ResponseCache(path, mode="read"))
    assert _complete(read_only).usage.cached_calls == 1
    _complete(read_only, max_tokens=7)  # a miss is asked but not stored
    assert len(ResponseCache(path)) == 1
    with pytest.raises(ValueError, match="expected one of off, read, readwrite"):
        ResponseCache(path, mode="sometimes")  # type: ignore[arg-type]


def test_rejected_request_raises_llm_error_without_retry(fake_llm: FakeLLMServer) -> None:
    fake_llm.fail_next = [400]
    client = LLMClient(model="m", base_url=fake_llm.base_url, api_key_env=None, max_retries=3)
    with pytest.raises(LLMError, match="rejected the request"):
        _complete(client)
    assert len(fake_llm.requests) == 1


def test_timeout_is_retried_then_reported(fake_llm: FakeLLMServer) -> None:
    fake_llm.delay_s = 0.5
    client = LLMClient(model="m", base_url=fake_llm.base_url, api_key_env=None, timeout_s=0.1, max_retries=1)
    with pytest.raises(LLMError, match="gave up after 2 attempts"):
        _complete(client)
    assert len(fake_llm.requests) == 2


def test_price_table_gives_cost(fake_llm: FakeLLMServer) -> None:
    client = LLMClient(model="m", base_url=fake_llm.base_url, api_key_env=None,
                       price_per_million={"prompt": 1.0, "completion": 2.0})
    completion = _complete(client)
    expected = (completion.usage.prompt_tokens * 1.0 + completion.usage.completion_tokens * 2.0) / 1e6
    assert completion.usage.cost_usd == pytest.approx(expected) and expected > 0


def test_cache_namespace_survives_a_new_server_address(tmp_path: Path) -> None:
    """The embedded server listens on a new port each start; its answers must still replay."""
    path = tmp_path / "c.sqlite"
    with FakeLLMServer() as first, FakeLLMServer() as second:
        for server in (first, second):
            client = LLMClient(model="m", base_url=server.base_url, api_key_env=None, cache=ResponseCache(path),
                               cache_namespace="embedded:model.gguf:123")
            _complete(client)
        assert len(first.requests) == 1 and len(second.requests) == 0
