"""Method demonstrations: worked examples on unrelated tasks, in each method's reply format, at L1-L4 only."""

from __future__ import annotations

import json
import re

import pytest

from tests.agents.helpers import build_agent, play_episodes

OPENINGS = {
    "cot": "Two worked examples of reasoning step by step",
    "self_consistency": "Two worked examples of reasoning step by step",
    "self_ask": "Two worked examples of asking yourself follow-up questions",
    "spp": "Two worked examples of a team of personas",
    "reflexion": "A worked example of learning from a reflection",
    "pal": "Two worked examples of reasoning as a short program",
}
ENV_WORDS = re.compile(r"\b(cart|pole|lake|cliff|taxi|lander|pendulum|acrobot|blackjack|mountain)\b", re.IGNORECASE)


@pytest.mark.parametrize("preset", sorted(OPENINGS))
def test_demonstrations_open_every_request_at_levels_1_to_4(fake_llm, preset: str) -> None:
    for level in (1, 2, 3, 4):
        episode = play_episodes(build_agent(preset, fake_llm), fake_llm, level=level, episodes=1,
                                max_episode_steps=1)[0]
        assert all(p.startswith(OPENINGS[preset]) for p in episode.prompts()), (preset, level)
        demonstrations = episode.prompts()[0].split("Now the real task.")[0]
        assert not ENV_WORDS.search(demonstrations)  # unrelated to every env here


@pytest.mark.parametrize("preset", sorted(OPENINGS))
def test_no_demonstrations_at_level5_or_when_switched_off(fake_llm, preset: str) -> None:
    at_level5 = play_episodes(build_agent(preset, fake_llm), fake_llm, level=5, episodes=1, max_episode_steps=1)[0]
    off = play_episodes(build_agent(preset, fake_llm, "demonstrations=false"), fake_llm, level=1, episodes=1,
                        max_episode_steps=1)[0]
    for prompt in at_level5.prompts() + off.prompts():
        assert "worked example" not in prompt.lower() or "Worked examples from an expert" in prompt
        assert "Now the real task." not in prompt


@pytest.mark.parametrize("preset", ["cot", "spp"])
def test_json_demonstrations_are_in_the_reply_format(fake_llm, preset: str) -> None:
    episode = play_episodes(build_agent(preset, fake_llm), fake_llm, level=1, episodes=1, max_episode_steps=1)[0]
    replies = re.findall(r"^Reply: (\{.*\})$", episode.prompts()[0], re.MULTILINE)
    assert len(replies) == 2
    thought_chars = build_agent(preset, fake_llm).thought_chars
    for reply in map(json.loads, replies):
        assert list(reply) == ["thought", "action"] and len(reply["thought"]) <= thought_chars


@pytest.mark.parametrize("preset", ["naive", "exe"])
def test_agents_without_a_method_get_no_demonstrations(fake_llm, preset: str) -> None:
    episode = play_episodes(build_agent(preset, fake_llm), fake_llm, level=1, episodes=1, max_episode_steps=1)[0]
    assert all("Now the real task." not in p for p in episode.prompts())
