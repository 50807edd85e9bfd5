"""Build the run's one LLMClient from the ``llm`` config, starting the embedded server when asked."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf

from agents.llm.cache import CACHE_MODES, ResponseCache
from agents.llm.client import LLMClient
from agents.llm.embedded import EmbeddedServer

__all__ = ["llm_session", "PROVIDERS"]

logger = logging.getLogger(__name__)
PROVIDERS = ("embedded", "openai_compatible")


def _is_loopback(url: str | None) -> bool:
    return url is not None and urlparse(url).hostname in ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def llm_session(cfg: DictConfig, max_concurrency: int) -> Iterator[LLMClient]:
    """Yield a ready client; the embedded server (if any) stops when the block ends.

    Slot pinning (``LLMClient(slot_count=...)``: each stream's requests name the llama.cpp slot that holds its
    previous prompt) is on for the embedded server unless ``llm.pin_slots=false``, with one slot per
    ``llm.parallel``. Another llama.cpp server turns it on with ``+llm.slot_count=N`` (its ``--parallel``);
    other servers do not know ``id_slot``, so it is off for them by default.

    Raises:
        ValueError: a config value is wrong (unknown provider or cache mode, an unset API-key variable).
        LLMUnavailableError: for ``provider: openai_compatible``, nothing answers at ``base_url`` or the
            server refuses the key (skip the check with ``+llm.preflight=false``).
    """
    if cfg.provider not in PROVIDERS:
        raise ValueError(f"unknown llm.provider {cfg.provider!r}: expected one of {', '.join(PROVIDERS)}")
    if cfg.cache not in CACHE_MODES:
        raise ValueError(f"unknown llm.cache {cfg.cache!r}: expected one of {', '.join(CACHE_MODES)}")
    if cfg.api_key_env and not os.environ.get(cfg.api_key_env) and not _is_loopback(cfg.base_url):
        raise ValueError(f"llm.api_key_env={cfg.api_key_env} names an unset environment variable: export it, "
                         f"or set llm.api_key_env=null for a server that needs no key")
    slot_count = cfg.get("slot_count")
    if slot_count is not None and (isinstance(slot_count, bool) or not isinstance(slot_count, int) or slot_count < 1):
        raise ValueError(f"llm.slot_count must be a whole number >= 1 (the server's slots) or null, "
                         f"actually {slot_count!r}")
    with contextlib.ExitStack() as stack:
        base_url, model, namespace = cfg.base_url, cfg.model, None
        if cfg.provider == "embedded":
            server = EmbeddedServer(cfg.model_path, parallel=cfg.parallel, context_per_slot=cfg.context_per_slot,
                                    threads=cfg.threads, requantize=cfg.get("requantize", "q8_0"))
            stack.enter_context(server)
            base_url, model, namespace = server.base_url, model or server.model_name, server.identity
            if slot_count is None and cfg.get("pin_slots", True):
                slot_count = server.parallel
        cache = ResponseCache(cfg.cache_path, cfg.cache) if cfg.cache != "off" else None
        if cache is not None:
            stack.callback(cache.close)
        prices: dict[str, Any] = OmegaConf.to_container(cfg.prices) if cfg.prices else {}  # type: ignore[assignment]
        if cfg.provider != "embedded" and model not in prices:
            logger.warning("no price for model %r in llm.prices: its cost is reported as 0", model)
        client = LLMClient(
            model=model, base_url=base_url, api_key_env=cfg.api_key_env, temperature=cfg.temperature,
            max_tokens=cfg.max_tokens, seed=cfg.seed, timeout_s=cfg.timeout_s, max_retries=cfg.max_retries,
            max_concurrency=max_concurrency, structured_output=cfg.structured_output, cache=cache,
            cache_sampled=cfg.cache_sampled, price_per_million=prices.get(model),
            max_n_per_request=cfg.get("max_n_per_request"), cache_namespace=namespace,
            backoff_s=cfg.get("backoff_s", 0.5), max_backoff_s=cfg.get("max_backoff_s", 30.0),
            max_retry_after_s=cfg.get("max_retry_after_s", 60.0), slot_count=slot_count,
        )
        if cfg.provider == "openai_compatible" and cfg.get("preflight", True):
            # A missing server or a bad key fails here in a second (LLMUnavailableError), before any episode.
            client.preflight(timeout_s=cfg.get("preflight_timeout_s", 3.0))
        yield client
