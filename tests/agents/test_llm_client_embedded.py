"""Cached prompt tokens as the real embedded llama.cpp server (xllamacpp, what ``llm=local`` runs) reports them."""

from __future__ import annotations

import asyncio

from agents.llm.client import LLMClient

SYSTEM = "You are playing CartPole. Push the cart left or right to keep the pole upright. " * 6


def test_second_request_with_the_same_prefix_reports_cached_prompt_tokens(embedded_llm) -> None:
    client = LLMClient(model=embedded_llm.model_name, base_url=embedded_llm.base_url, api_key_env=None,
                       max_concurrency=1, max_tokens=4)

    async def two_steps():
        try:
            return [await client.complete([{"role": "system", "content": SYSTEM},
                                           {"role": "user", "content": f"Step {step}. Which way?"}],
                                          purpose="action") for step in (1, 2)]
        finally:
            await client.aclose()

    first, second = asyncio.run(two_steps())
    usage = second.records[0]["usage"]
    assert isinstance(usage["cached_prompt_tokens"], int)
    # Only the user turn changed: the server re-read a few tokens and served the long system prompt from its slot.
    assert usage["prompt_tokens"] - 20 < usage["cached_prompt_tokens"] < usage["prompt_tokens"]
    assert second.usage.cached_prompt_tokens == usage["cached_prompt_tokens"]
    assert client.usage.cached_prompt_tokens == first.usage.cached_prompt_tokens + second.usage.cached_prompt_tokens
