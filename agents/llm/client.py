"""LLMClient: the chat model agents use, over one :class:`~agents.llm.transport.HTTPTransport`.

The client turns a chat call into requests (``n`` split where the server caps it), answers from the cache when it
can, retries transient faults (:mod:`agents.llm.errors` says which) and adds up what was spent. The transport sends
one request at a time to one endpoint (aiohttp session, SSL, proxy, concurrency limit, llama.cpp slot pinning).
Works with OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp / xllamacpp).

Retries: transient faults (connection errors and resets, timeouts, HTTP 408/409/425/429/5xx, a cut-off or malformed
body) are retried with exponential backoff and jitter, honouring ``Retry-After``, and counted by kind in
:attr:`LLMClient.retries`. When retries run out: :class:`LLMError` (counted in ``failures``). A request the server
refuses raises :class:`LLMRejectedError` at once.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import tenacity

from agents.llm.cache import ResponseCache
from agents.llm.errors import (
    REQUEST_ERRORS,
    STATUS_ERRORS,
    LLMError,
    LLMRejectedError,
    LLMUnavailableError,
    connection_reason,
    fault_kind,
    one_line,
    rejection_hint,
    retry_after_s,
    safe_cause,
    server_says,
)
from agents.llm.protocol import Completion, Message, Usage
from agents.llm.transport import HTTPTransport, Reply

__all__ = ["LLMClient", "Sampling", "RetryPolicy", "Completion", "Usage", "LLMError", "LLMRejectedError",
           "LLMUnavailableError", "fault_kind"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    """What every request asks for unless a call says otherwise.

    Args:
        temperature: default sampling temperature.
        max_tokens: default completion budget per request.
        seed: sampling seed sent with every request (reproducible on servers that honour it).
        structured_output: the server honours ``response_format={"type": "json_schema"}``.
        max_n_per_request: the most samples one request may ask for (llama.cpp allows no more than its parallel
            slots); larger ``n`` is split into several requests with distinct seeds. ``None``: no cap.
    """

    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = 0
    structured_output: bool = True
    max_n_per_request: int | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How transient faults are retried.

    Why tenacity and not the SDK's own retries: the SDK retries only the HTTP exchange. Reading the body (a cut-off
    JSON, a payload without choices) happens after its loop, so those faults escaped every retry and ended the run;
    it also cannot say which faults it retried. One tenacity policy around request *and* parse covers both and
    counts every retry by kind.

    Args:
        max_retries: further attempts after a transient failure.
        backoff_s: the first retry's base delay; it doubles each retry, plus up to ``backoff_s`` of jitter.
        max_backoff_s: the longest backoff delay.
        max_retry_after_s: the longest wait a server's ``Retry-After`` may ask for.
    """

    max_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"expected max_retries >= 0, actually {self.max_retries}")
        if min(self.backoff_s, self.max_backoff_s, self.max_retry_after_s) < 0:
            raise ValueError(f"expected backoff_s, max_backoff_s and max_retry_after_s >= 0, actually "
                             f"{self.backoff_s}, {self.max_backoff_s} and {self.max_retry_after_s}")


