"""LLMClient: one ``AsyncOpenAI`` per endpoint, one concurrency limit, one retry policy, one cache.

Works with OpenAI and any OpenAI-compatible server (vLLM, Ollama, llama.cpp / xllamacpp). The API key is
read from the environment variable named in the config and is never stored on the client's public state,
in configs, logs or results.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import openai

from agents.llm.cache import ResponseCache

__all__ = ["LLMClient", "Completion", "Usage", "LLMError"]

logger = logging.getLogger(__name__)
Message = dict[str, str]
# Errors worth another try: the network, timeouts, rate limits and server-side failures.
RETRYABLE_ERRORS = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError,
                    openai.InternalServerError)


class LLMError(RuntimeError):
    """The model could not be reached after all retries, or refused the request."""


@dataclass
class Usage:
    """Token, call, latency and dollar counts; add them up with ``+``."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def __sub__(self, other: Usage) -> Usage:
        return Usage(*(a - b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, int, int, int, float, float]:
        return (self.calls, self.cached_calls, self.prompt_tokens, self.completion_tokens, self.latency_s,
                self.cost_usd)


@dataclass(frozen=True)
class Completion:
    """One chat completion request's answer: ``n`` texts and what they cost."""

    texts: list[str]
    usage: Usage = field(default_factory=Usage)

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


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
        max_retries: further attempts after a retryable failure, with exponential backoff.
        max_concurrency: requests in flight at once against this endpoint.
        structured_output: the server honours ``response_format={"type": "json_schema"}``.
        cache: response cache; requests at temperature > 0 skip it unless ``cache_sampled`` is set.
            In ``read`` mode a miss still asks the model but stores nothing.
        cache_sampled: cache sampled (temperature > 0) requests too (the seed is in the key).
        cache_namespace: what identifies the server in cache keys (default: ``base_url``). The embedded
            server gets a new port every start, so it is keyed by its model file instead.
        price_per_million: dollars per million ``prompt`` and ``completion`` tokens.
        max_n_per_request: the most samples one request may ask for (llama.cpp allows no more than its
            parallel slots); larger ``n`` is split into several requests with distinct seeds.

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
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, actually {max_concurrency}")
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
        self.usage = Usage()
        # Built lazily per event loop: httpx and asyncio primitives belong to the loop that made them.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: openai.AsyncOpenAI | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def __repr__(self) -> str:  # never shows the key
        return f"LLMClient(model={self.model!r}, base_url={self.base_url!r})"

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        # Local servers accept any key; the SDK insists on a non-empty one.
        return key or "not-needed"

    def _bind(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None or self._semaphore is None:
            self._loop = loop
            # max_retries=0: retries happen once, here, not again inside the SDK.
            self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key(),
                                              timeout=self.timeout_s, max_retries=0)
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        return self._client, self._semaphore

    async def complete(
        self,
        messages: list[Message],
        *,
        n: int = 1,
        json_schema: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Ask for ``n`` completions of ``messages``; ``json_schema`` constrains them where supported.

        Raises:
            LLMError: when the server keeps failing after ``max_retries`` retries or rejects the request.
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
                completion = Completion(hit["texts"], Usage(calls=1, cached_calls=1,
                                                            prompt_tokens=hit["prompt_tokens"],
                                                            completion_tokens=hit["completion_tokens"]))
                self.usage += completion.usage
                return completion
            if self.cache.mode == "read":  # type: ignore[union-attr]
                logger.debug("cache miss in read-only mode; asking the model")
        completion = await self._request_n(request)
        self.usage += completion.usage
        if use_cache and completion.texts:  # an empty answer is not worth replaying
            self.cache.put(cache_key, {"texts": completion.texts,  # type: ignore[union-attr]
                                       "prompt_tokens": completion.usage.prompt_tokens,
                                       "completion_tokens": completion.usage.completion_tokens})
        return completion

    async def _request_n(self, request: dict[str, Any]) -> Completion:
        """All ``n`` samples, over several requests when the server caps ``n`` or ignores it."""
        wanted, texts, usage = request["n"], [], Usage()
        for attempt in range(wanted):  # each round yields at least one sample, so this bounds the rounds
            batch = min(wanted - len(texts), self.max_n_per_request or wanted)
            seed = request["seed"] if attempt == 0 or request["seed"] is None else request["seed"] + 7919 * attempt
            completion = await self._request({**request, "n": batch, "seed": seed})
            texts += completion.texts
            usage += completion.usage
            if len(texts) >= wanted or not completion.texts:
                break
            if len(completion.texts) < batch:
                logger.debug("server returned %d of %d samples; asking again", len(completion.texts), batch)
        return Completion(texts[:wanted], usage)

    async def _request(self, request: dict[str, Any]) -> Completion:
        client, semaphore = self._bind()
        attempt = 0
        while True:
            try:
                async with semaphore:
                    started = time.perf_counter()  # latency of the request itself, not of the queue before it
                    response = await client.chat.completions.create(**request)
                break
            except RETRYABLE_ERRORS as error:
                if attempt >= self.max_retries:
                    raise LLMError(f"{self.model} at {self.base_url}: gave up after {attempt + 1} attempts: "
                                   f"{type(error).__name__}: {error}") from error
                delay = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random())
                logger.warning("LLM request failed (%s); retry %d/%d in %.1fs", type(error).__name__,
                               attempt + 1, self.max_retries, delay)
                attempt += 1
                await asyncio.sleep(delay)
            except openai.APIStatusError as error:
                raise LLMError(f"{self.model} at {self.base_url} rejected the request: {error}") from error
        latency = time.perf_counter() - started
        texts = [choice.message.content or "" for choice in response.choices]
        prompt_tokens = response.usage.prompt_tokens if response.usage else 0
        completion_tokens = response.usage.completion_tokens if response.usage else 0
        cost = (prompt_tokens * self.prices["prompt"] + completion_tokens * self.prices["completion"]) / 1e6
        return Completion(texts, Usage(calls=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                       latency_s=latency, cost_usd=cost))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
