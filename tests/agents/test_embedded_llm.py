"""The real embedded SmolLM2 server end to end: constrained actions on a short CartPole episode, and cache replay."""

from __future__ import annotations

from pathlib import Path

from agents.llm.cache import ResponseCache
from agents.llm.client import LLMClient
from agents.naive import NaiveAgent
from tests.agents.helpers import play


def _client(server, cache: ResponseCache | None) -> LLMClient:
    return LLMClient(model=server.model_name, base_url=server.base_url, api_key_env=None, max_concurrency=2,
                     cache=cache)


def test_smollm2_plays_cartpole_with_valid_actions_and_replays_from_cache(embedded_llm, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    first_client = _client(embedded_llm, cache)
    first = play(NaiveAgent(llm=first_client), "TextGym-CartPole-v0", level=1, episodes=1, max_episode_steps=6)[0]
    assert first.steps > 0
    assert first.invalid_actions == 0 and first.invalid_replies == 0  # json_schema keeps a 135M model legal
    assert first.usage.calls == first.steps and first.usage.cached_calls == 0
    assert first.usage.prompt_tokens > 100 and first.usage.completion_tokens > 0
    assert len(cache) == first.steps

    second_client = _client(embedded_llm, cache)
    second = play(NaiveAgent(llm=second_client), "TextGym-CartPole-v0", level=1, episodes=1, max_episode_steps=6)[0]
    assert second.usage.cached_calls == second.usage.calls == first.steps  # zero model calls
    assert second.usage.latency_s == 0
    assert [s["action_text"] for s in second.step_records] == [s["action_text"] for s in first.step_records]


def test_smollm2_continuous_actions_are_numbers_in_range(embedded_llm) -> None:
    record = play(NaiveAgent(llm=_client(embedded_llm, None)), "TextGym-Pendulum-v0", episodes=1,
                  max_episode_steps=3)[0]
    assert record.invalid_actions == 0
    for step in record.step_records:
        assert -2.0 <= step["action"][0] <= 2.0
