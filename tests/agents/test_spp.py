from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
import pytest
from omegaconf import OmegaConf

from agents.spp import SPPAgent
from tests.agents.helpers import client_for, play

DISCUSSION = "Physicist: it drifts right. Strategist: counter it now. Critic: agreed, but gently."


def team_decides(request: dict[str, Any]) -> str:
    """The discussion, then the last valid action (or -0.4)."""
    action = request["response_format"]["json_schema"]["schema"]["properties"]["action"]
    return json.dumps({"thought": DISCUSSION, "action": action["enum"][-1] if "enum" in action else -0.4})


def reported_usage(server) -> tuple[int, int]:
    """Prompt and completion tokens the fake server reported: characters // 4 per request."""
    prompt = sum(sum(len(m["content"]) for m in r["messages"]) // 4 for r in server.requests)
    completion = sum(sum(len(server.responder({**r, "choice_index": i})) for i in range(r["n"])) // 4
                     for r in server.requests)
    return prompt, completion


@pytest.mark.parametrize("env_id", ["TextGym-CartPole-v0", "TextGym-MountainCarContinuous-v0"])
def test_spp_personas_discuss_then_act(fake_llm, env_id: str) -> None:
    fake_llm.responder = team_decides
    agent = SPPAgent(llm=client_for(fake_llm))
    record = play(agent, env_id, level=5, episodes=1)[0]
    assert record.steps > 0 and record.invalid_replies == record.invalid_actions == 0
    assert len(fake_llm.requests) == record.usage.calls == record.steps  # one request per step
    prompt = fake_llm.prompts()[0]
    assert "Expert guidance" in prompt and "Example episode" not in prompt
    assert "team of experts" in prompt and all(p in prompt for p in ("Physicist:", "Strategist:", "Critic:"))
    schema = fake_llm.requests[0]["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["thought", "action"]
    assert schema["properties"]["thought"]["maxLength"] == agent.thought_chars == 1200
    expected = "push right" if "CartPole" in env_id else "-0.40"
    assert {step["action_text"] for step in record.step_records} == {expected}
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == reported_usage(fake_llm)


def test_spp_level2_shows_random_examples_only(fake_llm) -> None:
    play(SPPAgent(llm=client_for(fake_llm)), "TextGym-CartPole-v0", level=2, episodes=1)
    prompt = fake_llm.prompts()[0]
    assert "Example episode 1 (random policy)" in prompt and "Expert guidance" not in prompt


def test_spp_config_builds_the_agent(fake_llm) -> None:
    config = OmegaConf.load(Path(__file__).parents[2] / "conf/agent/spp.yaml")
    agent = hydra.utils.instantiate(config)(llm=client_for(fake_llm), seed=3)
    assert isinstance(agent, SPPAgent) and agent.seed == 3 and agent.thought_chars == config.thought_chars
