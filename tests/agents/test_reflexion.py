from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
import pytest
from omegaconf import OmegaConf

from agents.llm.client import Usage
from agents.reflexion import ReflexionAgent
from experiments.episodes import run_episode
from tests.agents.helpers import client_for, play
from tests.fake_llm_server import first_action_responder

ENV_IDS = ["TextGym-CartPole-v0", "TextGym-Pendulum-v0"]


def scripted(replies: list[str]):
    """Actions: the first valid one; reflections (free text): 'REFLECTION-1', 'REFLECTION-2', ..."""
    numbers = itertools.count(1)

    def respond(request: dict[str, Any]) -> str:
        if request.get("response_format"):
            reply = first_action_responder(request)
        else:
            reply = f"REFLECTION-{next(numbers)}"
        replies.append(reply)
        return reply

    return respond


def episode_prompts(fake_llm, records) -> list[list[str]]:
    """The action prompts of each episode (a reflection request sits between episodes)."""
    prompts, start, episodes = fake_llm.prompts(), 0, []
    for record in records:
        episodes.append(prompts[start:start + record.steps])
        start += record.steps + 1
    return episodes


@pytest.mark.parametrize("env_id", ENV_IDS, ids=ENV_IDS)
def test_reflexion_reflects_between_episodes_and_keeps_a_bounded_memory(fake_llm, env_id: str) -> None:
    replies: list[str] = []
    fake_llm.responder = scripted(replies)
    agent = ReflexionAgent(llm=client_for(fake_llm), memory_size=1)
    records = play(agent, env_id, level=5, episodes=3, max_episode_steps=4)

    # Order: actions, a reflection, actions, a reflection, actions (none after the last episode).
    requests, prompts = fake_llm.requests, fake_llm.prompts()
    is_action = [bool(r.get("response_format")) for r in requests]
    expected = [True] * records[0].steps + [False] + [True] * records[1].steps + [False]
    expected += [True] * records[2].steps
    assert is_action == expected
    reflections = [p for p, action in zip(prompts, is_action, strict=True) if not action]
    first_steps = records[0].step_records
    assert "Episode 1: return" in reflections[0]
    assert f"Action: {first_steps[-1]['action_text']}" in reflections[0]
    assert "Final state:" in reflections[0] and "REFLECTION" not in reflections[0]
    assert "After episode 1: REFLECTION-1" in reflections[1]  # earlier reflections inform the next one

    # Episode 2 acts on episode 1's reflection; with memory_size=1, episode 3 only on episode 2's.
    first, second, third = episode_prompts(fake_llm, records)
    assert all("REFLECTION" not in p for p in first)
    assert all("After episode 1: REFLECTION-1" in p for p in second)
    assert all("REFLECTION-2" in p and "REFLECTION-1" not in p for p in third)
    assert agent.reflections == [{"episode": 1, "text": "REFLECTION-2"}]

    # Level 5 knowledge in every request; bounded budgets.
    assert all("Example episode" in p and "Expert guidance" in p for p in prompts)
    assert [r["max_tokens"] for r in requests] == [48 if action else 128 for action in is_action]

    # Actions: the scripted first valid action (a number: 0.5), never invalid.
    actions = {s["action_text"] for record in records for s in record.step_records}
    assert len(actions) == 1 and actions.pop() in ("push left", "0.50")
    assert sum(r.invalid_actions + r.invalid_replies for r in records) == 0

    # Token accounting: what the server reported, split exactly over the episode records.
    assert agent.usage.calls == len(requests)
    assert agent.usage.prompt_tokens == sum(
        sum(len(m["content"]) for m in r["messages"]) // 4 for r in requests)
    assert agent.usage.completion_tokens == sum(len(reply) // 4 for reply in replies)
    assert sum((r.usage for r in records), start=Usage()).astuple()[:4] == agent.usage.astuple()[:4]


def test_reflexion_level3_memory_sits_beside_reflections(fake_llm) -> None:
    fake_llm.responder = scripted([])
    records = play(ReflexionAgent(llm=client_for(fake_llm)), "TextGym-CartPole-v0", level=3, episodes=2,
                   max_episode_steps=3)
    reflection = fake_llm.prompts()[records[0].steps]
    # The episode is in the trajectory; the L3 memory takes it in only after the reflection.
    assert "What your earlier episodes showed" not in reflection
    second = episode_prompts(fake_llm, records)[1]
    assert all("What your earlier episodes showed" in p and "REFLECTION-1" in p for p in second)
    assert all("Example episode" not in p for p in fake_llm.prompts())


def test_reflexion_config_builds_the_agent(fake_llm) -> None:
    config = OmegaConf.load(Path(__file__).parents[2] / "conf/agent/reflexion.yaml")
    agent = hydra.utils.instantiate(config)(llm=client_for(fake_llm), seed=3)
    assert isinstance(agent, ReflexionAgent) and agent.seed == 3
    assert agent.reflection_max_tokens == config.reflection_max_tokens


def test_reflexion_rejects_empty_memory(fake_llm) -> None:
    with pytest.raises(ValueError, match="memory_size must be >= 1"):
        ReflexionAgent(llm=client_for(fake_llm), memory_size=0)


def test_reflexion_resumes_from_saved_state(fake_llm) -> None:
    fake_llm.responder = scripted([])
    env = gym.make("TextGym-CartPole-v0", level=1, max_episode_steps=3)
    agent = ReflexionAgent(llm=client_for(fake_llm))
    asyncio.run(run_episode(env, agent, 0, 0, 3))
    saved = json.loads(json.dumps(agent.state()))  # as the runner stores it

    resumed = ReflexionAgent(llm=client_for(fake_llm))
    resumed.load_state(saved)
    assert resumed.state() == agent.state()
    before = len(fake_llm.requests)
    asyncio.run(run_episode(env, resumed, 0, 1, 3))
    resumed_prompt = fake_llm.prompts()[before]
    assert "After episode 1: REFLECTION-1" in resumed_prompt
