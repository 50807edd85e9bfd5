"""LLMClient against the fault-injecting server: what is retried (and counted), what fails fast, Retry-After,
a seeded 30% fault mix, 256 requests at once, and the API key in no record, exception or log line."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
import traceback

import httpx
import httpx2
import pydantic
import pytest

from agents.llm.client import LLMClient, LLMError, LLMRejectedError, RetryPolicy, fault_kind
from agents.llm.transport import HTTPTransport
from tests.fake_llm_server import REJECTIONS, FakeLLMServer, Faults

MESSAGES = [{"role": "user", "content": "hello"}]
SCHEMA = {"type": "object", "properties": {"action": {"enum": ["push left", "push right"]}}}


def _client(server: FakeLLMServer, api_key_env: str | None = None, timeout_s: float = 1.0, max_concurrency: int = 8,
            max_retries: int = 3, max_retry_after_s: float = 60.0) -> LLMClient:
    transport = HTTPTransport(server.base_url, api_key_env, timeout_s=timeout_s, max_concurrency=max_concurrency)
    return LLMClient("m", transport, retry=RetryPolicy(max_retries, backoff_s=0.001, max_backoff_s=0.01,
                                                        max_retry_after_s=max_retry_after_s))


def _complete(client: LLMClient, messages=MESSAGES, **kwargs):
    async def run():
        try:
            return await client.complete(messages, **kwargs)
        finally:
            await client.aclose()

    return asyncio.run(run())


@pytest.fixture
def faulty() -> FakeLLMServer:
    with FakeLLMServer(faults=Faults(slow_s=1.0, hang_s=0.05, retry_after="0")) as server:
        yield server


@pytest.mark.parametrize(("fault", "retried_as"), [
    ("http_500", {"HTTP 500"}), ("http_503", {"HTTP 503"}), ("http_429", {"HTTP 429"}),
    ("hang_drop", {"ServerDisconnected"}), ("connection_reset", {"ServerDisconnected", "ConnectionReset"}),
    ("truncated_json", {"JSONDecodeError"}), ("no_message", {"MalformedReply"}), ("odd_payload", {"MalformedReply"}),
    ("slow", {"Timeout"}),  # answers after 1 s; the client waits 0.3 s
])
def test_transient_faults_are_retried_and_counted_by_kind(faulty: FakeLLMServer, fault: str,
                                                         retried_as: set[str]) -> None:
    faulty.fault_script = [fault]
    client = _client(faulty, timeout_s=0.3)
    completion = _complete(client)
    assert completion.texts == ["Scripted free-text answer."]
    assert faulty.injected == {fault: 1} and len(faulty.requests) == 2
    (kind,) = client.retries
    assert kind in retried_as and client.retries[kind] == 1 and client.failures == 0
    assert len(completion.records) == 1  # one record per answered request; the retry is counted, not recorded


@pytest.mark.parametrize("fault", ["empty_content", "random_text"])
def test_empty_or_random_replies_are_returned_not_errors(faulty: FakeLLMServer, fault: str) -> None:
    faulty.fault_script = [fault]
    client = _client(faulty)
    completion = _complete(client, json_schema=SCHEMA)
    assert len(completion.texts) == 1 and completion.texts != ["Scripted free-text answer."]
    assert (completion.text == "") == (fault == "empty_content")
    assert not client.retries and client.failures == 0 and len(faulty.requests) == 1


@pytest.mark.parametrize(("fault", "says"), [
    ("http_400", "maximum context length is 2048 tokens"),
    ("http_400_schema", "Invalid schema for response_format 'reply'.*llm.structured_output=false may help"),
    ("http_401", r"Incorrect API key provided: \*\*\*.*check the key in \$TEXTGYM_FAULT_KEY"),
    ("http_403", "does not have access to model `m`.*TEXTGYM_FAULT_KEY may have no access"),
    ("http_404", "The model `m` does not exist.*check llm.model and llm.base_url"),
    ("http_422", r"body.messages.0.content: Field required"),
])
def test_rejections_fail_fast_naming_server_model_and_reason(faulty: FakeLLMServer, monkeypatch, fault: str,
                                                             says: str) -> None:
    monkeypatch.setenv("TEXTGYM_FAULT_KEY", "sk-fault-test-key-42")
    faulty.fault_script = [fault]
    client = _client(faulty, api_key_env="TEXTGYM_FAULT_KEY", max_retries=5)
    with pytest.raises(LLMRejectedError, match=f"^{faulty.base_url} rejected the request for model 'm' "
                                               f"\\(HTTP {fault[5:8]}\\): .*{says}") as raised:
        _complete(client, json_schema=SCHEMA)
    assert len(faulty.requests) == 1 and not client.retries and client.failures == 1
    assert raised.value.status == int(fault[5:8]) and "\n" not in str(raised.value)


def test_schema_hint_only_when_a_schema_was_sent(faulty: FakeLLMServer) -> None:
    faulty.fault_script = ["http_400_schema"]
    with pytest.raises(LLMRejectedError) as raised:
        _complete(_client(faulty))
    assert "structured_output" not in str(raised.value)


def test_exhausted_retries_raise_llm_error_and_count_a_failure(faulty: FakeLLMServer) -> None:
    faulty.fault_script = ["http_500", "truncated_json", "http_500"]
    client = _client(faulty, max_retries=2)
    with pytest.raises(LLMError, match=f"^m at {faulty.base_url}: gave up after 3 attempts: HTTP 500: "
                                       "The server had an error") as raised:
        _complete(client)
    assert not isinstance(raised.value, LLMRejectedError) and raised.value.kind == "HTTP 500"
    assert client.retries == {"HTTP 500": 1, "JSONDecodeError": 1} and client.failures == 1


def test_retry_after_seconds_are_honoured(faulty: FakeLLMServer) -> None:
    faulty.faults.retry_after = "0.4"
    faulty.fault_script = ["http_429"]
    started = time.perf_counter()
    _complete(_client(faulty))  # backoff alone would wait ~1 ms
    assert time.perf_counter() - started >= 0.4


def test_retry_after_http_date_is_honoured(faulty: FakeLLMServer) -> None:
    faulty.faults.retry_after = email.utils.formatdate(time.time() + 2, usegmt=True)  # 1 s resolution: 1-2 s away
    faulty.fault_script = ["http_429"]
    started = time.perf_counter()
    _complete(_client(faulty))
    assert time.perf_counter() - started >= 0.9


def test_retry_after_is_capped(faulty: FakeLLMServer) -> None:
    faulty.faults.retry_after = "3600"
    faulty.fault_script = ["http_429"]
    started = time.perf_counter()
    client = _client(faulty, max_retry_after_s=0.3)
    _complete(client)
    assert 0.3 <= time.perf_counter() - started < 30 and client.retries == {"HTTP 429": 1}


def test_cancelling_a_request_in_flight_stops_it_at_once(faulty: FakeLLMServer) -> None:
    """A stopped run (Ctrl-C) cancels its requests: no retry, no failure counted, no wait for the server."""
    faulty.faults.slow_s = 10.0
    faulty.fault_script = ["slow"]
    client = _client(faulty, timeout_s=30.0)

    async def cancel_mid_request() -> float:
        task = asyncio.create_task(client.complete(MESSAGES))
        await asyncio.sleep(0.2)
        task.cancel()
        started = time.perf_counter()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()
        return time.perf_counter() - started

    assert asyncio.run(cancel_mid_request()) < 2
    assert not client.retries and client.failures == 0


def test_transport_and_parse_errors_escaping_the_sdk_are_retryable() -> None:
    """httpx (old SDKs) and httpx2 (new ones) errors, and pydantic's, are classified by name."""
    with pytest.raises(pydantic.ValidationError) as invalid:
        pydantic.TypeAdapter(int).validate_python("not a number")
    assert fault_kind(httpx2.ReadError("reset")) == "ReadError"
    assert fault_kind(httpx.RemoteProtocolError("peer closed")) == "RemoteProtocolError"
    assert fault_kind(httpx2.ReadTimeout("slow")) == "ReadTimeout"
    assert fault_kind(json.JSONDecodeError("Expecting value", "", 0)) == "JSONDecodeError"
    assert fault_kind(invalid.value) == "ValidationError"
    assert fault_kind(httpx2.UnsupportedProtocol("no scheme")) is None  # retrying cannot fix the URL
    assert fault_kind(KeyError("a bug")) is None


