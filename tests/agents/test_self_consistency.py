from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
import pytest
from omegaconf import OmegaConf

from agents.self_consistency import SelfConsistencyAgent, vote
from tests.agents.helpers import client_for, play

# Per choice index; the first sample is always outvoted. "jump" and None (no JSON) are unusable.
DISCRETE_VOTES = ["push left", "push right", "push right", "jump", None]
CONTINUOUS_VOTES = [1.5, -0.3, 0.2, 1.9, None]  # median of the valid four: (0.2 + 1.5) / 2
# Reacher's two actuators, each voted on alone: the medians 0.30 and 0.40 come from different samples, so the
# consensus is no sample's own text. 5.0 is clipped to 1.0 before the vote; a sample without second_hinge and one
# without JSON are unusable.
VECTOR_VOTES = [{"first_hinge": 0.9, "second_hinge": -0.2}, {"first_hinge": -0.1, "second_hinge": 0.4},
                {"first_hinge": 0.3, "second_hinge": 5.0}, {"first_hinge": 0.2}, None]


def scripted(votes: list[Any]):
    def responder(request: dict[str, Any]) -> str:
        action = votes[request["choice_index"]]
        return "no idea" if action is None else json.dumps({"thought": "weighing it up", "action": action})
    return responder


def reported_usage(server) -> tuple[int, int]:
    """Prompt and completion tokens the fake server reported: characters // 4 per request."""
    prompt = sum(sum(len(m["content"]) for m in r["messages"]) // 4 for r in server.requests)
    completion = sum(sum(len(server.responder({**r, "choice_index": i})) for i in range(r["n"])) // 4
                     for r in server.requests)
    return prompt, completion


@pytest.mark.parametrize(("env_id", "votes", "expected", "unusable"), [
    ("TextGym-CartPole-v0", DISCRETE_VOTES, "push right", 2),
    ("TextGym-Pendulum-v0", CONTINUOUS_VOTES, "0.85", 1),
    ("TextGym-Reacher-v0", VECTOR_VOTES, '{"first_hinge": 0.30, "second_hinge": 0.40}', 2),
], ids=["TextGym-CartPole-v0", "TextGym-Pendulum-v0", "TextGym-Reacher-v0"])
def test_self_consistency_plays_the_consensus(fake_llm, env_id: str, votes: list[Any], expected: str,
                                              unusable: int) -> None:
    fake_llm.responder = scripted(votes)
    agent = SelfConsistencyAgent(llm=client_for(fake_llm))
    record = play(agent, env_id, level=5, episodes=1)[0]
    assert {step["action_text"] for step in record.step_records} == {expected}
    assert record.invalid_actions == 0
    if env_id == "TextGym-Reacher-v0":  # the env plays the voted numbers
        assert all(step["action"] == pytest.approx([0.3, 0.4]) for step in record.step_records)
    assert record.invalid_replies == unusable * record.steps  # counted, not voted
    assert len(fake_llm.requests) == record.usage.calls == record.steps  # all samples in one request
    request = fake_llm.requests[0]
    assert request["n"] == 5 and request["temperature"] == 0.7
    assert "thought" in request["response_format"]["json_schema"]["schema"]["properties"]
    prompt = fake_llm.prompts()[0]
    assert "Expert guidance" in prompt and "Example episode" not in prompt
    assert "Think step by step" in prompt
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == reported_usage(fake_llm)


def test_self_consistency_tie_goes_to_first_seen(fake_llm) -> None:
    fake_llm.responder = scripted(["push right", "push left"])
    record = play(SelfConsistencyAgent(llm=client_for(fake_llm), n=2), "TextGym-CartPole-v0", episodes=1)[0]
    assert {step["action_text"] for step in record.step_records} == {"push right"}


def test_self_consistency_all_invalid_falls_back(fake_llm) -> None:
    fake_llm.responder = lambda request: "no idea"
    agent = SelfConsistencyAgent(llm=client_for(fake_llm, structured_output=False), n=3)
    record = play(agent, "TextGym-CartPole-v0", episodes=1)[0]
    assert record.invalid_replies == 3 * record.steps > 0
    assert record.invalid_actions == record.steps
    assert {step["action_text"] for step in record.step_records} == {agent.fallback_action()}


def test_self_consistency_with_a_server_that_ignores_n(fake_llm) -> None:
    # The client asks again (with new seeds) until it has n samples, so the vote still sees all of them.
    fake_llm.ignore_n = True
    fake_llm.responder = scripted(["push right"])
    record = play(SelfConsistencyAgent(llm=client_for(fake_llm), n=3), "TextGym-CartPole-v0", episodes=1)[0]
    assert {step["action_text"] for step in record.step_records} == {"push right"}
    assert record.invalid_replies == 0 and record.steps > 1
    assert len(fake_llm.requests) == 3 * record.steps == record.usage.calls
    assert all(len(step["replies"]) == 3 for step in record.step_records)


def test_vote_rules() -> None:
    discrete = {"type": "discrete", "names": ["a", "b", "c"]}
    assert vote(["c", "a", "a", "c", "b"], discrete) == "c"
    assert vote(["0.10", "0.30"], {"type": "continuous", "low": -1, "high": 1, "digits": 2}) == "0.20"
    vector = {"type": "vector", "names": ["a", "b"], "low": [-1, -1], "high": [1, 1], "digits": 2}
    assert vote(['{"a": 0.10, "b": 1.00}', '{"a": 0.30, "b": -1.00}'], vector) == '{"a": 0.20, "b": 0.00}'
    assert vote(['{"a": -0.50, "b": 0.25}'], vector) == '{"a": -0.50, "b": 0.25}'  # one sample is its own median
    with pytest.raises(ValueError):
        vote([], discrete)


def test_self_consistency_config_builds_the_agent(fake_llm) -> None:
    config = OmegaConf.load(Path(__file__).parents[2] / "conf/agent/self_consistency.yaml")
    agent = hydra.utils.instantiate(config)(llm=client_for(fake_llm), seed=3)
    assert isinstance(agent, SelfConsistencyAgent) and agent.seed == 3
    assert (agent.n, agent.temperature) == (config.n, config.temperature) == (5, 0.7)
