"""Levels gate learning: at L1 the episodes of a stream are independent trials, for every agent; at L3 they learn.

Asserted on the prompts the scripted server actually received, with the real envs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, ClassVar

import gymnasium as gym
import pytest

from agents.base import Agent, EpisodeContext, EpisodeResult
from experiments.running.episodes import run_episode
from tests.agents.helpers import agent_configs, build_agent, joined, marking_responder, play_episodes

PRESETS = agent_configs()
MARKS = re.compile(r"(?:NOTE|THOUGHT)-[0-9a-f]{10}")


def marks_in(requests: list[dict[str, Any]]) -> set[str]:
    return {mark for request in requests for mark in MARKS.findall(joined(request["messages"]))}


def replies_to(requests: list[dict[str, Any]]) -> set[str]:
    """The markers the scripted server answered these requests with."""
    return {mark for request in requests for mark in MARKS.findall(marking_responder(request))}


def test_every_llm_preset_is_covered() -> None:
    assert {"naive", "cot", "self_consistency", "self_ask", "spp", "reflexion", "pal", "exe", "exe_no_insight",
            "exe_no_suggestion", "exe_no_summary", "exe_no_history"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_level1_episodes_share_nothing(fake_llm, preset: str) -> None:
    fake_llm.responder = marking_responder
    first, second = play_episodes(build_agent(preset, fake_llm), fake_llm, level=1, episodes=2)
    # No reply of episode 1 (summary, reflection, insight, thought, ...) reaches any request of episode 2
    # (replies episode 2 got for its own, equal requests - the same first suggestion - are its own) ...
    assert not (replies_to(first.requests) - replies_to(second.requests)) & marks_in(second.requests)
    seen_in_first = [step["observation"] for step in first.record.step_records]
    assert not any(obs in joined(r["messages"]) for obs in seen_in_first for r in second.requests)
    # ... nor anything else: episode 2's requests are exactly those of a fresh agent playing only that episode.
    fresh = play_episodes(build_agent(preset, fake_llm), fake_llm, level=1, episodes=2, first=1)[0]
    assert [r["messages"] for r in second.requests] == [r["messages"] for r in fresh.requests]
    # And no call was spent on learning.
    learning = {"summary", "insight", "reflection", "experience_summary"}
    assert not learning & {*first.purposes, *second.purposes}


@pytest.mark.parametrize("preset", PRESETS)
def test_level3_episodes_learn(fake_llm, preset: str) -> None:
    fake_llm.responder = marking_responder
    first, second = play_episodes(build_agent(preset, fake_llm), fake_llm, level=3, episodes=2)
    learned = (replies_to(first.requests) - replies_to(second.requests)) & marks_in(second.requests)
    assert learned, f"{preset}: nothing episode 1's requests were answered reached episode 2"
    fresh = play_episodes(build_agent(preset, fake_llm), fake_llm, level=3, episodes=2, first=1)[0]
    assert [r["messages"] for r in second.requests] != [r["messages"] for r in fresh.requests]


@pytest.mark.parametrize("preset", ["naive", "cot", "self_ask", "spp", "pal", "self_consistency"])
def test_level3_memory_of_baselines_is_an_llm_summary_of_each_trial(fake_llm, preset: str) -> None:
    fake_llm.responder = marking_responder
    episodes = play_episodes(build_agent(preset, fake_llm), fake_llm, level=3, episodes=3)
    assert [e.purposes.count("experience_summary") for e in episodes] == [1, 1, 0]  # none after the last
    assert [bool(e.notes.get("experience_summary")) for e in episodes] == [True, True, False]
    summaries = [call for e in episodes for call in e.record.calls if call["purpose"] == "experience_summary"]
    # The summary request shows the whole trial: every step and the final state.
    request = joined(summaries[0]["request"]["messages"])
    assert all(f"{n}. " in request for n in range(1, episodes[0].record.steps + 1)) and "Final state:" in request
    third_actions = episodes[2].prompts("action")
    for summary in summaries:
        assert all(summary["texts"][0] in prompt for prompt in third_actions)
    assert all("Trial 1 (return" in p and "Trial 2 (return" in p for p in third_actions)


class Counter(Agent):
    """A user's agent that learns in ``_end_episode`` at every level, to show the gate holds anyway."""

    name = "counter"
    uses_llm = False
    state_attributes: ClassVar[tuple[str, ...]] = ("returns_seen",)

    def __init__(self, llm: object | None = None, seed: int = 0) -> None:
        super().__init__(None, seed)
        self.returns_seen: list[float] = []
        self.remembered_at_reset: list[int] = []  # bookkeeping of the test, not learned state

    async def _reset(self, context: EpisodeContext) -> None:
        self.remembered_at_reset.append(len(self.returns_seen))

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        return "push left"

    async def _end_episode(self, result: EpisodeResult) -> None:
        self.returns_seen.append(result.episode_return)


@pytest.mark.parametrize(("level", "expected"), [(1, [0, 0, 0]), (2, [0, 0, 0]), (3, [0, 1, 2]), (5, [0, 0, 0])])
def test_the_gate_holds_for_a_users_own_agent(level: int, expected: list[int]) -> None:
    env = gym.make("TextGym-CartPole-v0", level=level, max_episode_steps=3)
    agent = Counter()

    async def stream() -> None:
        for k in range(3):
            await run_episode(env, agent, 0, k, 3)

    asyncio.run(stream())
    assert agent.remembered_at_reset == expected
    assert len(agent.returns_seen) == (3 if level == 3 else 1)  # the last episode's lesson, until the next reset


def test_an_attribute_made_after_construction_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    class Sneaky(Counter):
        async def _end_episode(self, result: EpisodeResult) -> None:
            self.notes_to_self = "remember me"  # not in state_attributes: neither reset nor saved

    env = gym.make("TextGym-CartPole-v0", level=1, max_episode_steps=2)
    agent = Sneaky()
    with caplog.at_level(logging.WARNING, logger="agents.base"):
        asyncio.run(run_episode(env, agent, 0, 0, 2))
        asyncio.run(run_episode(env, agent, 0, 1, 2))
    assert any("notes_to_self" in r.getMessage() and "state_attributes" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("level", [1, 2, 4, 5])
def test_offline_knowledge_arrives_with_every_episode(fake_llm, level: int) -> None:
    fake_llm.responder = marking_responder
    episodes = play_episodes(build_agent("naive", fake_llm), fake_llm, level=level, episodes=2)
    knowledge = "Example episode 5" if level in (2, 4) else "Expert guidance" if level == 5 else None
    for episode in episodes:
        assert all((knowledge in p) if knowledge else ("Example episode" not in p and "Expert guidance" not in p)
                   for p in episode.prompts())