def _answer(request) -> str:
    return f"answer to {request['messages'][0]['content']}"


def _seeded_run(seed: int, requests: int = 60) -> tuple[FakeLLMServer, LLMClient, list]:
    with FakeLLMServer(_answer, faults=Faults(rate=0.3, seed=seed, slow_s=0.05, hang_s=0.05,
                                              retry_after="0")) as server:
        client = _client(server, max_retries=12, max_concurrency=16)

        async def run():
            try:
                return await asyncio.gather(*(client.complete([{"role": "user", "content": f"question {i}"}])
                                              for i in range(requests)))
            finally:
                await client.aclose()

        return server, client, asyncio.run(run())


def test_seeded_fault_mix_is_reproducible_and_every_request_is_answered() -> None:
    server, client, completions = _seeded_run(seed=3)
    errors = {"http_500", "http_429", "hang_drop", "truncated_json", "connection_reset"}
    assert client.failures == 0 and len(completions) == 60
    injected = server.injected
    assert sum(injected.values()) >= 10 and len(set(injected) & errors) >= 3
    # Every error the server injected was retried once, under its kind's name.
    assert client.retries["HTTP 500"] == injected["http_500"]
    assert client.retries["HTTP 429"] == injected["http_429"]
    assert client.retries["JSONDecodeError"] == injected["truncated_json"]
    assert (client.retries["ServerDisconnected"] + client.retries["ConnectionReset"]
            == injected["hang_drop"] + injected["connection_reset"])
    assert sum(client.retries.values()) == sum(injected[kind] for kind in errors)
    # Answers are the responder's, except where the answer itself was the (not retried) odd content.
    odd = sum(c.texts != [f"answer to question {i}"] for i, c in enumerate(completions))
    assert odd <= injected["empty_content"] + injected["random_text"]
    again, _, _ = _seeded_run(seed=3)
    assert again.injected == injected  # same seed, same faults, whatever order the requests arrived in


