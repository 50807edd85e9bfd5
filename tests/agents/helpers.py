"""Play whole episodes of an agent against a text env, for the agent tests."""

from __future__ import annotations

import asyncio

import gymnasium as gym

import textgym  # noqa: F401
from agents.base import Agent
from agents.llm.client import LLMClient
from experiments.episodes import EpisodeRecord, run_episode


def client_for(server, **kwargs) -> LLMClient:
    return LLMClient(model="scripted", base_url=server.base_url, api_key_env=None, **kwargs)


def play(agent: Agent, env_id: str, level: int = 1, episodes: int = 2, seed: int = 0,
         max_episode_steps: int = 6) -> list[EpisodeRecord]:
    env = gym.make(env_id, level=level, max_episode_steps=max_episode_steps)

    async def stream() -> list[EpisodeRecord]:
        return [await run_episode(env, agent, seed, k, episodes) for k in range(episodes)]

    return asyncio.run(stream())
