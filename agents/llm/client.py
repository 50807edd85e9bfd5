"""LLMClient: one HTTP session per endpoint, one concurrency limit, one retry policy, one cache.

Works with OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp / xllamacpp). The API key is
read from the environment variable named in the config and is never stored on the client's public state,
in configs, records, logs, exception messages or results.

Chat requests go over one ``aiohttp`` session (its C HTTP parser and keep-alive pool) rather than the
``openai`` SDK: the SDK's request path (option models, header building, httpx) cost about 1.5 ms of CPU per
request, against 0.25 ms here, and at hundreds of streams that is what keeps the server waiting
(``benchmarks/throughput.py``). The SDK stays the interface for users' own code, and :meth:`preflight`
uses it.

What can go wrong, and what happens:

* transient faults (connection errors and resets, timeouts, HTTP 408/409/425/429/5xx, a cut-off or
  malformed body): retried with exponential backoff and jitter, honouring ``Retry-After``; counted by kind
  in :attr:`LLMClient.retries`. When retries run out: :class:`LLMError` (counted in ``failures``).
* a request the server refuses (400/401/403/404/422 and other 4xx): :class:`LLMRejectedError` at once, naming
  the server, the model and what the server said.
* no server at all: :meth:`LLMClient.preflight` raises :class:`LLMUnavailableError` in about a second.
* an empty or unparsable reply text is not an error: it is returned, and the agent counts it invalid.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import functools
import importlib
import json
import logging
import math
import os
import re
import ssl
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import openai
import orjson
import pydantic
import tenacity

from agents.llm.cache import ResponseCache

__all__ = ["LLMClient", "Completion", "Usage", "LLMError", "LLMRejectedError", "LLMUnavailableError"]

logger = logging.getLogger(__name__)
Message = dict[str, str]

# Why tenacity and not the SDK's own retries: the SDK retries only the HTTP exchange. Reading the body
# (a cut-off JSON, a payload without choices) happens after its loop, so those faults escaped every retry
# and ended the run; it also cannot say which faults it retried. One tenacity policy around request *and*
# parse covers both, counts every retry by kind, and the SDK's retries stay off so nothing retries twice.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})  # and every 5xx
# Transport errors that retrying cannot fix (a URL without http://, a redirect loop).
_HOPELESS_TRANSPORT_NAMES = ("UnsupportedProtocol", "TooManyRedirects")


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """httpx-family errors that may escape the SDK: the openai SDK moved from httpx to httpx2; take both."""
    transient: list[type[BaseException]] = [ConnectionError]
    hopeless: list[type[BaseException]] = []
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        transient += [module.TransportError, module.DecodingError]
        hopeless += [getattr(module, error) for error in _HOPELESS_TRANSPORT_NAMES]
    return tuple(transient), tuple(hopeless)


TRANSPORT_ERRORS, HOPELESS_TRANSPORT_ERRORS = _transport_errors()
# aiohttp errors that retrying cannot fix: a malformed or non-HTTP URL, redirect loops, TLS certificates.
HOPELESS_AIOHTTP_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.InvalidURL, aiohttp.TooManyRedirects, aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)


class LLMError(RuntimeError):
    """The model could not be reached after all retries, or refused the request.

    Attributes:
        kind: what failed last, as counted in :attr:`LLMClient.retries` (e.g. ``"HTTP 500"``,
            ``"ReadTimeout"``, ``"JSONDecodeError"``).
        status: the HTTP status, when the server answered with one.
    """

    def __init__(self, message: str, kind: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class LLMRejectedError(LLMError):
    """The server refused the request (400/401/403/404/422, ...): retrying cannot help."""


class LLMUnavailableError(LLMError):
    """Preflight: no OpenAI-compatible server answers at ``base_url``, or it refuses the key."""


class MalformedReply(ValueError):
    """A 200 answer that is JSON but not a chat completion (no choices, a choice without a message)."""


class ServerStatusError(Exception):
    """The server answered a chat request with an HTTP error status (retried or not by :func:`fault_kind`)."""

    def __init__(self, status: int, headers: Any, content: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.headers = headers
        self.text = content.decode("utf-8", "replace")
        try:
            self.body: Any = json.loads(self.text)
        except ValueError:
            self.body = None


# An HTTP error status, from our chat requests or from the SDK's (the preflight, users' own code).
STATUS_ERRORS = (ServerStatusError, openai.APIStatusError)


@dataclass
class Usage:
    """Token, call, latency and dollar counts; add them up with ``+``.

    ``cached_prompt_tokens`` are the prompt tokens the server said it served from its prefix cache
    (0 where it does not say); ``prompt_tokens - cached_prompt_tokens`` is what it had to read anew.
    """

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached_prompt_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        # Field by field: this runs a few times per decision, and a zip over astuple() costs 3x as much.
        return Usage(self.calls + other.calls, self.cached_calls + other.cached_calls,
                     self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.latency_s + other.latency_s, self.cost_usd + other.cost_usd,
                     self.cached_prompt_tokens + other.cached_prompt_tokens)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(a - b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, int, int, int, float, float, int]:
        return (self.calls, self.cached_calls, self.prompt_tokens, self.completion_tokens, self.latency_s,
                self.cost_usd, self.cached_prompt_tokens)


@dataclass(frozen=True)
class Completion:
    """One chat completion's answer: ``n`` texts, what they cost, and one record per request made.

    ``records`` holds one dict per HTTP request (or one per cache hit): ``purpose``, ``request`` (model,
    messages, n, temperature, max_tokens, seed, response_format or None), ``texts``, ``usage``
    (prompt_tokens, completion_tokens, cached_prompt_tokens or None when the server does not say),
    ``latency_s`` and ``from_cache``. No API key is ever in them.
    """

    texts: list[str]
    usage: Usage = field(default_factory=Usage)
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


@dataclass(frozen=True)
class _Reply:
    texts: list[str]
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int | None
    latency_s: float


class LLMClient:
    """Async chat-completion client shared by every agent of a run.

    Args:
        model: model name sent to the server.
        base_url: the server's OpenAI-compatible ``/v1`` address (``None``: the SDK's default, OpenAI).
        api_key_env: name of the environment variable holding the API key (not the key itself).
        temperature: default sampling temperature.
        max_tokens: default completion budget per request.
        seed: sampling seed sent with every request (reproducible on servers that honour it).
        timeout_s: seconds per request attempt.
        max_retries: further attempts after a transient failure, with exponential backoff.
        max_concurrency: requests in flight at once against this endpoint.
        structured_output: the server honours ``response_format={"type": "json_schema"}``.
        cache: response cache; requests at temperature > 0 skip it unless ``cache_sampled`` is set.
            In ``read`` mode a miss still asks the model but stores nothing.
        cache_sampled: cache sampled (temperature > 0) requests too (the seed is in the key).
        price_per_million: dollars per million ``prompt`` and ``completion`` tokens.
        max_n_per_request: the most samples one request may ask for (llama.cpp allows no more than its
            parallel slots); larger ``n`` is split into several requests with distinct seeds.
        cache_namespace: what identifies the server in cache keys (default: ``base_url``). The embedded
            server gets a new port every start, so it is keyed by its model file instead.
        backoff_s: the first retry's base delay; it doubles each retry, plus up to ``backoff_s`` of jitter.
        max_backoff_s: the longest backoff delay.
        max_retry_after_s: the longest wait a server's ``Retry-After`` may ask for.
        slot_count: the server's decoding slots, for a llama.cpp server: each single-sample request then
            names a slot (``id_slot``) so that a session's requests keep landing on the slot that holds its
            prompt prefix (see :meth:`complete`). ``None``: the server picks.

    Attributes:
        usage: everything this client spent, added up.
        retries: retries made, by fault kind (``"HTTP 429"``, ``"ReadTimeout"``, ``"JSONDecodeError"``, ...).
        failures: requests that failed for good (retries exhausted, or rejected).

    Example:
        >>> client = LLMClient(model="gpt-4o-mini", api_key_env="OPENAI_API_KEY")
        >>> client.model
        'gpt-4o-mini'
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 256,
        seed: int | None = 0,
        timeout_s: float = 120.0,
        max_retries: int = 3,
        max_concurrency: int = 8,
        structured_output: bool = True,
        cache: ResponseCache | None = None,
        cache_sampled: bool = False,
        price_per_million: dict[str, float] | None = None,
        max_n_per_request: int | None = None,
        cache_namespace: str | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 60.0,
        slot_count: int | None = None,
    ) -> None:
        if max_concurrency < 1 or max_retries < 0:
            raise ValueError(f"expected max_concurrency >= 1 and max_retries >= 0, actually {max_concurrency} "
                             f"and {max_retries}")
        if slot_count is not None and slot_count < 1:
            raise ValueError(f"expected slot_count >= 1 or None, actually {slot_count}")
        if min(backoff_s, max_backoff_s, max_retry_after_s) < 0:
            raise ValueError(f"expected backoff_s, max_backoff_s and max_retry_after_s >= 0, actually "
                             f"{backoff_s}, {max_backoff_s} and {max_retry_after_s}")
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.seed = seed
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.structured_output = structured_output
        self.cache = cache
        self.cache_sampled = cache_sampled
        self.prices = {"prompt": 0.0, "completion": 0.0, **(price_per_million or {})}
        self.max_n_per_request = max_n_per_request
        self.cache_namespace = cache_namespace or base_url
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.usage = Usage()
        self.retries: Counter[str] = Counter()
        self.failures = 0
        self.in_flight = 0  # requests sent and not yet answered (progress displays show it)
        self.slot_count = slot_count
        self._slots = _SlotTable(slot_count) if slot_count else None
        self._backoff = (tenacity.wait_exponential(multiplier=backoff_s, max=max_backoff_s)
                         + tenacity.wait_random(0, backoff_s))
        self._chat_url = self.server.rstrip("/") + "/chat/completions"
        # Built lazily per event loop: aiohttp sessions and asyncio primitives belong to the loop that made them.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._closer: Any = None
        self._proxy: str | None = None

    def copy(self, **changes: Any) -> LLMClient:
        """A client with these settings and ``changes`` (``max_concurrency``, ``slot_count``), fresh counters
        and nothing bound to an event loop: for another process (it pickles) or another limit."""
        unknown = set(changes) - {"max_concurrency", "slot_count"}
        if unknown:
            raise TypeError(f"LLMClient.copy() can change max_concurrency and slot_count, not {sorted(unknown)}")
        clone = LLMClient.__new__(LLMClient)
        clone.__setstate__({**self.__getstate__(), **changes})
        return clone

    def __getstate__(self) -> dict[str, Any]:
        """Settings only: counters start at zero, and the session and the slot table are made anew."""
        return {**self.__dict__, "usage": Usage(), "retries": Counter(), "failures": 0, "in_flight": 0,
                "_loop": None, "_session": None, "_semaphore": None, "_closer": None, "_slots": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._slots = _SlotTable(self.slot_count) if self.slot_count else None

    def __repr__(self) -> str:  # never shows the key
        return f"LLMClient(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def server(self) -> str:
        """The server's address as messages name it."""
        return self.base_url or "https://api.openai.com/v1"

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        # Local servers accept any key; the SDK insists on a non-empty one.
        return key or "not-needed"

    def _redact(self, text: str) -> str:
        """``text`` without the API key, however a server came to repeat it."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return text.replace(key, "***") if key else text

    async def _bind(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._session is None or self._semaphore is None:
            if self._session is not None and not self._session.closed:
                _drop(self._session)  # its loop ended without closing it (a loop closed by hand)
            self._loop = loop
            # No connection limit of aiohttp's own: the semaphore is the one limit. certifi's CA bundle, as the
            # SDK's httpx uses. HTTPS_PROXY and friends apply as they do for the SDK, looked up once here:
            # aiohttp's trust_env would look them (and ~/.netrc) up in a thread on every request.
            self._proxy = _env_proxy(self._chat_url)
            self._session = aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self._api_key()}", "Content-Type": "application/json",
                         "Accept": "application/json", "User-Agent": "textgym"},
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=0, ssl=_ssl_context()))
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
            # Closed when this loop shuts down (``asyncio.run`` finalizes async generators before it closes the
            # loop), so a caller that never calls aclose() gets no "Unclosed client session" warnings.
            self._closer = _close_at_loop_end(self._session)
            await anext(self._closer)
        return self._session, self._semaphore

    async def complete(
        self,
        messages: list[Message],
        *,
        n: int = 1,
        json_schema: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        purpose: str = "action",
        session: Hashable | None = None,
    ) -> Completion:
        """Ask for ``n`` completions of ``messages``; ``json_schema`` constrains them where supported.

        Args:
            messages: the chat messages.
            n: how many samples.
            json_schema: the schema replies must follow (sent as ``response_format`` when the server
                supports structured output).
            temperature: overrides the client's default.
            max_tokens: overrides the client's default.
            purpose: what the call is for (``"action"``, ``"summary"``, ...), kept in the records only:
                never sent to the server, not part of the cache key.
            session: what the request belongs to (an agent's stream). With :attr:`slot_count` set, the
                requests of one session keep one server slot while it is free, so llama.cpp re-reads only
                what is new since the session's last request; never part of the cache key.

        Raises:
            LLMRejectedError: the server refused the request.
            LLMError: the server kept failing after ``max_retries`` retries.
        """
        temperature = self.temperature if temperature is None else temperature
        request: dict[str, Any] = {
            "model": self.model, "messages": messages, "n": n, "temperature": temperature,
            "max_tokens": max_tokens or self.max_tokens, "seed": self.seed,
        }
        if json_schema is not None and self.structured_output:
            request["response_format"] = {"type": "json_schema",
                                          "json_schema": {"name": "reply", "schema": json_schema, "strict": True}}
        cache_key = {**request, "base_url": self.cache_namespace}
        use_cache = self.cache is not None and (temperature == 0 or self.cache_sampled)
        if use_cache:
            hit = self.cache.get(cache_key)  # type: ignore[union-attr]
            if hit is not None:
                completion = self._from_cache(request, hit, purpose)
                self.usage += completion.usage
                return completion
            if self.cache.mode == "read":  # type: ignore[union-attr]
                logger.debug("cache miss in read-only mode; asking the model")
        completion = await self._request_n(request, purpose, session)
        self.usage += completion.usage
        if use_cache and completion.texts:  # an empty answer is not worth replaying
            self.cache.put(cache_key, {  # type: ignore[union-attr]
                "texts": completion.texts, "prompt_tokens": completion.usage.prompt_tokens,
                "completion_tokens": completion.usage.completion_tokens,
                "cached_prompt_tokens": completion.usage.cached_prompt_tokens})
        return completion

    def _from_cache(self, request: dict[str, Any], hit: dict[str, Any], purpose: str) -> Completion:
        cached_prompt_tokens = hit.get("cached_prompt_tokens")  # absent in entries older than the field
        usage = Usage(calls=1, cached_calls=1, prompt_tokens=hit["prompt_tokens"],
                      completion_tokens=hit["completion_tokens"], cached_prompt_tokens=cached_prompt_tokens or 0)
        reply = _Reply(hit["texts"], hit["prompt_tokens"], hit["completion_tokens"], cached_prompt_tokens, 0.0)
        return Completion(hit["texts"], usage, [_record(purpose, request, reply, from_cache=True)])

    async def _request_n(self, request: dict[str, Any], purpose: str, session: Hashable | None) -> Completion:
        """All ``n`` samples, over several requests when the server caps ``n`` or ignores it."""
        wanted, texts, usage, records = request["n"], [], Usage(), []
        for attempt in range(wanted):  # each round yields at least one sample, so this bounds the rounds
            batch = min(wanted - len(texts), self.max_n_per_request or wanted)
            seed = request["seed"] if attempt == 0 or request["seed"] is None else request["seed"] + 7919 * attempt
            sent = {**request, "n": batch, "seed": seed}
            reply = await self._request(sent, session)
            texts += reply.texts
            usage += self._usage(reply)
            records.append(_record(purpose, sent, reply, from_cache=False))
            if len(texts) >= wanted or not reply.texts:
                break
            if len(reply.texts) < batch:
                logger.debug("server returned %d of %d samples; asking again", len(reply.texts), batch)
        return Completion(texts[:wanted], usage, records)

    def _usage(self, reply: _Reply) -> Usage:
        cost = (reply.prompt_tokens * self.prices["prompt"] + reply.completion_tokens * self.prices["completion"]) / 1e6
        return Usage(calls=1, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                     latency_s=reply.latency_s, cost_usd=cost, cached_prompt_tokens=reply.cached_prompt_tokens or 0)

    # One request, retried ----------------------------------------------------------------------------
    async def _request(self, request: dict[str, Any], session: Hashable | None = None) -> _Reply:
        http, semaphore = await self._bind()
        # Most requests succeed at once: they skip building the retry machinery (~60 us of CPU a request). A
        # failure enters it as its first attempt, so waits, counts and the final error are as if it had begun there.
        try:
            return await self._attempt(http, semaphore, request, session)
        except _REQUEST_ERRORS as error:
            first_failure: BaseException | None = error
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1), wait=self._wait,
            retry=tenacity.retry_if_exception(lambda error: fault_kind(error) is not None),
            before_sleep=self._before_sleep, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    if first_failure is not None:
                        error, first_failure = first_failure, None
                        raise error
                    return await self._attempt(http, semaphore, request, session)
        except _REQUEST_ERRORS as error:
            self.failures += 1
            raise self._final_error(error, retrying.statistics.get("attempt_number", 1),
                                    "response_format" in request) from _safe_cause(error)
        raise AssertionError("tenacity ended without an outcome")  # unreachable: reraise=True

    async def _attempt(self, http: aiohttp.ClientSession, semaphore: asyncio.Semaphore,
                       request: dict[str, Any], session: Hashable | None) -> _Reply:
        async with semaphore:
            # n > 1 fans out over several slots on llama.cpp: pinning it to one would serialize the samples.
            slot = self._slots.claim(session) if self._slots is not None and request["n"] == 1 else None
            if slot is not None:
                request = {**request, "id_slot": slot}
            started = time.perf_counter()  # latency of the request itself, not of the queue before it
            self.in_flight += 1
            try:
                # The body is read and parsed here, inside the retry policy (see the note at the top).
                async with http.post(self._chat_url, data=orjson.dumps(request), proxy=self._proxy) as response:
                    content = await response.read()
                    if response.status >= 400:
                        raise ServerStatusError(response.status, response.headers, content)
            finally:
                self.in_flight -= 1
                if slot is not None:
                    self._slots.release(slot)  # type: ignore[union-attr]
            latency = time.perf_counter() - started
        return _parse_reply(orjson.loads(content), latency)  # its JSONDecodeError is json's (retried alike)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The server's ``Retry-After`` (capped) when it sent one, else exponential backoff with jitter."""
        error = state.outcome.exception() if state.outcome else None
        retry_after = _retry_after_s(error)
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        return float(self._backoff(state))

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        kind = fault_kind(error) or type(error).__name__
        first = kind not in self.retries
        self.retries[kind] += 1
        # The first retry of each kind is worth a warning; the rest are counted in ``retries`` (thousands of
        # warnings would bury everything else in a long run against a flaky server).
        logger.log(logging.WARNING if first else logging.DEBUG, "LLM request to %s failed (%s); retry %d/%d in %.2fs%s",
                   self.server, kind, state.attempt_number, self.max_retries,
                   state.next_action.sleep if state.next_action else 0.0,
                   f" (further {kind} retries are counted in LLMClient.retries, not logged)" if first else "")

    def _final_error(self, error: BaseException, attempts: int, structured: bool) -> LLMError:
        kind = fault_kind(error)
        if kind is None and isinstance(error, STATUS_ERRORS):
            return self._rejection(error, structured)
        status = error.status_code if isinstance(error, STATUS_ERRORS) else None
        if isinstance(error, STATUS_ERRORS):
            detail = _server_says(error)
        elif isinstance(error, TimeoutError):
            detail = f"no answer within {self.timeout_s:g} s"
        elif isinstance(error, (openai.APIConnectionError, aiohttp.ClientError)):
            detail = _connection_reason(error)
        else:
            detail = str(error)
        return LLMError(self._redact(f"{self.model} at {self.server}: gave up after {attempts} "
                                     f"attempt{'s' if attempts != 1 else ''}: {kind or type(error).__name__}: "
                                     f"{_one_line(detail)}"), kind=kind or type(error).__name__, status=status)

    def _rejection(self, error: ServerStatusError | openai.APIStatusError, structured: bool) -> LLMRejectedError:
        status, said = error.status_code, _server_says(error)
        hint = ""
        if status == 401:
            hint = (f"; check the key in ${self.api_key_env}" if self.api_key_env else
                    "; the server wants a key: set llm.api_key_env to the name of the variable holding it")
        elif status == 403:
            hint = f"; the key in ${self.api_key_env} may have no access to this model" if self.api_key_env else ""
        elif status == 404:
            hint = "; check llm.model and llm.base_url (the server's GET /models lists what it serves)"
        if structured and status in (400, 422) and re.search(r"schema|response_format|json|grammar|guided", said,
                                                             re.IGNORECASE):
            hint += "; llm.structured_output=false may help"
        return LLMRejectedError(self._redact(f"{self.server} rejected the request for model {self.model!r} "
                                             f"(HTTP {status}): {said}{hint}"), kind=f"HTTP {status}", status=status)

    # Preflight ---------------------------------------------------------------------------------------
    def preflight(self, timeout_s: float = 3.0) -> None:
        """Check that the server answers ``GET {base_url}/models`` before any episode runs.

        A server without a model list (404) counts as answering. A model the list does not name only
        gets a warning (servers such as Ollama accept other spellings). Synchronous, on its own
        short-lived client, so it binds nothing to an event loop.

        Raises:
            LLMUnavailableError: nothing answers (e.g. ``no OpenAI-compatible server at
                http://127.0.0.1:9/v1 (connection refused); start one or use llm=local``), or the server
                refuses the key.
        """
        with openai.OpenAI(base_url=self.base_url, api_key=self._api_key(), timeout=timeout_s,
                           max_retries=0) as client:
            try:
                raw = client.models.with_raw_response.list()
                listing = json.loads(raw.http_response.content)
            except openai.APITimeoutError:
                raise self._unavailable(f"no answer within {timeout_s:g} s") from None
            except openai.APIConnectionError as error:
                raise self._unavailable(_connection_reason(error)) from None
            except openai.NotFoundError:
                return  # it answers; it just has no model list
            except openai.APIStatusError as error:
                said = _one_line(_server_says(error))
                if error.status_code in (401, 403):
                    raise LLMUnavailableError(self._redact(
                        f"{self.server} refused the API key (HTTP {error.status_code}: {said}); "
                        + (f"check the key in ${self.api_key_env}" if self.api_key_env else
                           "set llm.api_key_env to the name of the variable holding the server's key")),
                        kind=f"HTTP {error.status_code}", status=error.status_code) from None
                # It answers; 5xx/429 may pass, and requests retry them anyway.
                logger.warning("%s answered GET /models with HTTP %d (%s); going on", self.server,
                               error.status_code, self._redact(said))
                return
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise LLMUnavailableError(f"{self.server} answered GET /models with something that is not JSON: "
                                          f"is llm.base_url the server's OpenAI-compatible /v1 address?",
                                          kind="JSONDecodeError") from None
        served = [entry.get("id") for entry in listing.get("data", []) if isinstance(entry, dict)] \
            if isinstance(listing, dict) and isinstance(listing.get("data"), list) else []
        if served and self.model not in served:
            logger.warning("%s does not list model %r (it lists %s); requests may be refused", self.server,
                           self.model, ", ".join(map(str, served[:8])) + (", ..." if len(served) > 8 else ""))

    def _unavailable(self, reason: str) -> LLMUnavailableError:
        return LLMUnavailableError(self._redact(f"no OpenAI-compatible server at {self.server} ({reason}); "
                                                f"start one or use llm=local"), kind="unavailable")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _close_at_loop_end(session: aiohttp.ClientSession) -> Any:
    try:
        yield
    finally:
        await session.close()


def _drop(session: aiohttp.ClientSession) -> None:
    """Forget a session whose event loop has ended (a client used under one ``asyncio.run`` after another):
    its sockets cannot be closed on a dead loop and need no goodbye, and aiohttp would warn of them."""
    connector = session.connector
    session.detach()
    if connector is not None:
        connector._close()  # noqa: SLF001 - the synchronous part of close(); its awaitable needs the dead loop


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``; ``NO_PROXY``)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


@functools.cache  # loading the CA bundle takes ~30 ms; one context serves every session of the process
def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi
    except ImportError:  # the system's CA store, then
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class _SlotTable:
    """Which server slot each session's next request should name.

    A session keeps its slot while the slot is free: llama.cpp keeps the last prompt of each slot, so the
    session's next prompt, which starts with the previous one, is read only from where they differ. When
    its slot is busy (or it has none yet), it takes a free slot, one that no session owns if there is one,
    else the one used longest ago. ``claim`` is called under the client's concurrency limit; when every
    slot is busy (more requests in flight than slots) it returns ``None`` and the server picks.
    """

    def __init__(self, count: int) -> None:
        self.busy = [0] * count
        self.owner: list[Hashable | None] = [None] * count  # the session whose prompt each slot holds
        self.last_used = [0] * count
        self._clock = 0

    def claim(self, session: Hashable | None) -> int | None:
        slot = self.owner.index(session) if session is not None and session in self.owner else None
        if slot is None or self.busy[slot]:
            free = [index for index, busy in enumerate(self.busy) if not busy]
            if not free:
                return None
            if slot is not None:
                self.owner[slot] = None  # a session's prompt lives on in one slot: the one it moves to
            slot = min(free, key=lambda index: (self.owner[index] is not None, self.last_used[index]))
            if session is not None:
                self.owner[slot] = session
        self._clock += 1
        self.busy[slot] += 1
        self.last_used[slot] = self._clock
        return slot

    def release(self, slot: int) -> None:
        self.busy[slot] -= 1


# What one request attempt may raise: retried or not by :func:`fault_kind`, then turned into an LLMError.
_REQUEST_ERRORS = (ServerStatusError, aiohttp.ClientError, TimeoutError, openai.APIError, *TRANSPORT_ERRORS,
                   json.JSONDecodeError, UnicodeDecodeError, pydantic.ValidationError, MalformedReply)


# Reading replies and faults ------------------------------------------------------------------------------
def _record(purpose: str, request: dict[str, Any], reply: _Reply, from_cache: bool) -> dict[str, Any]:
    """Shared interface 1: what one request (or cache hit) asked and got."""
    return {
        "purpose": purpose,
        "request": {"model": request["model"], "messages": request["messages"], "n": request["n"],
                    "temperature": request["temperature"], "max_tokens": request["max_tokens"],
                    "seed": request["seed"], "response_format": request.get("response_format")},
        "texts": list(reply.texts),
        "usage": {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                  "cached_prompt_tokens": reply.cached_prompt_tokens},
        "latency_s": reply.latency_s,
        "from_cache": from_cache,
    }


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _parse_reply(payload: Any, latency_s: float) -> _Reply:
    """Texts and token counts of a chat completion body; :class:`MalformedReply` when it is none.

    An empty or ``null`` content is an empty text, not an error. Cached prompt tokens come from
    ``usage.prompt_tokens_details.cached_tokens`` (OpenAI, vLLM, newer llama.cpp) or else llama.cpp's own
    ``timings.cache_n``; ``None`` when the server says neither.
    """
    if not isinstance(payload, dict):
        raise MalformedReply(f"the answer is JSON but not an object: {type(payload).__name__}")
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        error = payload.get("error")
        said = error.get("message") if isinstance(error, dict) else error
        raise MalformedReply(f"the answer has no choices{f' (it says: {said})' if said else ''}")
    texts = []
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise MalformedReply("a choice of the answer has no message")
        content = message.get("content")
        if isinstance(content, list):  # content parts, as some servers send
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        texts.append(content if isinstance(content, str) else "")
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    details = usage.get("prompt_tokens_details")
    cached = _int_or_none(details.get("cached_tokens")) if isinstance(details, dict) else None
    timings = payload.get("timings")
    if cached is None and isinstance(timings, dict):
        cached = _int_or_none(timings.get("cache_n"))
    return _Reply(texts, _int_or_none(usage.get("prompt_tokens")) or 0,
                  _int_or_none(usage.get("completion_tokens")) or 0, cached, latency_s)


def fault_kind(error: BaseException | None) -> str | None:
    """The retry counter's name for a transient fault (``"HTTP 503"``, ``"ReadTimeout"``, ...), else None.

    Example:
        >>> import json
        >>> fault_kind(json.JSONDecodeError("Unterminated string", "{", 1))
        'JSONDecodeError'
        >>> fault_kind(ValueError("a bug")) is None
        True
    """
    if isinstance(error, STATUS_ERRORS):
        status = error.status_code
        return f"HTTP {status}" if status in RETRYABLE_STATUSES or status >= 500 else None
    if isinstance(error, HOPELESS_AIOHTTP_ERRORS):
        return None
    if isinstance(error, (TimeoutError, aiohttp.ServerTimeoutError)):
        return "Timeout"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "ServerDisconnected"  # e.g. the connection closed before an answer
    if isinstance(error, aiohttp.ClientOSError) and error.errno in (errno.ECONNRESET, errno.EPIPE):
        return "ConnectionReset"
    if isinstance(error, aiohttp.ClientError):
        return type(error).__name__
    if isinstance(error, openai.APIConnectionError):  # timeouts too; the cause says which
        cause = error.__cause__
        if isinstance(cause, HOPELESS_TRANSPORT_ERRORS):
            return None
        return type(cause).__name__ if cause is not None else type(error).__name__
    if isinstance(error, HOPELESS_TRANSPORT_ERRORS):
        return None
    if isinstance(error, UnicodeDecodeError):
        return "JSONDecodeError"  # a body that is not even text
    if isinstance(error, (*TRANSPORT_ERRORS, json.JSONDecodeError, pydantic.ValidationError, MalformedReply,
                          openai.APIResponseValidationError)):
        return type(error).__name__
    return None


def _retry_after_s(error: BaseException | None) -> float | None:
    """Seconds the server asked to wait (``retry-after-ms``, ``Retry-After`` seconds or HTTP date), if any."""
    headers = error.headers if isinstance(error, ServerStatusError) else getattr(getattr(error, "response", None),
                                                                                   "headers", None)
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError, OverflowError):
                continue
        if math.isfinite(seconds):
            return max(0.0, seconds)
        return None
    return None


