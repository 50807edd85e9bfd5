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

from agents.exe import EXEAgent
from agents.llm.client import Usage
from experiments.episodes import run_episode
from tests.agents.helpers import client_for, play
from tests.fake_llm_server import first_action_responder

ENV_IDS = ["TextGym-CartPole-v0", "TextGym-Pendulum-v0"]
# Each free-text request kind, told apart by a phrase of its template.
MARKERS = {"suggestion": "Suggest a plan", "summary": "Summarize this episode", "insight": "Distil these"}


def kind_of(request: dict[str, Any]) -> str:
    if request.get("response_format"):
        return "action"
    user = request["messages"][-1]["content"]
    return next(kind for kind, marker in MARKERS.items() if marker in user)


def scripted(replies: list[str]):
    """Actions: the first valid one; free text: 'SUGGESTION-1', 'SUMMARY-1', ... numbered per kind."""
    counters = {kind: itertools.count(1) for kind in MARKERS}

    def respond(request: dict[str, Any]) -> str:
        kind = kind_of(request)
        if kind == "action":
            reply = first_action_responder(request)
        else:
            reply = f"{kind.upper()}-{next(counters[kind])}"
        replies.append(reply)
        return reply

    return respond


@pytest.mark.parametrize("env_id", ENV_IDS, ids=ENV_IDS)
def test_exe_suggest_act_summarize_distil_cycle(fake_llm, env_id: str) -> None:
    replies: list[str] = []
    fake_llm.responder = scripted(replies)
    agent = EXEAgent(llm=client_for(fake_llm))
    records = play(agent, env_id, level=5, episodes=3, max_episode_steps=4)

    # Order: suggestion, actions, then summary + insight between episodes (none after the last).
    expected = []
    for k, record in enumerate(records):
        expected += ["suggestion"] + ["action"] * record.steps + (["summary", "insight"] if k < 2 else [])
    requests, prompts = fake_llm.requests, fake_llm.prompts()
    assert [kind_of(r) for r in requests] == expected

    # What each request carries.
    def prompts_of(kind: str, episode: int | None = None) -> list[str]:
        starts = [i for i, k in enumerate(expected) if k == "suggestion"] + [len(expected)]
        span = range(len(expected)) if episode is None else range(starts[episode], starts[episode + 1])
        return [prompts[i] for i in span if expected[i] == kind]

    assert "You have not played this task yet" in prompts_of("suggestion", 0)[0]
    assert all("INSIGHT" not in p and "SUGGESTION-1" in p for p in prompts_of("action", 0))
    assert "Episode 1: return" in prompts_of("summary")[0] and "Final state:" in prompts_of("summary")[0]
    assert "SUMMARY-1" in prompts_of("insight")[0]
    assert "SUMMARY-1" in prompts_of("suggestion", 1)[0] and "INSIGHT-1" in prompts_of("suggestion", 1)[0]
    assert all("INSIGHT-1" in p and "SUGGESTION-2" in p and "SUGGESTION-1" not in p
               for p in prompts_of("action", 1))
    assert "SUMMARY-1" in prompts_of("insight")[1] and "SUMMARY-2" in prompts_of("insight")[1]
    assert "INSIGHT-1" in prompts_of("insight")[1]  # the previous insight is refined, not forgotten
    assert all("INSIGHT-2" in p and "SUGGESTION-3" in p for p in prompts_of("action", 2))
    assert "1 more episode(s)" in prompts_of("suggestion", 1)[0]
    assert "the last episode, so exploit" in prompts_of("suggestion", 2)[0]
    assert (agent.insight, agent.suggestion, [note["text"] for note in agent.summaries]) == (
        "INSIGHT-2", "SUGGESTION-3", ["SUMMARY-1", "SUMMARY-2"])

    # Level 5 knowledge reaches every request; every request has a bounded budget.
    assert all("Example episode" in p and "Expert guidance" in p for p in prompts)
    budgets = {"action": 48, "suggestion": 128, "summary": 128, "insight": 128}
    assert all(r["max_tokens"] == budgets[kind_of(r)] for r in requests)

    # Actions: the scripted server always answers the first valid action (a number: 0.5).
    actions = {s["action_text"] for record in records for s in record.step_records}
    assert len(actions) == 1 and sum(r.invalid_actions + r.invalid_replies for r in records) == 0
    assert actions.pop() in ("push left", "0.50")

    # Token accounting: the agent's usage is what the server reported, and episode records add up to it.
    assert agent.usage.calls == len(requests)
    assert agent.usage.prompt_tokens == sum(
        sum(len(m["content"]) for m in r["messages"]) // 4 for r in requests)
    assert agent.usage.completion_tokens == sum(len(reply) // 4 for reply in replies)
    assert sum((r.usage for r in records), start=Usage()).astuple()[:4] == agent.usage.astuple()[:4]


def test_exe_summaries_are_bounded(fake_llm) -> None:
    fake_llm.responder = scripted([])
    agent = EXEAgent(llm=client_for(fake_llm), memory_size=1)
    play(agent, "TextGym-CartPole-v0", episodes=3, max_episode_steps=3)
    requests = zip(fake_llm.requests, fake_llm.prompts(), strict=True)
    insights = [p for r, p in requests if kind_of(r) == "insight"]
    assert "SUMMARY-2" in insights[1] and "SUMMARY-1" not in insights[1]
    assert [note["text"] for note in agent.summaries] == ["SUMMARY-2"]


def test_exe_level3_adds_own_episodes_not_fewshot(fake_llm) -> None:
    fake_llm.responder = scripted([])
    records = play(EXEAgent(llm=client_for(fake_llm)), "TextGym-CartPole-v0", level=3, episodes=2,
                   max_episode_steps=3)
    second_suggestion = fake_llm.prompts()[1 + records[0].steps + 2]
    assert "What your earlier episodes showed" in second_suggestion
    assert all("Example episode" not in p and "Expert guidance" not in p for p in fake_llm.prompts())


def test_exe_config_builds_the_agent(fake_llm) -> None:
    config = OmegaConf.load(Path(__file__).parents[2] / "conf/agent/exe.yaml")
    agent = hydra.utils.instantiate(config)(llm=client_for(fake_llm), seed=3)
    assert isinstance(agent, EXEAgent) and agent.seed == 3
    assert agent.summary_max_tokens == config.summary_max_tokens


def test_exe_rejects_empty_memory(fake_llm) -> None:
    with pytest.raises(ValueError, match="memory_size must be >= 1"):
        EXEAgent(llm=client_for(fake_llm), memory_size=0)


def test_exe_resumes_from_saved_state(fake_llm) -> None:
    fake_llm.responder = scripted([])
    env = gym.make("TextGym-CartPole-v0", level=1, max_episode_steps=3)
    agent = EXEAgent(llm=client_for(fake_llm))
    asyncio.run(run_episode(env, agent, 0, 0, 3))
    saved = json.loads(json.dumps(agent.state()))  # as the runner stores it

    resumed = EXEAgent(llm=client_for(fake_llm))
    resumed.load_state(saved)
    assert resumed.state() == agent.state()
    before = len(fake_llm.requests)
    asyncio.run(run_episode(env, resumed, 0, 1, 3))
    resumed_prompt = fake_llm.prompts()[before]
    assert "SUMMARY-1" in resumed_prompt and "INSIGHT-1" in resumed_prompt