class LLMClient:
    """Async chat-completion client shared by every agent of a run (a :class:`~agents.llm.protocol.ChatModel`).

    Args:
        model: model name sent to the server.
        transport: the endpoint (address, key variable, timeout, concurrency limit, slots).
        sampling: request defaults.
        retry: the retry policy for transient faults.
        cache: response cache; requests at temperature > 0 skip it unless the cache was made with
            ``sampled=True``. In ``read`` mode a miss still asks the model but stores nothing.
        price_per_million: dollars per million ``prompt`` and ``completion`` tokens.

    Attributes:
        usage: everything this client spent, added up.
        retries: retries made, by fault kind (``"HTTP 429"``, ``"ReadTimeout"``, ``"JSONDecodeError"``, ...).
        failures: requests that failed for good (retries exhausted, or rejected).

    Example:
        >>> client = LLMClient("gpt-4o-mini", HTTPTransport(api_key_env="OPENAI_API_KEY"))
        >>> client.model, client.server
        ('gpt-4o-mini', 'https://api.openai.com/v1')
    """

    def __init__(self, model: str, transport: HTTPTransport, *, sampling: Sampling = Sampling(),
                 retry: RetryPolicy = RetryPolicy(), cache: ResponseCache | None = None,
                 price_per_million: dict[str, float] | None = None) -> None:
        self.model = model
        self.transport = transport
        self.sampling = sampling
        self.retry = retry
        self.cache = cache
        self.prices = {"prompt": 0.0, "completion": 0.0, **(price_per_million or {})}
        self.usage = Usage()
        self.retries: Counter[str] = Counter()
        self.failures = 0
        self._backoff = (tenacity.wait_exponential(multiplier=retry.backoff_s, max=retry.max_backoff_s)
                         + tenacity.wait_random(0, retry.backoff_s))

    def copy(self, **changes: Any) -> LLMClient:
        """A client with these settings and the transport's ``changes`` (``max_concurrency``, ``slot_count``).

        It has fresh counters and nothing bound to an event loop: for another process (it pickles) or another limit.
        """
        return LLMClient(self.model, self.transport.copy(**changes), sampling=self.sampling, retry=self.retry,
                         cache=self.cache, price_per_million=self.prices)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its settings: counters start at zero in the other process."""
        return (functools.partial(LLMClient, sampling=self.sampling, retry=self.retry, cache=self.cache,
                                  price_per_million=self.prices), (self.model, self.transport))

    def __repr__(self) -> str:  # never shows the key
        return f"LLMClient(model={self.model!r}, base_url={self.base_url!r})"

    # The transport's settings the runner reads (workers split max_concurrency; progress shows in_flight).
    @property
    def base_url(self) -> str | None:
        """The endpoint's configured address (``None``: OpenAI's)."""
        return self.transport.base_url

    @property
    def server(self) -> str:
        """The server's address as messages name it."""
        return self.transport.server

    @property
    def max_concurrency(self) -> int:
        """Requests in flight at once against the endpoint."""
        return self.transport.max_concurrency

    @property
    def slot_count(self) -> int | None:
        """The llama.cpp slots requests are pinned to (``None``: no pinning)."""
        return self.transport.slot_count

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return self.transport.in_flight

    def preflight(self, timeout_s: float = 3.0) -> None:
        """Check that the server answers before any episode runs (see :meth:`HTTPTransport.preflight`).

        Raises:
            LLMUnavailableError: nothing answers, or the server refuses the key.
        """
        self.transport.preflight(self.model, timeout_s)

    async def aclose(self) -> None:
        """Close the transport's connections of the running loop."""
        await self.transport.aclose()

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
        logprobs: bool = False,
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
            session: what the request belongs to (an agent's stream). With slot pinning on, the requests of one
                session keep one server slot while it is free, so llama.cpp re-reads only what is new since the
                session's last request; never part of the cache key.
            logprobs: ask for the sampled tokens' logprobs (``Completion.token_logprobs``, where the server gives
                them); such a request never uses the cache, which keeps texts only.

        Raises:
            LLMRejectedError: the server refused the request.
            LLMError: the server kept failing after ``max_retries`` retries.
        """
        sampling = self.sampling
        temperature = sampling.temperature if temperature is None else temperature
        request: dict[str, Any] = {
            "model": self.model, "messages": messages, "n": n, "temperature": temperature,
            "max_tokens": max_tokens or sampling.max_tokens, "seed": sampling.seed,
        }
        if json_schema is not None and sampling.structured_output:
            request["response_format"] = {"type": "json_schema",
                                          "json_schema": {"name": "reply", "schema": json_schema, "strict": True}}
        if logprobs:
            request["logprobs"] = True
        cache = self.cache
        use_cache = cache is not None and not logprobs and (temperature == 0 or cache.sampled)
        if cache is not None and use_cache:
            cache_key = {**request, "base_url": self.transport.identity}
            hit = cache.get(cache_key)
            if hit is not None:
                completion = _from_cache(request, hit, purpose)
                self.usage += completion.usage
                return completion
            if cache.mode == "read":
                logger.debug("cache miss in read-only mode; asking the model")
        completion = await self._request_n(request, purpose, session)
        self.usage += completion.usage
        if cache is not None and use_cache and completion.texts:  # an empty answer is not worth replaying
            cache.put(cache_key, {
                "texts": completion.texts, "prompt_tokens": completion.usage.prompt_tokens,
                "completion_tokens": completion.usage.completion_tokens,
                "cached_prompt_tokens": completion.usage.cached_prompt_tokens})
        return completion

    async def _request_n(self, request: dict[str, Any], purpose: str, session: Hashable | None) -> Completion:
        """All ``n`` samples, over several requests when the server caps ``n`` or ignores it."""
        wanted: int = request["n"]
        texts: list[str] = []
        usage = Usage()
        records: list[dict[str, Any]] = []
        token_logprobs: list[list[dict[str, Any]] | None] = []
        cap = self.sampling.max_n_per_request or wanted
        for attempt in range(wanted):  # each round yields at least one sample, so this bounds the rounds
            batch = min(wanted - len(texts), cap)
            seed = request["seed"] if attempt == 0 or request["seed"] is None else request["seed"] + 7919 * attempt
            sent = {**request, "n": batch, "seed": seed}
            reply = await self._request(sent, session)
            texts += reply.texts
            token_logprobs += reply.token_logprobs or [None] * len(reply.texts)
            usage += self._usage(reply)
            records.append(_record(purpose, sent, reply, from_cache=False))
            if len(texts) >= wanted or not reply.texts:
                break
            if len(reply.texts) < batch:
                logger.debug("server returned %d of %d samples; asking again", len(reply.texts), batch)
        return Completion(texts[:wanted], usage, records,
                          token_logprobs[:wanted] if any(entry is not None for entry in token_logprobs) else None)

    def _usage(self, reply: Reply) -> Usage:
        cost = (reply.prompt_tokens * self.prices["prompt"] + reply.completion_tokens * self.prices["completion"]) / 1e6
        return Usage(calls=1, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                     latency_s=reply.latency_s, cost_usd=cost, cached_prompt_tokens=reply.cached_prompt_tokens or 0)

    # One request, retried ----------------------------------------------------------------------------
    async def _request(self, request: dict[str, Any], session: Hashable | None = None) -> Reply:
        # Most requests succeed at once: they skip building the retry machinery (~60 us of CPU a request). A
        # failure enters it as its first attempt, so waits, counts and the final error are as if it had begun there.
        try:
            return await self.transport.send(request, session)
        except REQUEST_ERRORS as error:
            first_failure: BaseException | None = error
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.retry.max_retries + 1), wait=self._wait,
            retry=tenacity.retry_if_exception(lambda error: fault_kind(error) is not None),
            before_sleep=self._before_sleep, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    if first_failure is not None:
                        failure, first_failure = first_failure, None
                        raise failure
                    return await self.transport.send(request, session)
        except REQUEST_ERRORS as error:
            self.failures += 1
            raise self._final_error(error, retrying.statistics.get("attempt_number", 1),
                                    "response_format" in request) from safe_cause(error)
        raise AssertionError("tenacity ended without an outcome")  # unreachable: reraise=True

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The server's ``Retry-After`` (capped) when it sent one, else exponential backoff with jitter."""
        error = state.outcome.exception() if state.outcome else None
        retry_after = retry_after_s(error)
        if retry_after is not None:
            return min(retry_after, self.retry.max_retry_after_s)
        return float(self._backoff(state))

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        kind = fault_kind(error) or type(error).__name__
        first = kind not in self.retries
        self.retries[kind] += 1
        # The first retry of each kind is worth a warning; the rest are counted in ``retries`` (thousands of
        # warnings would bury everything else in a long run against a flaky server).
        logger.log(logging.WARNING if first else logging.DEBUG, "LLM request to %s failed (%s); retry %d/%d in %.2fs%s",
                   self.server, kind, state.attempt_number, self.retry.max_retries,
                   state.next_action.sleep if state.next_action else 0.0,
                   f" (further {kind} retries are counted in LLMClient.retries, not logged)" if first else "")

    def _final_error(self, error: BaseException, attempts: int, structured: bool) -> LLMError:
        kind = fault_kind(error)
        redact = self.transport.redact
        status: int | None
        if kind is None and isinstance(error, STATUS_ERRORS):
            status, said = error.status_code, server_says(error)
            hint = rejection_hint(status, said, self.transport.api_key_env, structured)
            return LLMRejectedError(redact(f"{self.server} rejected the request for model {self.model!r} "
                                           f"(HTTP {status}): {said}{hint}"), kind=f"HTTP {status}", status=status)
        status = error.status_code if isinstance(error, STATUS_ERRORS) else None
        if isinstance(error, STATUS_ERRORS):
            detail = server_says(error)
        elif isinstance(error, TimeoutError):
            detail = f"no answer within {self.transport.timeout_s:g} s"
        elif isinstance(error, (openai.APIConnectionError, aiohttp.ClientError, OSError)):
            detail = connection_reason(error)
        else:
            detail = str(error)
        return LLMError(redact(f"{self.model} at {self.server}: gave up after {attempts} "
                               f"attempt{'s' if attempts != 1 else ''}: {kind or type(error).__name__}: "
                               f"{one_line(detail)}"), kind=kind or type(error).__name__, status=status)


def _record(purpose: str, request: dict[str, Any], reply: Reply, from_cache: bool) -> dict[str, Any]:
    """What one request (or cache hit) asked and got: a line of the run's transcript."""
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


def _from_cache(request: dict[str, Any], hit: dict[str, Any], purpose: str) -> Completion:
    cached_prompt_tokens = hit.get("cached_prompt_tokens")  # absent in entries older than the field
    usage = Usage(calls=1, cached_calls=1, prompt_tokens=hit["prompt_tokens"],
                  completion_tokens=hit["completion_tokens"], cached_prompt_tokens=cached_prompt_tokens or 0)
    reply = Reply(hit["texts"], hit["prompt_tokens"], hit["completion_tokens"], cached_prompt_tokens, 0.0)
    return Completion(hit["texts"], usage, [_record(purpose, request, reply, from_cache=True)])