def test_256_requests_at_once_under_faults_are_all_answered() -> None:
    with FakeLLMServer(_answer, faults=Faults(rate=0.3, seed=11, slow_s=0.2, hang_s=0.2,
                                              retry_after="0")) as server:
        client = _client(server, max_retries=12, max_concurrency=256, timeout_s=5.0)

        async def run():
            try:
                return await asyncio.gather(*(client.complete([{"role": "user", "content": f"stream {i}"}])
                                              for i in range(256)))
            finally:
                await client.aclose()

        completions = asyncio.run(run())
    assert len(completions) == 256 and client.failures == 0
    assert sum(client.retries.values()) > 0 and len(server.requests) == 256 + sum(client.retries.values())


def test_api_key_appears_in_no_record_exception_or_log(monkeypatch, caplog, tmp_path) -> None:
    secret = "sk-live-SECRET-9f8e7d6c5b4a"
    monkeypatch.setenv("TEXTGYM_SECRET_KEY", secret)
    caplog.set_level(logging.DEBUG)  # the SDK's and httpx's debug lines too
    texts: list[str] = []

    def collect(error: BaseException) -> None:
        texts.extend([str(error), repr(error), "".join(traceback.format_exception(error))])

    with FakeLLMServer(faults=Faults(hang_s=0.05, retry_after="0")) as server:
        client = _client(server, api_key_env="TEXTGYM_SECRET_KEY", max_retries=1)
        for script in [[kind] for kind in REJECTIONS] + [["http_500", "http_500"], ["hang_drop", "truncated_json"]]:
            server.fault_script = list(script)
            with pytest.raises(LLMError) as raised:
                _complete(client, json_schema=SCHEMA)
            collect(raised.value)
        records = [_complete(client, purpose="action").records, _complete(client).records]
        server.api_key = "sk-the-right-one"  # the server now refuses ours, and repeats it in its message
        for failing in (lambda: client.preflight(), lambda: _complete(client)):
            with pytest.raises(LLMError) as raised:
                failing()
            collect(raised.value)
        assert server.authorizations[0] == f"Bearer {secret}"  # it was sent, in the header only
        bodies = json.dumps(server.requests)
    assert texts and all(secret not in text for text in texts)
    assert secret not in json.dumps(records) and secret not in bodies
    assert secret not in caplog.text and "LLM request to" in caplog.text
    assert secret not in repr(client) and secret not in str(vars(client))
