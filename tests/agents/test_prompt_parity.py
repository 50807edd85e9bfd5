"""The agents build their prompts on the env layer (textgym.chat): a plain agent's requests are ChatEnv's prompts.

The byte-for-byte parity of every library agent's prompts across the move of the briefing and the episode turns
into textgym/chat.py was checked with ``tests/agents/prompt_capture.py`` on two checkouts (see its docstring).
"""

from __future__ import annotations

import pytest

from agents.naive import NaiveAgent
from experiments.running.episodes import episode_seed
from tests.agents.helpers import client_for, play
from tests.fake_llm_server import first_action_responder
from textgym.chat import ChatEnv


@pytest.mark.parametrize(("env_id", "level"), [("TextGym-CartPole-v0", 1), ("TextGym-CartPole-v0", 5),
                                               ("TextGym-FrozenLake-v0", 2), ("TextGym-Taxi-v0", 4)])
def test_naive_agent_requests_are_chat_env_prompts(fake_llm, env_id: str, level: int) -> None:
    calls = iter(range(1000))
    # Every third reply names no action, so the turns after a fallback are compared too.
    fake_llm.responder = lambda request: "no idea" if next(calls) % 3 == 2 else first_action_responder(request)
    agent = NaiveAgent(llm=client_for(fake_llm, structured_output=True), history_window=3)
    record = play(agent, env_id, level=level, episodes=1, max_episode_steps=8)[0]
    requests = [request["messages"] for request in fake_llm.requests]
    assert record.invalid_actions > 0 and len(requests) == record.steps > 4  # the window of 3 moved

    env = ChatEnv(env_id, level=level, history=3, max_episode_steps=8)
    messages, _ = env.reset(seed=episode_seed(0, 0))
    for step, (request, played) in enumerate(zip(requests, record.step_records, strict=True)):
        assert messages == request, f"request {step}"
        # The reply the agent's history shows for the step (the action as JSON; null when none was valid).
        action = "null" if played["invalid_action"] else f'"{played["action_text"]}"'
        _, _, terminated, truncated, info = env.step(f'{{"action": {action}}}')
        assert (info["invalid_action"], info["env_action"]) == (played["invalid_action"], played["action"])
        messages = env.messages
    assert terminated or truncated
