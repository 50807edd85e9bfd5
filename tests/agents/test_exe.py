from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import gymnasium as gym
import pytest

from agents.exe import EXEAgent
from agents.llm.cache import ResponseCache
from agents.llm.client import Usage
from experiments.running.episodes import run_episode
from tests.agents.helpers import build_agent, client_for, joined, play_episodes
from tests.fake_llm_server import first_action_responder

# Each free-text request kind, told apart by a phrase of its template.
MARKERS = {"suggestion": "Suggest a plan", "summary": "Summarize this episode in two parts", "insight": "Distil"}
FEEDBACK_LINE = re.compile(r"^That action earned reward [-\d.]+\.\n")  # a step turn's report of the step before


def kind_of(request: dict[str, Any]) -> str:
    if request.get("response_format"):
        return "action"
    user = request["messages"][-1]["content"]
    return next(kind for kind, marker in MARKERS.items() if marker in user)


def scripted(json_summaries: bool = True):
    """Actions: the first valid one; suggestions and insights: 'SUGGESTION-1', 'INSIGHT-1', ...; summaries: a
    JSON object of knowledge values ('VALUE-1', ...) and an account, numbered per kind."""
    counters = {kind: itertools.count(1) for kind in MARKERS}

    def respond(request: dict[str, Any]) -> str:
        kind = kind_of(request)
        if kind == "action":
            return first_action_responder(request)
        number = next(counters[kind])
        if kind == "summary" and json_summaries:
            return f'{{"what_ends_the_episode": "VALUE-{number}", "push_effect": null}} ACCOUNT-{number}.'
        return f"{kind.upper()}-{number}"

    return respond


