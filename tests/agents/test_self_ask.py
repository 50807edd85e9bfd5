from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytest
from omegaconf import OmegaConf

from agents.self_ask import SelfAskAgent
from tests.agents.helpers import action_prompts, client_for, play
from tests.fake_llm_server import first_action_responder

QUESTIONS = "Follow up: Which way is it drifting?\nIntermediate answer: To the right, slowly."


def questions_then_action(request: dict[str, Any]) -> str:
    return first_action_responder(request) if "response_format" in request else QUESTIONS


def reported_usage(server) -> tuple[int, int]:
    """Prompt and completion tokens the fake server reported: characters // 4 per request."""
    prompt = sum(sum(len(m["content"]) for m in r["messages"]) // 4 for r in server.requests)
    completion = sum(sum(len(server.responder({**r, "choice_index": i})) for i in range(r["n"])) // 4
                     for r in server.requests)
    return prompt, completion


@pytest.mark.parametrize("env_id", ["TextGym-CartPole-v0", "TextGym-Pendulum-v0"])
def test_self_ask_acts_on_its_own_answers(fake_llm, env_id: str) -> None:
    fake_llm.responder = questions_then_action
    agent = SelfAskAgent(llm=client_for(fake_llm), max_questions=3, questions_max_tokens=64)
    record = play(agent, env_id, level=5, episodes=1)[0]
    assert record.steps > 0 and record.invalid_replies == record.invalid_actions == 0
    assert len(fake_llm.requests) == record.usage.calls == 2 * record.steps
    questions, actions = fake_llm.requests[0::2], fake_llm.requests[1::2]
    assert all("response_format" not in r and r["max_tokens"] == 64 for r in questions)
    assert all(r["response_format"]["type"] == "json_schema" for r in actions)
    prompts = fake_llm.prompts()
    assert "up to 3 short follow-up questions" in prompts[0] and QUESTIONS not in prompts[0]
    assert all(QUESTIONS in p for p in prompts[1::2])
    # Both requests of a step carry the level's knowledge (it lives in the system prompt).
    assert all("Expert guidance" in p and "Example episode" not in p for p in prompts)
    expected = "push left" if "CartPole" in env_id else "0.50"
    assert {step["action_text"] for step in record.step_records} == {expected}
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == reported_usage(fake_llm)


def test_self_ask_empty_answers_still_act(fake_llm) -> None:
    fake_llm.responder = lambda r: first_action_responder(r) if "response_format" in r else "   "
    record = play(SelfAskAgent(llm=client_for(fake_llm)), "TextGym-CartPole-v0", episodes=1)[0]
    assert record.invalid_actions == 0
    assert "(none)" in fake_llm.prompts()[1]


def test_self_ask_level3_remembers_its_own_episodes(fake_llm) -> None:
    records = play(SelfAskAgent(llm=client_for(fake_llm)), "TextGym-CartPole-v0", level=3, episodes=2)
    prompts = action_prompts(fake_llm)
    first_of_episode_2 = records[0].steps
    assert "What your earlier episodes showed" in prompts[first_of_episode_2]
    assert all("earlier episodes" not in p for p in prompts[:first_of_episode_2])


def test_self_ask_config_builds_the_agent(fake_llm) -> None:
    config = OmegaConf.load(Path(__file__).parents[2] / "conf/agent/self_ask.yaml")
    agent = hydra.utils.instantiate(config)(llm=client_for(fake_llm), seed=3)
    assert isinstance(agent, SelfAskAgent) and agent.seed == 3
    assert (agent.max_questions, agent.questions_max_tokens) == (config.max_questions, config.questions_max_tokens)


def test_self_ask_rejects_no_questions(fake_llm) -> None:
    with pytest.raises(ValueError, match="max_questions >= 1"):
        SelfAskAgent(llm=client_for(fake_llm), max_questions=0)
