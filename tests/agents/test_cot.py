from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
import pytest
from omegaconf import OmegaConf

from agents.cot import CoTAgent
from tests.agents.helpers import action_prompts, client_for, play

ENV_IDS = ["TextGym-CartPole-v0", "TextGym-Pendulum-v0"]


def last_choice_responder(request: dict[str, Any]) -> str:
    """A thought, then the *last* valid action (or -1.25), so a played action visibly comes from the reply."""
    schema = request["response_format"]["json_schema"]["schema"]
    action = schema["properties"]["action"]
    return json.dumps({"thought": "the angle grows, so correct it", "action": action["enum"][-1] if "enum" in action
                       else -1.25})


def reported_usage(server) -> tuple[int, int]:
    """Prompt and completion tokens the fake server reported: characters // 4 per request."""
    prompt = sum(sum(len(m["content"]) for m in r["messages"]) // 4 for r in server.requests)
    completion = sum(sum(len(server.responder({**r, "choice_index": i})) for i in range(r["n"])) // 4
                     for r in server.requests)
    return prompt, completion


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_cot_thinks_then_acts_with_level_knowledge(fake_llm, env_id: str) -> None:
    fake_llm.responder = last_choice_responder
    agent = CoTAgent(llm=client_for(fake_llm), thought_chars=150)
    record = play(agent, env_id, level=5, episodes=1)[0]
    assert record.steps > 0 and record.invalid_replies == record.invalid_actions == 0
    assert len(fake_llm.requests) == record.usage.calls == record.steps
    prompt = fake_llm.prompts()[0]
    assert "Expert guidance" in prompt and "Example episode" not in prompt
    assert "Think step by step" in prompt and "at most 150 characters" in prompt
    schema = fake_llm.requests[0]["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["thought", "action"]  # reasoning is decoded first
    assert schema["properties"]["thought"]["maxLength"] == 150
    assert fake_llm.requests[0]["max_tokens"] == agent.action_max_tokens + 150 // 3
    expected = "push right" if "CartPole" in env_id else "-1.25"
    assert {step["action_text"] for step in record.step_records} == {expected}
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == reported_usage(fake_llm)


def test_cot_level3_remembers_its_own_episodes(fake_llm) -> None:
    records = play(CoTAgent(llm=client_for(fake_llm)), "TextGym-CartPole-v0", level=3, episodes=2)
    prompts = action_prompts(fake_llm)
    assert "What your earlier episodes showed" in prompts[records[0].steps]
    assert all("earlier episodes" not in p for p in prompts[:records[0].steps])
    assert all("Example episode" not in p and "Expert guidance" not in p for p in prompts)


def test_cot_unparsable_reply_falls_back(fake_llm) -> None:
    fake_llm.responder = lambda request: "I am not sure"
    record = play(CoTAgent(llm=client_for(fake_llm, structured_output=False)), "TextGym-CartPole-v0", episodes=1)[0]
    assert record.invalid_replies == record.invalid_actions == record.steps > 0


def test_cot_config_builds_the_agent(fake_llm) -> None:
    config = OmegaConf.load(Path(__file__).parents[2] / "conf/agent/cot.yaml")
    agent = hydra.utils.instantiate(config)(llm=client_for(fake_llm), seed=3)
    assert isinstance(agent, CoTAgent) and agent.seed == 3 and agent.thought_chars == config.thought_chars


def test_cot_rejects_empty_thought(fake_llm) -> None:
    with pytest.raises(ValueError, match="thought_chars must be >= 1"):
        CoTAgent(llm=client_for(fake_llm), thought_chars=0)
