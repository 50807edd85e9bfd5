from __future__ import annotations

import importlib.util

import pytest

from agents.naive import NaiveAgent
from agents.random import RandomAgent
from tests.agents.helpers import action_prompts, client_for, play


@pytest.mark.parametrize("env_id", ["TextGym-CartPole-v0", "TextGym-Pendulum-v0"])
def test_naive_acts_with_level_knowledge(fake_llm, env_id: str) -> None:
    agent = NaiveAgent(llm=client_for(fake_llm))
    records = play(agent, env_id, level=5, episodes=1)
    assert records[0].steps > 0 and records[0].invalid_actions == 0
    prompt = fake_llm.prompts()[0]
    assert "Expert guidance" in prompt and "Example episode" not in prompt
    assert fake_llm.requests[0]["response_format"]["type"] == "json_schema"
    assert len(fake_llm.requests) == records[0].steps
    assert records[0].usage.prompt_tokens == sum(
        sum(len(m["content"]) for m in request["messages"]) // 4 for request in fake_llm.requests)
    actions = {r["action_text"] for r in records[0].step_records}
    assert len(actions) == 1  # the scripted server always answers the first valid action


def test_naive_l3_remembers_earlier_episodes(fake_llm) -> None:
    agent = NaiveAgent(llm=client_for(fake_llm))
    records = play(agent, "TextGym-CartPole-v0", level=3, episodes=2)
    first_prompt_ep2 = action_prompts(fake_llm)[records[0].steps]
    assert "What your earlier episodes showed" in first_prompt_ep2 and "Trial 1 (return" in first_prompt_ep2
    assert "What your earlier episodes showed" not in fake_llm.prompts()[0]


def test_naive_l1_has_no_memory(fake_llm) -> None:
    agent = NaiveAgent(llm=client_for(fake_llm))
    records = play(agent, "TextGym-CartPole-v0", level=1, episodes=2)
    assert "earlier episodes" not in fake_llm.prompts()[records[0].steps]
    assert len(fake_llm.requests) == records[0].steps + records[1].steps  # no trial summary at L1


def test_unparsable_reply_is_counted_not_raised(fake_llm) -> None:
    fake_llm.responder = lambda request: "I have no idea what to do"
    agent = NaiveAgent(llm=client_for(fake_llm, structured_output=False))
    records = play(agent, "TextGym-CartPole-v0", episodes=1)
    assert records[0].invalid_replies == records[0].steps > 0
    assert records[0].invalid_actions == records[0].steps


NEEDS_MUJOCO = pytest.mark.skipif(importlib.util.find_spec("mujoco") is None, reason="needs textgym[mujoco]")


@pytest.mark.parametrize("env_id", ["TextGym-CartPole-v0", "TextGym-Pendulum-v0",
                                    pytest.param("TextGym-Ant-v0", marks=NEEDS_MUJOCO),  # vector actions
                                    pytest.param("TextGym-Reacher-v0", marks=NEEDS_MUJOCO)])
def test_random_agent_plays_valid_seeded_actions(env_id: str) -> None:
    first = play(RandomAgent(seed=1), env_id, episodes=1, max_episode_steps=20)
    second = play(RandomAgent(seed=1), env_id, episodes=1, max_episode_steps=20)
    assert first[0].invalid_actions == 0
    assert [r["action_text"] for r in first[0].step_records] == [r["action_text"] for r in second[0].step_records]


@pytest.mark.parametrize("trim", ["sliding", "block"])
def test_history_is_a_conversation_of_at_least_the_window(fake_llm, trim: str) -> None:
    agent = NaiveAgent(llm=client_for(fake_llm), history_window=3, history_trim=trim)
    fake_llm.responder = lambda request: '{"action": "push right"}' if len(fake_llm.requests) % 2 else \
        '{"action": "push left"}'  # alternate, so the pole stays up for a while
    record = play(agent, "TextGym-CartPole-v0", level=1, episodes=1, max_episode_steps=9)[0]
    conversations = [request["messages"] for request in fake_llm.requests]
    shown = [sum(m["role"] == "assistant" for m in messages) for messages in conversations]
    expected = {"sliding": [min(k, 3) for k in range(record.steps)],
                "block": [k if k < 3 else k - (k - 3) // 3 * 3 for k in range(record.steps)]}[trim]
    assert record.steps == 9 and shown == expected
    # Each request's last turn is its step's text; an earlier step shows up in later
    # requests as that same text, word for word, and the action that was played.
    step_texts = [messages[-1]["content"] for messages in conversations]
    # The request, the same every step, closes the system prompt (read once by a prompt cache), not each turn.
    assert all(messages[0]["content"].endswith("Choose the next action. Reply as JSON: {\"action\": ...}.")
               and messages[0] == conversations[0][0] for messages in conversations)
    assert not any("Choose the next action" in m["content"] for messages in conversations for m in messages[1:])
    actions = [step["action_text"] for step in record.step_records]
    for k, messages in enumerate(conversations):
        first = k - shown[k]
        assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * shown[k] + ["user"]
        assert [m["content"] for m in messages[1:-1:2]] == step_texts[first:k]
        assert [m["content"] for m in messages[2:-1:2]] == [f'{{"action": "{a}"}}' for a in actions[first:k]]
        assert step_texts[k].startswith("That action earned reward 1.00.\nCurrent state: " if k else "Current state: ")
    if trim == "block":  # the shown history starts at the same step for three steps running
        firsts = [k - n for k, n in enumerate(shown)]
        assert firsts[3] == firsts[4] == firsts[5] == 0 and firsts[6] == firsts[7] == firsts[8] == 3


def test_history_trim_is_checked(fake_llm) -> None:
    with pytest.raises(ValueError, match="history_trim must be 'sliding' or 'block'"):
        NaiveAgent(llm=client_for(fake_llm), history_trim="chunky")


def test_a_system_prompt_kept_from_an_earlier_episode_is_the_one_a_new_agent_would_render(fake_llm) -> None:
    """The agent keeps its last system prompt across episodes; another env or level renders a new one."""
    agent = NaiveAgent(llm=client_for(fake_llm))
    plays = [("TextGym-CartPole-v0", 5), ("TextGym-CartPole-v0", 5), ("TextGym-CartPole-v0", 1),
             ("TextGym-MountainCar-v0", 1)]
    kept = []
    for env_id, level in plays:
        fake_llm.requests.clear()
        play(agent, env_id, level=level, episodes=1)
        kept.append(fake_llm.requests[0]["messages"][0]["content"])
    fresh = []
    for env_id, level in plays:
        fake_llm.requests.clear()
        play(NaiveAgent(llm=client_for(fake_llm)), env_id, level=level, episodes=1)
        fresh.append(fake_llm.requests[0]["messages"][0]["content"])
    assert kept == fresh and kept[0] == kept[1] and len(set(kept)) == 3
