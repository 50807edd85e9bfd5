"""Play episodes: one env + one agent -> step and episode records. Importable and tested on its own.

A *stream* is one agent instance playing ``episodes`` consecutive episodes from one seed (episode ``k``
resets with :func:`episode_seed` ``(seed, k)``), so what the agent learns carries over; many streams run at
once in one event loop and share the LLM client's concurrency limit.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agents.base import Agent, EpisodeContext, EpisodeResult, Transition
from agents.llm.client import Usage
from experiments.records.transcripts import EpisodeCalls, tag_calls

__all__ = ["EpisodeRecord", "run_episode", "jsonable", "episode_seed"]

EPISODES_PER_SEED = 1_000


def episode_seed(seed: int, episode_index: int, same_reset_seed: bool = False) -> int:
    """Reset seed of episode ``episode_index`` of stream ``seed``.

    Distinct across streams and episodes (up to 1000 episodes per stream), and the same for language agents and
    PPO's evaluation. With ``same_reset_seed`` (``protocol=paper``: the original's trials) every episode of a
    stream gets episode 0's.
    """
    if not 0 <= episode_index < EPISODES_PER_SEED:
        raise ValueError(f"episode index must be in [0, {EPISODES_PER_SEED}), actually {episode_index}")
    return seed * EPISODES_PER_SEED + (0 if same_reset_seed else episode_index)

StepCallback = Callable[[dict[str, Any]], None]


def jsonable(value: Any) -> Any:
    """Numpy values and tuples -> plain JSON types (raw observations and actions go to the result files)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


@dataclass
class EpisodeRecord:
    """One finished episode, as written to ``episodes.jsonl``."""

    episode_index: int
    seed: int
    episode_return: float
    steps: int
    terminated: bool
    invalid_actions: int
    invalid_replies: int
    usage: Usage
    wall_time_s: float
    step_records: list[dict[str, Any]] = field(default_factory=list)
    calls: EpisodeCalls = field(default_factory=EpisodeCalls)
    """The agent's LLM call records, in order, each tagged with its ``phase`` and ``step``; iterating gives them.
    Each is already its ``calls.jsonl`` line (see :class:`~experiments.records.transcripts.EpisodeCalls`)."""


def _take_calls(agent: Agent, phase: str, step: int | None = None) -> list[dict[str, Any]]:
    """The calls ``agent`` made since the last take, tagged; agents without a call log give none."""
    take = getattr(agent, "take_calls", None)
    return tag_calls(take(), phase, step) if take is not None else []


async def run_episode(env: gym.Env, agent: Agent, seed: int, episode_index: int, episodes_total: int,
                      on_step: StepCallback | None = None,
                      before_step: Callable[[], Awaitable[None]] | None = None,
                      same_reset_seed: bool = False) -> EpisodeRecord:
    """Play one episode of ``agent`` on the text ``env``, reset with :func:`episode_seed`.

    ``on_step`` receives each step's record (observation, action text, parsed action, reward, tokens,
    latency) as soon as it happens. The agent's LLM calls are collected per phase: those of ``reset`` (e.g.
    EXE's suggestion), those of each step, and those of ``end_episode`` (summaries, insights, reflections).
    """
    started = time.perf_counter()
    usage_before, invalid_replies_before = agent.usage, agent.invalid_replies
    obs, info = env.reset(seed=episode_seed(seed, episode_index, same_reset_seed))
    await agent.reset(EpisodeContext.from_reset_info(info, episode_index, episodes_total))
    calls = EpisodeCalls(_take_calls(agent, "reset"))  # each call becomes its transcript line as it comes
    total, steps, invalid_actions, done, terminated = 0.0, 0, 0, False, False
    transitions: list[Transition] = []
    records: list[dict[str, Any]] = []
    while not done:
        if before_step is not None:
            await before_step()
        step_usage_before = agent.usage
        action_text = await agent.act(obs, info)
        step_usage = agent.usage - step_usage_before
        calls.add(_take_calls(agent, "step", steps))
        next_obs, reward, terminated, truncated, info = env.step(action_text)
        done = terminated or truncated
        transition = Transition(obs, action_text, float(reward), next_obs, terminated, truncated,
                                bool(info["invalid_action"]))
        agent.observe(transition)
        transitions.append(transition)
        invalid_actions += int(info["invalid_action"])
        record = {
            "step": steps, "observation": obs, "action_text": action_text, "action": jsonable(info["action"]),
            "invalid_action": bool(info["invalid_action"]), "reward": float(reward),
            "terminated": bool(terminated), "truncated": bool(truncated),
            "prompt_tokens": step_usage.prompt_tokens, "completion_tokens": step_usage.completion_tokens,
            "llm_calls": step_usage.calls, "cost_usd": round(step_usage.cost_usd, 8),
            "latency_s": round(step_usage.latency_s, 4),
            "replies": list(getattr(agent, "last_replies", [])),
        }
        records.append(record)
        if on_step is not None:
            on_step(record)
        total += float(reward)
        steps += 1
        obs = next_obs
    await agent.end_episode(EpisodeResult(episode_index, total, steps, transitions))
    calls.add(_take_calls(agent, "end"))
    return EpisodeRecord(
        episode_index=episode_index, seed=seed, episode_return=total, steps=steps, terminated=bool(terminated),
        invalid_actions=invalid_actions, invalid_replies=agent.invalid_replies - invalid_replies_before,
        usage=agent.usage - usage_before, wall_time_s=time.perf_counter() - started, step_records=records,
        calls=calls,
    )