def test_exe_cycle_as_published(fake_llm) -> None:
    fake_llm.responder = scripted()
    agent = EXEAgent(llm=client_for(fake_llm))
    episodes = play_episodes(agent, fake_llm, level=3, episodes=3, max_episode_steps=4)

    # Order: suggestion, actions, then summary + insight between trials (none after the last).
    for k, episode in enumerate(episodes):
        expected = ["suggestion"] + ["action"] * episode.record.steps + (["summary", "insight"] if k < 2 else [])
        assert episode.purposes == expected and [kind_of(r) for r in episode.requests] == expected
    first, second, third = episodes

    suggestion = first.prompts("suggestion")[0]
    assert "You have not played this task yet" in suggestion and "Episode 1 of 3" in suggestion
    assert "highest return in the last episode (episode 3)" in suggestion and "2 more episode(s)" in suggestion
    assert "Name each one" in suggestion  # the knowledge the summary must check later
    # The actor: the suggestion in its system prompt, a bounded thought before the action, recent steps.
    actions = first.prompts("action")
    assert all("Plan for this episode: SUGGESTION-1" in p and "Insight" not in p for p in actions)
    schema = first.requests[1]["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["thought", "action"] and schema["properties"]["thought"]["maxLength"] == 300
    assert "That action earned reward" in actions[-1] and "Think step by step" in actions[0]
    last_action = [r for r in first.requests if kind_of(r) == "action"][-1]
    assert [m["role"] for m in last_action["messages"]][:4] == ["system", "user", "assistant", "user"]
    # The summary sees the suggestion that guided the episode and its whole trajectory.
    summary = first.prompts("summary")[0]
    assert "The plan that guided this episode:\nSUGGESTION-1" in summary
    assert all(f"{n}. " in summary for n in range(1, first.record.steps + 1)) and "Final state:" in summary
    assert "JSON object" in summary
    # Its reply's JSON values reach the insight and the next suggestion, parsed (not as raw JSON text).
    assert "what_ends_the_episode = VALUE-1" in first.prompts("insight")[0]
    second_suggestion = second.prompts("suggestion")[0]
    assert "what_ends_the_episode = VALUE-1" in second_suggestion and "ACCOUNT-1" in second_suggestion
    assert "push_effect = null" in second_suggestion and '{"what_ends' not in second_suggestion
    assert "Current insight: INSIGHT-1" in second_suggestion and "Episode 2 of 3" in second_suggestion
    assert all("Insight so far: INSIGHT-1" in p and "Plan for this episode: SUGGESTION-2" in p
               and "SUGGESTION-1" not in p for p in second.prompts("action"))
    insight = second.prompts("insight")[0]
    assert "VALUE-1" in insight and "VALUE-2" in insight and "Current insight: INSIGHT-1" in insight
    last = third.prompts("suggestion")[0]
    assert "VALUE-1" in last and "VALUE-2" in last and "this is the last episode, so exploit" in last

    # What each episode produced, for the results.
    assert first.notes["suggestion"] == "SUGGESTION-1" and first.notes["insight"] == "INSIGHT-1"
    assert first.notes["summary"]["knowledge"] == {"what_ends_the_episode": "VALUE-1", "push_effect": None}
    assert first.notes["summary"]["account"] == "ACCOUNT-1." and first.notes["summary"]["episode"] == 0
    assert third.notes == {"suggestion": "SUGGESTION-3", "summary": None, "insight": "INSIGHT-2"}
    json.dumps([e.notes for e in episodes])  # JSON-able

    # Budgets: the original's 256 tokens per distiller call, the action's own plus the thought's.
    budgets = {"action": 48 + 300 // 3, "suggestion": 256, "summary": 256, "insight": 256}
    assert all(r["max_tokens"] == budgets[kind_of(r)] for e in episodes for r in e.requests)
    # Token accounting: the agent's usage is what the server reported, and the records add up to it.
    assert agent.usage.calls == len(fake_llm.requests)
    assert sum((e.record.usage for e in episodes), start=Usage()).astuple()[:4] == agent.usage.astuple()[:4]


def test_exe_keeps_every_summary_within_its_budget(fake_llm) -> None:
    fake_llm.responder = scripted()
    episodes = play_episodes(EXEAgent(llm=client_for(fake_llm)), fake_llm, level=3, episodes=5, max_episode_steps=2)
    last = episodes[-1].prompts("suggestion")[0]
    assert all(f"VALUE-{k}" in last for k in range(1, 5))  # the first of five trials is not forgotten

    fake_llm.requests.clear()
    fake_llm.responder = scripted()
    episodes = play_episodes(EXEAgent(llm=client_for(fake_llm), memory_budget_tokens=40), fake_llm, level=3,
                             episodes=5, max_episode_steps=2)
    last = episodes[-1].prompts("suggestion")[0]
    assert "VALUE-4" in last and "VALUE-1" not in last  # newest kept first ...
    assert re.search(r"\(\d older one\(s\) left out to fit the budget\)", last)  # ... and the cut is said


def test_exe_summary_shows_head_and_tail_of_a_long_trajectory(fake_llm) -> None:
    fake_llm.responder = scripted()
    agent = EXEAgent(llm=client_for(fake_llm), trajectory_budget_tokens=150)
    first = play_episodes(agent, fake_llm, level=3, episodes=2, max_episode_steps=30)[0]
    summary = first.prompts("summary")[0]
    steps = first.record.steps
    left_out = re.search(r"\.\.\. (\d+) steps left out \(over the 150-token budget\) \.\.\.", summary)
    assert left_out and "1. The cart" in summary and f"{steps}. The cart" in summary
    shown = len(re.findall(r"^\d+\. ", summary, re.MULTILINE))
    assert shown + int(left_out.group(1)) == steps  # nothing cut silently


@pytest.mark.parametrize("reply", ["no json at all", '{"unfinished": ', "[1, 2] {{{ nested", ""])
def test_exe_keeps_unparsable_summaries_as_text(fake_llm, reply: str) -> None:
    def respond(request: dict[str, Any]) -> str:
        return reply if kind_of(request) == "summary" else scripted()(request)

    fake_llm.responder = respond
    first, second = play_episodes(EXEAgent(llm=client_for(fake_llm)), fake_llm, level=3, episodes=2)
    assert first.notes["summary"]["knowledge"] is None and first.notes["summary"]["text"] == reply.strip()
    if reply.strip():
        assert reply.strip() in second.prompts("suggestion")[0]


@pytest.mark.parametrize("level", [2, 4])
def test_exe_memory_starts_with_summaries_of_the_offline_trajectories(fake_llm, tmp_path, level: int) -> None:
    numbers = itertools.count(1)

    def respond(request: dict[str, Any]) -> str:
        user = request["messages"][-1]["content"]
        if "Summarize this episode in two parts" in user and "Example episode" in user:
            return f'{{"pole_limit": "OFFLINE-{next(numbers)}"}} Balanced.'
        return scripted()(request)

    fake_llm.responder = respond
    cache = ResponseCache(tmp_path / "cache.sqlite")
    agent = EXEAgent(llm=client_for(fake_llm, cache=cache))
    first, second = play_episodes(agent, fake_llm, level=level, episodes=2, fewshot_episodes=5)
    assert first.purposes[:7] == ["trajectory_summary"] * 5 + ["insight", "suggestion"]
    calls = [c for c in first.record.calls if c["purpose"] == "trajectory_summary"]
    assert all(c["request"]["temperature"] == 0 for c in calls)  # cacheable whatever llm.temperature says
    suggestion = first.prompts("suggestion")[0]
    for k in range(1, 6):
        assert f"Example episode {k} (" in suggestion and f"pole_limit = OFFLINE-{k}" in suggestion
    assert "Example episode 1 (" in joined(calls[0]["request"]["messages"])
    # EXE reads the trajectories as these summaries: the raw text is not in its other prompts.
    assert all("Step 1:" not in p for p in first.prompts("action") + first.prompts("suggestion"))
    # Offline knowledge comes with every episode; it is summarized once per stream.
    assert "trajectory_summary" not in second.purposes
    assert all(f"OFFLINE-{k}" in second.prompts("suggestion")[0] for k in range(1, 6))
    # A rerun replays the trajectory summaries from the response cache: no request reaches the server.
    before = len(fake_llm.requests)
    rerun = play_episodes(EXEAgent(llm=client_for(fake_llm, cache=cache)), fake_llm, level=level, episodes=1,
                          fewshot_episodes=5)[0]
    assert [c["from_cache"] for c in rerun.record.calls if c["purpose"] == "trajectory_summary"] == [True] * 5
    assert len(fake_llm.requests) == before  # everything else was the same requests at temperature 0 too


ABLATIONS = {  # preset -> (the purpose it removes, the prompt headings it removes)
    "exe_no_insight": ("insight", ["Insight so far", "Current insight"]),
    "exe_no_suggestion": ("suggestion", ["Plan for this episode", "The plan that guided"]),
    "exe_no_summary": ("summary", ["Summaries of earlier episodes", "Summarize this episode"]),
    "exe_no_history": (None, ["That action earned reward"]),
}


@pytest.mark.parametrize("preset", sorted(ABLATIONS))
def test_each_ablation_removes_exactly_its_calls_or_fields(fake_llm, preset: str) -> None:
    removed_purpose, removed_headings = ABLATIONS[preset]
    fake_llm.responder = scripted()
    full = play_episodes(build_agent("exe", fake_llm), fake_llm, level=3, episodes=3)
    fake_llm.responder = scripted()
    ablated = play_episodes(build_agent(preset, fake_llm), fake_llm, level=3, episodes=3)
    for full_episode, ablated_episode in zip(full, ablated, strict=True):
        assert ablated_episode.purposes == [p for p in full_episode.purposes if p != removed_purpose]
        assert all(h not in p for p in ablated_episode.prompts() for h in removed_headings)
    assert all(any(h in p for e in full for p in e.prompts()) for h in removed_headings)  # they were there
    if preset == "exe_no_history":  # everything else is the same request, and the actor lost only the steps
        pairs = [(f, a) for fe, ae in zip(full, ablated, strict=True) for f, a in zip(fe.requests, ae.requests,
                                                                                        strict=True)]
        for f, a in pairs:
            if kind_of(f) == "action":  # the system prompt and the step's turn, without the earlier turns
                step_turn = {"role": "user", "content": FEEDBACK_LINE.sub("", f["messages"][-1]["content"])}
                assert a["messages"] == [f["messages"][0], step_turn]
            else:
                assert f["messages"] == a["messages"]
    if preset == "exe_no_summary":  # the insight is distilled from the trajectory itself
        assert all("The latest episode:" in p for e in ablated[:2] for p in e.prompts("insight"))


def test_exe_ablation_presets_keep_their_own_names(fake_llm) -> None:
    names = {preset: build_agent(preset, fake_llm).name for preset in ["exe", *ABLATIONS]}
    assert names == {"exe": "exe", **{preset: preset for preset in ABLATIONS}}


def test_exe_level1_is_a_single_trial(fake_llm) -> None:
    fake_llm.responder = scripted()
    episodes = play_episodes(EXEAgent(llm=client_for(fake_llm)), fake_llm, level=1, episodes=2)
    assert [e.purposes.count("suggestion") for e in episodes] == [1, 1]
    assert all(p not in e.purposes for e in episodes for p in ("summary", "insight"))
    suggestions = [e.prompts("suggestion")[0] for e in episodes]
    assert suggestions[0] == suggestions[1] and "Episode 1 of 1" in suggestions[0]
    assert "this is it: exploit what you know" in suggestions[0]


def test_exe_think_can_be_switched_off(fake_llm) -> None:
    first = play_episodes(EXEAgent(llm=client_for(fake_llm), think=False), fake_llm, level=1, episodes=1)[0]
    schema = first.requests[1]["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["action"] and "Think step by step" not in first.prompts("action")[0]


def test_exe_rejects_bad_budgets(fake_llm) -> None:
    with pytest.raises(ValueError, match="memory_budget_tokens must be >= 1"):
        EXEAgent(llm=client_for(fake_llm), memory_budget_tokens=0)
    with pytest.raises(ValueError, match="thought_chars must be >= 1"):
        EXEAgent(llm=client_for(fake_llm), thought_chars=0)


def test_exe_resumes_from_saved_state(fake_llm) -> None:
    fake_llm.responder = scripted()
    env = gym.make("TextGym-CartPole-v0", level=3, max_episode_steps=3)
    agent = EXEAgent(llm=client_for(fake_llm))
    asyncio.run(run_episode(env, agent, 0, 0, 3))
    saved = json.loads(json.dumps(agent.state()))  # as the runner stores it

    resumed = EXEAgent(llm=client_for(fake_llm))
    resumed.load_state(saved)
    assert resumed.state() == agent.state()
    before = len(fake_llm.requests)
    asyncio.run(run_episode(env, resumed, 0, 1, 3))
    resumed_prompt = fake_llm.prompts()[before]
    assert "VALUE-1" in resumed_prompt and "INSIGHT-1" in resumed_prompt
