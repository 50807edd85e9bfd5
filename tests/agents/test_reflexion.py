from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import gymnasium as gym
import pytest

from agents.llm.client import Usage
from agents.reflexion import ReflexionAgent
from experiments.running.episodes import run_episode
from tests.agents.helpers import build_agent, client_for, play_episodes
from tests.fake_llm_server import first_action_responder


def scripted():
    """Actions: the first valid one; reflections (free text): 'REFLECTION-1', 'REFLECTION-2', ..."""
    numbers = itertools.count(1)

    def respond(request: dict[str, Any]) -> str:
        return first_action_responder(request) if request.get("response_format") else f"REFLECTION-{next(numbers)}"

    return respond


@pytest.mark.parametrize("env_id", ["TextGym-CartPole-v0", "TextGym-Pendulum-v0"])
def test_reflexion_reflects_on_whole_trials_and_keeps_the_last_reflections(fake_llm, env_id: str) -> None:
    fake_llm.responder = scripted()
    agent = ReflexionAgent(llm=client_for(fake_llm), memory_size=1)
    episodes = play_episodes(agent, fake_llm, env_id, level=3, episodes=3, max_episode_steps=4)

    # Order: actions then a reflection, per trial but the last.
    for k, episode in enumerate(episodes):
        assert episode.purposes == ["action"] * episode.record.steps + (["reflection"] if k < 2 else [])
    first, second, third = episodes
    reflection = first.prompts("reflection")[0]
    assert "Episode 1: return" in reflection and "Final state:" in reflection
    assert all(f"{n}. " in reflection for n in range(1, first.record.steps + 1))  # the whole trajectory
    assert f"Action: {first.record.step_records[-1]['action_text']}" in reflection
    assert "After trial 1: REFLECTION-1" in second.prompts("reflection")[0]  # earlier reflections inform it

    # Trial 2 acts on trial 1's reflection; with memory_size=1, trial 3 only on trial 2's.
    assert all("REFLECTION" not in p for p in first.prompts())
    assert all("After trial 1: REFLECTION-1" in p for p in second.prompts("action"))
    assert all("REFLECTION-2" in p and "REFLECTION-1" not in p for p in third.prompts("action"))
    assert agent.reflections == [{"episode": 1, "text": "REFLECTION-2"}]
    assert [e.notes for e in episodes] == [{"reflection": "REFLECTION-1"}, {"reflection": "REFLECTION-2"},
                                          {"reflection": None}]
    # Its reflections are its L3 memory: no second summary per trial.
    assert all("experience_summary" not in e.purposes and "What your earlier episodes showed" not in p
               for e in episodes for p in e.prompts())
    # The demonstration (one, on an unrelated task) opens every request at L1-L4.
    assert all(p.startswith("A worked example of learning from a reflection") for e in episodes for p in e.prompts())

    assert [r["max_tokens"] for e in episodes for r in e.requests] == [
        48 if p == "action" else 256 for e in episodes for p in e.purposes]
    assert sum((e.record.usage for e in episodes), start=Usage()).astuple()[:4] == agent.usage.astuple()[:4]


def test_reflexion_trajectory_budget_keeps_head_and_tail(fake_llm) -> None:
    fake_llm.responder = scripted()
    agent = ReflexionAgent(llm=client_for(fake_llm), trajectory_budget_tokens=120)
    first = play_episodes(agent, fake_llm, level=3, episodes=2, max_episode_steps=30)[0]
    reflection = first.prompts("reflection")[0]
    assert "steps left out (over the 120-token budget)" in reflection
    assert "1. The cart" in reflection and f"{first.record.steps}. The cart" in reflection


def test_reflexion_has_no_demonstration_at_level5_or_when_off(fake_llm) -> None:
    at_level5 = play_episodes(ReflexionAgent(llm=client_for(fake_llm)), fake_llm, level=5, episodes=1)[0]
    assert all("worked example of learning" not in p and "Expert guidance" in p for p in at_level5.prompts())
    off = play_episodes(build_agent("reflexion", fake_llm, "demonstrations=false"), fake_llm, level=1, episodes=1)[0]
    assert all("worked example" not in p for p in off.prompts())


def test_reflexion_rejects_empty_memory(fake_llm) -> None:
    with pytest.raises(ValueError, match="memory_size must be >= 1"):
        ReflexionAgent(llm=client_for(fake_llm), memory_size=0)


def test_reflexion_resumes_from_saved_state(fake_llm) -> None:
    fake_llm.responder = scripted()
    env = gym.make("TextGym-CartPole-v0", level=3, max_episode_steps=3)
    agent = ReflexionAgent(llm=client_for(fake_llm))
    asyncio.run(run_episode(env, agent, 0, 0, 3))
    saved = json.loads(json.dumps(agent.state()))  # as the runner stores it

    resumed = ReflexionAgent(llm=client_for(fake_llm))
    resumed.load_state(saved)
    assert resumed.state() == agent.state()
    before = len(fake_llm.requests)
    asyncio.run(run_episode(env, resumed, 0, 1, 3))
    assert "After trial 1: REFLECTION-1" in fake_llm.prompts()[before]
