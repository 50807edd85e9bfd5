"""LLMClient against the scripted server: n splitting, servers that ignore n, cache modes, call records, cached
prompt tokens, errors. Fault injection and retries: test_llm_faults.py; preflight: test_llm_preflight.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.llm.cache import ResponseCache
from agents.llm.client import LLMClient, LLMError, RetryPolicy, Sampling, Usage
from agents.llm.transport import HTTPTransport
from tests.fake_llm_server import FakeLLMServer

MESSAGES = [{"role": "user", "content": "hello"}]


def _transport(server: FakeLLMServer) -> HTTPTransport:
    return HTTPTransport(server.base_url, api_key_env=None)


def _complete(client: LLMClient, **kwargs):
    return asyncio.run(client.complete(MESSAGES, **kwargs))


def test_large_n_is_split_with_distinct_seeds(fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = lambda request: f"sample seed={request['seed']} i={request['choice_index']}"
    client = LLMClient("m", _transport(fake_llm), sampling=Sampling(seed=3, max_n_per_request=2))
    completion = _complete(client, n=5, temperature=0.7)
    assert len(completion.texts) == 5
    assert [r["n"] for r in fake_llm.requests] == [2, 2, 1]
    assert len({r["seed"] for r in fake_llm.requests}) == 3 and fake_llm.requests[0]["seed"] == 3
    assert completion.usage.calls == 3
    # One record per HTTP request, each with what that request asked and got.
    assert [r["request"]["n"] for r in completion.records] == [2, 2, 1]
    assert [r["request"]["seed"] for r in completion.records] == [r["seed"] for r in fake_llm.requests]
    assert [t for r in completion.records for t in r["texts"]] == completion.texts


def test_server_that_ignores_n_is_asked_again(fake_llm: FakeLLMServer) -> None:
    fake_llm.ignore_n = True
    fake_llm.responder = lambda request: f"seed={request['seed']}"
    client = LLMClient("m", _transport(fake_llm))
    completion = _complete(client, n=3, temperature=0.7)
    assert len(completion.texts) == 3 and len(set(completion.texts)) == 3  # distinct seeds, distinct samples
    assert len(fake_llm.requests) == 3 and completion.usage.calls == 3


def test_cache_modes(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    write = LLMClient("m", _transport(fake_llm), cache=ResponseCache(path))
    first = _complete(write)
    assert _complete(write).texts == first.texts and len(fake_llm.requests) == 1
    _complete(write, temperature=0.9)  # sampled requests skip the cache by default
    _complete(write, temperature=0.9)
    assert len(fake_llm.requests) == 3
    read_only = LLMClient("m", _transport(fake_llm), cache=ResponseCache(path, mode="read"))
    assert _complete(read_only).usage.cached_calls == 1
    _complete(read_only, max_tokens=7)  # a miss is asked but not stored
    assert len(ResponseCache(path)) == 1
    with pytest.raises(ValueError, match="expected one of off, read, readwrite"):
        ResponseCache(path, mode="sometimes")  # type: ignore[arg-type]


def test_rejected_request_raises_llm_error_without_retry(fake_llm: FakeLLMServer) -> None:
    fake_llm.fail_next = [400]
    client = LLMClient("m", _transport(fake_llm), retry=RetryPolicy(max_retries=3))
    with pytest.raises(LLMError, match="rejected the request"):
        _complete(client)
    assert len(fake_llm.requests) == 1


def test_timeout_is_retried_then_reported(fake_llm: FakeLLMServer) -> None:
    fake_llm.delay_s = 0.5
    client = LLMClient("m", HTTPTransport(fake_llm.base_url, None, timeout_s=0.1), retry=RetryPolicy(max_retries=1))
    with pytest.raises(LLMError, match="gave up after 2 attempts"):
        _complete(client)
    assert len(fake_llm.requests) == 2


def test_price_table_gives_cost(fake_llm: FakeLLMServer) -> None:
    client = LLMClient("m", _transport(fake_llm), price_per_million={"prompt": 1.0, "completion": 2.0})
    completion = _complete(client)
    expected = (completion.usage.prompt_tokens * 1.0 + completion.usage.completion_tokens * 2.0) / 1e6
    assert completion.usage.cost_usd == pytest.approx(expected) and expected > 0


def test_cache_namespace_survives_a_new_server_address(tmp_path: Path) -> None:
    """The embedded server listens on a new port each start; its answers must still replay."""
    path = tmp_path / "c.sqlite"
    with FakeLLMServer() as first, FakeLLMServer() as second:
        for server in (first, second):
            client = LLMClient("m", HTTPTransport(server.base_url, None, identity="embedded:model.gguf:123"),
                               cache=ResponseCache(path))
            _complete(client)
        assert len(first.requests) == 1 and len(second.requests) == 0


def test_records_describe_each_request_and_purpose_is_never_sent(fake_llm: FakeLLMServer) -> None:
    fake_llm.responder = lambda request: '{"action": "push left"}'
    schema = {"type": "object", "properties": {"action": {"enum": ["push left"]}}}
    client = LLMClient("m", _transport(fake_llm), sampling=Sampling(max_tokens=33, seed=5))
    completion = _complete(client, json_schema=schema, purpose="suggestion")
    (record,) = completion.records
    sent = fake_llm.requests[0]
    assert "purpose" not in sent and record["purpose"] == "suggestion"
    assert record["request"] == {"model": "m", "messages": MESSAGES, "n": 1, "temperature": 0.0, "max_tokens": 33,
                                 "seed": 5, "response_format": sent["response_format"]}
    assert record["request"]["response_format"]["json_schema"]["schema"] == schema
    assert record["texts"] == ['{"action": "push left"}'] and record["from_cache"] is False
    assert record["usage"]["prompt_tokens"] == completion.usage.prompt_tokens == len("hello") // 4
    assert record["latency_s"] > 0
    plain = _complete(client).records[0]
    assert plain["purpose"] == "action" and plain["request"]["response_format"] is None


def _shared_prefix_messages(step: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You balance a pole. " * 40},
            {"role": "user", "content": f"step {step}: the pole leans {'left ' * 10}"}]


@pytest.mark.parametrize("report", ["openai", "llama.cpp", "timings"])
def test_cached_prompt_tokens_are_read_and_added_up(fake_llm: FakeLLMServer, report: str) -> None:
    """OpenAI/vLLM say ``usage.prompt_tokens_details.cached_tokens``; llama.cpp also (or only) ``timings.cache_n``."""
    fake_llm.cache_report = report
    client = LLMClient("m", _transport(fake_llm))

    async def two_steps():
        return [await client.complete(_shared_prefix_messages(step)) for step in (1, 2)]

    first, second = asyncio.run(two_steps())
    assert first.records[0]["usage"]["cached_prompt_tokens"] == 0  # nothing seen before
    # The fake server's prefix cache: characters // 4 of the prefix shared with the previous prompt.
    shared = len("You balance a pole. " * 40 + "step ")
    assert second.records[0]["usage"]["cached_prompt_tokens"] == second.usage.cached_prompt_tokens == shared // 4
    assert 0 < second.usage.cached_prompt_tokens < second.usage.prompt_tokens
    assert client.usage.cached_prompt_tokens == shared // 4


def test_servers_that_do_not_report_cached_tokens_give_none(fake_llm: FakeLLMServer) -> None:
    fake_llm.cache_report = None
    client = LLMClient("m", _transport(fake_llm))
    completion = _complete(client)
    assert completion.records[0]["usage"]["cached_prompt_tokens"] is None
    assert completion.usage.cached_prompt_tokens == 0 and completion.usage.prompt_tokens == len("hello") // 4
    assert (Usage(cached_prompt_tokens=2) + Usage(cached_prompt_tokens=3)).cached_prompt_tokens == 5


def test_cache_hits_are_recorded_and_purpose_is_not_in_the_key(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    client = LLMClient("m", _transport(fake_llm), cache=ResponseCache(tmp_path / "c"))
    asyncio.run(client.complete(_shared_prefix_messages(1)))
    asked = asyncio.run(client.complete(_shared_prefix_messages(2), purpose="action"))
    hit = asyncio.run(client.complete(_shared_prefix_messages(2), purpose="summary"))
    assert len(fake_llm.requests) == 2  # the third call replayed the second
    (record,) = hit.records
    assert record["from_cache"] is True and record["purpose"] == "summary"
    assert record["texts"] == asked.texts and record["request"] == asked.records[0]["request"]
    assert record["usage"] == asked.records[0]["usage"]  # the replayed counts, cached prompt tokens too
    assert hit.usage.cached_prompt_tokens == asked.usage.cached_prompt_tokens > 0
    assert hit.usage.cached_calls == 1 and hit.usage.latency_s == 0


def test_cache_entries_written_before_call_records_still_hit(fake_llm: FakeLLMServer, tmp_path: Path) -> None:
    """The cache key is unchanged; entries without ``cached_prompt_tokens`` replay with it unknown."""
    cache = ResponseCache(tmp_path / "c")
    old_key = {"model": "m", "messages": MESSAGES, "n": 1, "temperature": 0.0, "max_tokens": 256, "seed": 0,
               "base_url": fake_llm.base_url}
    cache.put(old_key, {"texts": ["from an old run"], "prompt_tokens": 7, "completion_tokens": 3})
    client = LLMClient("m", _transport(fake_llm), cache=cache)
    completion = _complete(client)
    assert completion.texts == ["from an old run"] and fake_llm.requests == []
    assert completion.records[0]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3,
                                              "cached_prompt_tokens": None}


def test_sessions_keep_their_slot_and_never_share_a_busy_one(fake_llm: FakeLLMServer) -> None:
    import threading
    import time

    lock, busy, overlaps = threading.Lock(), set(), []

    def slow(request: dict) -> str:  # the server is threaded: in-flight requests overlap here
        slot = request.get("id_slot")
        with lock:
            if slot in busy:
                overlaps.append(slot)
            busy.add(slot)
        time.sleep(0.02)
        with lock:
            busy.discard(slot)
        return "ok"

    fake_llm.responder = slow
    client = LLMClient("m", HTTPTransport(fake_llm.base_url, None, max_concurrency=2, slot_count=2))

    async def session(name: str, turns: int) -> None:
        for turn in range(turns):
            await client.complete([{"role": "user", "content": f"{name} {turn}"}], session=name)

    async def alternate() -> None:  # one at a time: each session keeps the slot it first got
        for turn in range(3):
            for name in ("a", "b"):
                await client.complete([{"role": "user", "content": f"{name} {turn}"}], session=name)

    asyncio.run(alternate())
    slots = {name: {r["id_slot"] for r in fake_llm.requests if r["messages"][0]["content"].startswith(name)}
             for name in ("a", "b")}
    assert len(slots["a"]) == len(slots["b"]) == 1 and slots["a"] | slots["b"] == {0, 1}

    fake_llm.requests.clear()
    async def together() -> None:  # three sessions, two slots: someone always has to move
        await asyncio.wait_for(asyncio.gather(*(session(name, 4) for name in "xyz")), 30)

    asyncio.run(together())
    assert len(fake_llm.requests) == 12 and all(r["id_slot"] in (0, 1) for r in fake_llm.requests)
    assert overlaps == []  # two requests in flight never named the same slot

    fake_llm.requests.clear()
    completion = asyncio.run(client.complete(MESSAGES, n=2, temperature=0.5, session="a"))
    assert "id_slot" not in fake_llm.requests[0]  # samples fan out over slots: pinning would serialize them
    assert all("id_slot" not in record["request"] for record in completion.records)


def test_no_slot_is_named_unless_asked(fake_llm: FakeLLMServer) -> None:
    client = LLMClient("m", _transport(fake_llm))
    _complete(client, session="a")
    assert "id_slot" not in fake_llm.requests[0]
    with pytest.raises(ValueError, match="slot_count"):
        HTTPTransport(slot_count=0)