def _server_says(error: ServerStatusError | openai.APIStatusError) -> str:
    """The message in an error body: OpenAI's ``{"error": {"message"}}`` or FastAPI's ``{"detail": [...]}``."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return _one_line(inner["message"])
        if isinstance(inner, str):
            return _one_line(inner)
        detail = body.get("detail")
        if isinstance(detail, list):
            return _one_line("; ".join(
                f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg', '')}" if isinstance(item, dict)
                else str(item) for item in detail))
        if isinstance(detail, str):
            return _one_line(detail)
    if isinstance(error, ServerStatusError):
        return _one_line(error.text or str(error))
    text = error.response.text if error.response is not None else ""
    return _one_line(text or error.message)


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _connection_reason(error: BaseException) -> str:
    """``connection refused``, ``name or service not known``, ...: the innermost OS-level reason."""
    cause: BaseException | None = error
    reason = "connection failed"
    while cause is not None:
        text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(cause)).strip()
        if text and text not in ("Connection error.", "Request timed out."):
            reason = text
        cause = cause.__cause__ or cause.__context__
    reason = reason.rstrip(".")
    return reason[:1].lower() + reason[1:]


def _safe_cause(error: BaseException) -> BaseException | None:
    """Chain transport errors for debugging; not what repeats the server's words (which may quote the key)."""
    return None if isinstance(error, (*STATUS_ERRORS, MalformedReply)) else error
