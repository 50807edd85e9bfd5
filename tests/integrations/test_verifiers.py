"""verifiers runs TextGym chat envs with its own MultiTurnEnv loop: evaluate_sync against the scripted server on
127.0.0.1 gives the returns textgym-eval gives with the same replies, and the rubric reads the per-turn rewards."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from verifiers.types import ClientConfig

from experiments.records.results import iter_jsonl
from experiments.run_agent import evaluate
from tests.experiments.conftest import compose_config
from tests.fake_llm_server import FakeLLMServer
from textgym.integrations.verifiers import load_environment

STEP_CAP = 20


def follow_the_cart(request: dict[str, Any]) -> str:
    """Push the way the cart already moves (so episodes end at seed-dependent steps); read from the last state."""
    last_user = next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")
    moving = re.findall(r"moving (left|right)", last_user)
    return json.dumps({"action": f"push {moving[-1] if moving else 'left'}"})


@pytest.fixture
def scripted_llm(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEXTGYM_TEST_KEY", "sk-test")
    with FakeLLMServer(follow_the_cart) as server:
        yield server


def test_evaluate_sync_matches_textgym_eval(scripted_llm: FakeLLMServer, tmp_path: Path) -> None:
    # textgym-eval resets stream s's first episode with seed s * 1000.
    env = load_environment(env="cartpole", level=1, seeds=[0, 1000, 2000], env_kwargs={"max_episode_steps": STEP_CAP})
    results = env.evaluate_sync(client=ClientConfig(api_base_url=scripted_llm.base_url, api_key_var="TEXTGYM_TEST_KEY"),
                                model="scripted", num_examples=3, rollouts_per_example=1,
                                state_columns=["trajectory", "step_rewards"])
    outputs = sorted(results["outputs"], key=lambda output: output["info"]["seed"])
    assert [output.get("error") for output in outputs] == [None] * 3
    verifiers_returns = [output["reward"] for output in outputs]

    overrides = ["env=cartpole", "agent=naive", "level=1", "seeds=[0,1,2]", f"max_steps={STEP_CAP}", "llm=server",
                 f"llm.base_url={scripted_llm.base_url}", "llm.model=scripted", "llm.cache=off", "logger=none",
                 "progress=false"]
    evaluate(compose_config("eval", overrides), tmp_path / "run")
    rows = sorted(iter_jsonl(tmp_path / "run" / "episodes.jsonl"), key=lambda row: row["seed"])
    assert verifiers_returns == [row["return"] for row in rows]
    assert len(set(verifiers_returns)) > 1  # seeds differ, so agreeing means something

    for output in outputs:  # per-turn rewards: one per model turn, summing to the reward
        step_rewards = [step["reward"] for step in output["trajectory"]]
        assert step_rewards == output["step_rewards"] and sum(step_rewards) == output["reward"]
        assert len(step_rewards) == output["metrics"]["num_turns"]
        assert output["metrics"]["invalid_actions"] == 0


def test_rubric_counts_invalid_replies_and_their_penalty(scripted_llm: FakeLLMServer) -> None:
    scripted_llm.responder = lambda request: "I would rather not say."
    env = load_environment(env="cartpole", level=1, seeds=[0], format_penalty=0.5, invalid_action="terminate")
    results = env.evaluate_sync(client=ClientConfig(api_base_url=scripted_llm.base_url, api_key_var="TEXTGYM_TEST_KEY"),
                                model="scripted", num_examples=1, rollouts_per_example=2,
                                state_columns=["trajectory"])
    for output in results["outputs"]:
        assert output["reward"] == -0.5 and output["metrics"]["invalid_actions"] == 1
        assert output["trajectory"][-1]["reward"] == -0.5


def test_level_3_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="not a training level"):
        load_environment(env="cartpole", level=3)


def test_history_zero_sends_one_self_contained_prompt_per_step(scripted_llm: FakeLLMServer) -> None:
    client = ClientConfig(api_base_url=scripted_llm.base_url, api_key_var="TEXTGYM_TEST_KEY")
    returns = {}
    for history in ("all", 0):
        env = load_environment(env="cartpole", level=1, seeds=[0], history=history,
                               env_kwargs={"max_episode_steps": STEP_CAP})
        first = len(scripted_llm.requests)
        returns[history] = env.evaluate_sync(client=client, model="scripted", num_examples=1)["outputs"][0]["reward"]
        sizes = [len(request["messages"]) for request in scripted_llm.requests[first:]]
        assert len(sizes) > 2 and (set(sizes) == {2} if history == 0 else sizes == sorted(set(sizes)))
    assert returns["all"] == returns[0]
