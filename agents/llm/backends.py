"""The backends ``conf/llm/*.yaml`` name as ``_target_``.

Each is built from its YAML's keys plus the run's ``max_concurrency`` and used as a context manager that yields a ready
:class:`~agents.llm.protocol.ChatModel`.

* :func:`openai_compatible` (``llm=server``, ``llm=openai``): any OpenAI-compatible endpoint;
* :func:`embedded` (``llm=local``): starts llama.cpp in this process, then serves through the same client.

A backend of your own is one class plus one YAML (``conf/llm/custom.yaml`` shows the contract).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from agents.llm.cache import CACHE_MODES, ResponseCache
from agents.llm.client import LLMClient, RetryPolicy, Sampling
from agents.llm.embedded import EmbeddedServer
from agents.llm.transport import HTTPTransport

__all__ = ["openai_compatible", "embedded"]

logger = logging.getLogger(__name__)


def _is_loopback(url: str | None) -> bool:
    return url is not None and urlparse(url).hostname in ("127.0.0.1", "localhost", "::1")


def _check_settings(slot_count: Any, cache: Any, cache_path: Any) -> None:
    """The checks that need no server, so that a typo fails before one starts."""
    if cache not in CACHE_MODES:
        raise ValueError(f"unknown llm.cache {cache!r}: expected one of {', '.join(CACHE_MODES)}")
    if cache != "off" and not cache_path:
        raise ValueError("llm.cache_path is not set: name the cache file, or set llm.cache=off")
    if slot_count is not None and (isinstance(slot_count, bool) or not isinstance(slot_count, int) or slot_count < 1):
        raise ValueError(f"llm.slot_count must be a whole number >= 1 (the server's slots) or null, "
                         f"actually {slot_count!r}")


@contextlib.contextmanager
def openai_compatible(
    *, model: str, base_url: str | None, max_concurrency: int, api_key_env: str | None = None,
    temperature: float = Sampling.temperature, max_tokens: int = Sampling.max_tokens, seed: int | None = Sampling.seed,
    structured_output: bool = Sampling.structured_output, max_n_per_request: int | None = None,
    timeout_s: float = 120.0, slot_count: int | None = None, identity: str | None = None,
    max_retries: int = RetryPolicy.max_retries, backoff_s: float = RetryPolicy.backoff_s,
    max_backoff_s: float = RetryPolicy.max_backoff_s, max_retry_after_s: float = RetryPolicy.max_retry_after_s,
    cache: str = "readwrite", cache_path: str | None = None, cache_sampled: bool = False,
    prices: dict[str, dict[str, float]] | None = None, preflight: bool = True, preflight_timeout_s: float = 3.0,
) -> Iterator[LLMClient]:
    """An :class:`LLMClient` for one OpenAI-compatible endpoint; its cache closes when the block ends.

    The keys are ``conf/llm/server.yaml``'s (see its comments), ``llm.<key>=`` on the command line. Slot pinning
    (each stream's requests name the llama.cpp slot that holds its previous prompt) is off unless
    ``+llm.slot_count=N`` gives a llama.cpp server's ``--parallel``: other servers do not know ``id_slot``.

    Raises:
        ValueError: a bad value (cache mode, slot count, retry settings), or ``api_key_env`` names an unset
            variable for a server that is not on this machine.
        LLMUnavailableError: with ``preflight`` on, nothing answers at ``base_url`` or the server refuses the key
            (``+llm.preflight=false`` skips the check).
    """
    _check_settings(slot_count, cache, cache_path)
    if api_key_env and not os.environ.get(api_key_env) and not _is_loopback(base_url):
        raise ValueError(f"llm.api_key_env={api_key_env} names an unset environment variable: export it, "
                         f"or set llm.api_key_env=null for a server that needs no key")
    transport = HTTPTransport(base_url, api_key_env, timeout_s=timeout_s, max_concurrency=max_concurrency,
                              slot_count=slot_count, identity=identity)
    sampling = Sampling(temperature, max_tokens, seed, structured_output, max_n_per_request)
    retry = RetryPolicy(max_retries, backoff_s, max_backoff_s, max_retry_after_s)
    if preflight:  # a missing server or a bad key fails here in a second, before any episode (or warning)
        transport.preflight(model, timeout_s=preflight_timeout_s)
    if prices is not None and model not in prices:
        logger.warning("no price for model %r in llm.prices: its cost is reported as 0", model)
    with contextlib.ExitStack() as stack:
        response_cache = None
        if cache != "off":
            response_cache = stack.enter_context(contextlib.closing(ResponseCache(cache_path, cache, cache_sampled)))  # type: ignore[arg-type]  # checked above
        yield LLMClient(model, transport, sampling=sampling, retry=retry, cache=response_cache,
                        price_per_million=(prices or {}).get(model))


@contextlib.contextmanager
def embedded(
    *, model_path: str | None = None, model: str | None = None, requantize: str = "q8_0", parallel: int = 4,
    context_per_slot: int = 6144, threads: int | None = None, pin_slots: bool = True, slot_count: int | None = None,
    prices: dict[str, dict[str, float]] | None = None, **settings: Any,
) -> Iterator[LLMClient]:
    """Start llama.cpp in this process (:class:`EmbeddedServer`) and yield a client of it; it stops at the end.

    The server's keys are ``conf/llm/local.yaml``'s; ``settings`` are :func:`openai_compatible`'s (the address,
    the key and the preflight are the server's business; a local model costs nothing unless ``prices`` names it). Slot
    pinning is on, one slot per ``parallel``, unless ``pin_slots=false``.

    Raises:
        ValueError: a bad value (``requantize``, ``slot_count``, the cache mode, ...).
    """
    _check_settings(slot_count, settings.get("cache", "readwrite"), settings.get("cache_path"))
    with EmbeddedServer(model_path, parallel=parallel, context_per_slot=context_per_slot, threads=threads,
                        requantize=requantize) as server:
        if slot_count is None and pin_slots:
            slot_count = server.parallel
        # The server's address, key and identity win over any the settings name (they had no say before either).
        endpoint = {"model": model or server.model_name, "base_url": server.base_url, "api_key_env": None,
                    "slot_count": slot_count, "identity": server.identity, "prices": prices or None,
                    "preflight": False}
        with openai_compatible(**{**settings, **endpoint}) as client:
            yield client
