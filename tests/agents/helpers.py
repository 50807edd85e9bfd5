"""Play whole episodes of an agent against a text env, for the agent tests."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import textgym  # noqa: F401
from agents.base import Agent
from agents.llm.cache import ResponseCache
from agents.llm.client import LLMClient, Sampling
from agents.llm.transport import HTTPTransport
from experiments.config import agent_class, register_resolvers
from experiments.running.episodes import EpisodeRecord, run_episode
from textgym.wrapper import state_step_limit

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def client_for(server, cache: ResponseCache | None = None, structured_output: bool = True) -> LLMClient:
    return LLMClient("scripted", HTTPTransport(server.base_url, api_key_env=None), cache=cache,
                     sampling=Sampling(structured_output=structured_output))


def make_env(env_id: str, level: int, max_episode_steps: int, **env_kwargs: Any) -> gym.Env:
    """The env as the runners build it: the text states the step limit gymnasium enforces."""
    return state_step_limit(gym.make(env_id, level=level, max_episode_steps=max_episode_steps, **env_kwargs))


def play(agent: Agent, env_id: str, level: int = 1, episodes: int = 2, seed: int = 0,
         max_episode_steps: int = 6, **env_kwargs: Any) -> list[EpisodeRecord]:
    env = make_env(env_id, level, max_episode_steps, **env_kwargs)

    async def stream() -> list[EpisodeRecord]:
        return [await run_episode(env, agent, seed, k, episodes) for k in range(episodes)]

    return asyncio.run(stream())


@dataclass
class Episode:
    """One played episode: its record, the requests the server got during it, the agent's notes after it."""

    record: EpisodeRecord
    requests: list[dict[str, Any]]
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def purposes(self) -> list[str]:
        return [call["purpose"] for call in self.record.calls]

    def prompts(self, purpose: str | None = None) -> list[str]:
        """Joined messages of this episode's requests (of one purpose), in order."""
        return [joined(call["request"]["messages"]) for call in self.record.calls
                if purpose is None or call["purpose"] == purpose]


def play_episodes(agent: Agent, server, env_id: str = "TextGym-CartPole-v0", level: int = 1, episodes: int = 2,
                  seed: int = 0, max_episode_steps: int = 4, first: int = 0, **env_kwargs: Any) -> list[Episode]:
    """Episodes ``first .. episodes-1`` of stream ``seed``, each with the server requests made during it."""
    env = make_env(env_id, level, max_episode_steps, **env_kwargs)

    async def stream() -> list[Episode]:
        played = []
        for k in range(first, episodes):
            before = len(server.requests)
            record = await run_episode(env, agent, seed, k, episodes)
            played.append(Episode(record, server.requests[before:], agent.episode_notes()))
        return played

    return asyncio.run(stream())


def joined(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


def action_prompts(server) -> list[str]:
    """The joined messages of the constrained (action) requests, in order: free-text requests (summaries,
    questions, ...) left out."""
    return [prompt for request, prompt in zip(server.requests, server.prompts(), strict=True)
            if request.get("response_format")]


def marker(request: dict[str, Any]) -> str:
    """A tag that depends only on what a request asked: equal requests get equal replies."""
    return hashlib.sha256(json.dumps(request["messages"], sort_keys=True).encode()).hexdigest()[:10]


def marking_responder(request: dict[str, Any]) -> str:
    """Actions: the first valid one, with a ``THOUGHT-<tag>`` when asked to think; free text: ``NOTE-<tag>``."""
    schema = (request.get("response_format") or {}).get("json_schema", {}).get("schema")
    if not schema:
        return f"NOTE-{marker(request)}"
    action_schema = schema["properties"]["action"]
    reply: dict[str, Any] = {"action": action_schema["enum"][0] if "enum" in action_schema else 0.5}
    if "thought" in schema["properties"]:
        reply = {"thought": f"THOUGHT-{marker(request)}", **reply}
    return json.dumps(reply)


def agent_configs() -> list[str]:
    """Every conf/agent preset of an LLM agent (the random, human and custom placeholders need none)."""
    names = []
    for path in sorted((CONF_DIR / "agent").glob("*.yaml")):
        config = compose_eval([f"agent={path.stem}"]).agent
        if not OmegaConf.is_missing(config, "_target_") and getattr(agent_class(config._target_), "uses_llm", True):
            names.append(path.stem)
    return names


def compose_eval(overrides: list[str], config_name: str = "eval", hydra_config: bool = False):
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=hydra_config)


def build_agent(preset: str, server, *overrides: str, seed: int = 0) -> Agent:
    """The agent ``conf/agent/<preset>.yaml`` builds (through real Hydra composition) on ``server``."""
    config = compose_eval([f"agent={preset}", *(f"agent.{o}" for o in overrides)]).agent
    return hydra.utils.instantiate(config)(llm=client_for(server), seed=seed)
