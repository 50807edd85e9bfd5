"""Record every request the library's language agents send in a few short episodes, for prompt-parity checks.

Each agent plays short episodes of a few envs and levels against the scripted fake server (some replies
unusable, so the history shows fallbacks too); every request's messages, purpose and options are kept in order.
Run it on two checkouts with the same env templates and compare the files: equal files mean byte-identical prompts.

    python -m tests.agents.prompt_capture prompts-before.json
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from itertools import count
from typing import Any

import gymnasium as gym

import textgym  # noqa: F401
from agents.llm.client import LLMClient
from experiments.running.episodes import run_episode
from tests.fake_llm_server import FakeLLMServer, first_action_responder

AGENTS = {
    "naive": ("agents.naive.NaiveAgent", {}),
    "naive_block": ("agents.naive.NaiveAgent", {"history_window": 2, "history_trim": "block"}),
    "naive_no_history": ("agents.naive.NaiveAgent", {"history_window": 0}),
    "cot": ("agents.cot.CoTAgent", {"thought_chars": 120}),
    "self_consistency": ("agents.self_consistency.SelfConsistencyAgent", {}),
    "self_ask": ("agents.self_ask.SelfAskAgent", {}),
    "spp": ("agents.spp.SPPAgent", {}),
    "reflexion": ("agents.reflexion.ReflexionAgent", {}),
    "pal": ("agents.pal.PALAgent", {}),
    "exe": ("agents.exe.EXEAgent", {}),
}
"""Short name -> (class, options)."""
CASES = [("TextGym-CartPole-v0", 1, 2), ("TextGym-CartPole-v0", 3, 2), ("TextGym-Pendulum-v0", 5, 1),
         ("TextGym-FrozenLake-v0", 2, 1), ("TextGym-Taxi-v0", 4, 1)]
"""(env id, level, episodes) each agent plays; 5 steps an episode."""


def _responder() -> Any:
    calls = count()

    def respond(request: dict[str, Any]) -> str:
        if next(calls) % 4 == 3:  # every fourth reply names no action
            return "I am not sure what to do here."
        if "json_schema" not in str(request.get("response_format")) and "Action" in str(request["messages"][-1]):
            return "# Action: 1"  # PAL's program tail
        return first_action_responder(request)

    return respond


def capture() -> dict[str, list[dict[str, Any]]]:
    """``{"<agent> <env> L<level>": [request, ...]}``: each request's messages, purpose and sampling options."""
    captured: dict[str, list[dict[str, Any]]] = {}
    for name, (target, options) in AGENTS.items():
        module, _, class_name = target.rpartition(".")
        for env_id, level, episodes in CASES:
            with FakeLLMServer(_responder()) as server:
                llm = LLMClient(model="scripted", base_url=server.base_url, api_key_env=None)
                agent = getattr(importlib.import_module(module), class_name)(llm=llm, seed=0, **options)
                env = gym.make(env_id, level=level, max_episode_steps=5)

                async def stream(env: gym.Env = env, agent: Any = agent, episodes: int = episodes) -> None:
                    for k in range(episodes):
                        await run_episode(env, agent, 0, k, episodes)

                asyncio.run(stream())
                captured[f"{name} {env_id} L{level}"] = [
                    {key: request.get(key) for key in ("messages", "n", "max_tokens", "temperature",
                                                         "response_format")}
                    for request in server.requests]
    return captured


if __name__ == "__main__":
    with open(sys.argv[1], "w") as handle:
        json.dump(capture(), handle, indent=1, sort_keys=True)
