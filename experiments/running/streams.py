"""The stream loop: every unfinished episode of a run's seeds, played in one event loop into a result sink.

A *stream* is one agent instance playing ``cfg.episodes`` consecutive episodes of one seed (it keeps what it
learned). Up to ``concurrency`` streams play at once. A failure stays in its stream: the episode is recorded as
failed, and that stream stops (its later episodes would start from what the failed one should have taught).
``textgym-eval``, ``textgym-compare``, ``textgym-play``, the worker processes and the benchmarks all play
through here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import textgym
from agents.base import Agent
from agents.llm.protocol import ChatModel, Usage
from experiments.config import agent_name
from experiments.records.results import FAILED, EpisodeKey, ResultSink, episode_row, error_text
from experiments.running.episodes import EpisodeRecord, run_episode
from experiments.running.progress import RunProgress
from experiments.variants import obfuscation_seed

__all__ = ["StreamSetup", "ConfigError", "play_streams", "agent_episode_row", "log_episode", "usage_fields",
           "EpisodeTally"]

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """The env or agent cannot be built with the given settings."""


def usage_fields(usage: Usage) -> dict[str, Any]:
    """The LLM-usage fields of an ``episodes.jsonl`` row (the same for agents' episodes and rollouts)."""
    return {"llm_calls": usage.calls, "cached_calls": usage.cached_calls, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_prompt_tokens": getattr(usage, "cached_prompt_tokens", 0),
            "cost_usd": round(usage.cost_usd, 6), "llm_latency_s": round(usage.latency_s, 3)}


def agent_episode_row(cfg: DictConfig, env_id: str, name: str, model: str | None, record: EpisodeRecord,
                      notes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``episodes.jsonl`` row of a language agent's finished episode."""
    return _agent_row(cfg.env.name, cfg.level, obfuscation_seed(cfg.env.kwargs), env_id, name, model, record, notes)


def _agent_row(env: str, level: int, obfuscation: int | None, env_id: str, name: str, model: str | None,
               record: EpisodeRecord, notes: dict[str, Any] | None) -> dict[str, Any]:
    return episode_row(
        record.episode_return, kind="agent", env=env, env_id=env_id, level=level, agent=name,
        llm_model=model, seed=record.seed, episode=record.episode_index, steps=record.steps,
        obfuscation_seed=obfuscation, terminated=record.terminated,
        invalid_actions=record.invalid_actions, invalid_replies=record.invalid_replies,
        wall_time_s=round(record.wall_time_s, 3), notes=notes or {}, **usage_fields(record.usage),
    )


def log_episode(wandb_run: Any, row: dict[str, Any], step: int) -> None:
    """One finished episode's metrics to wandb."""
    wandb_run.log({"episode/return": row["return"], "episode/steps": row["steps"],
                   "episode/invalid_actions": row["invalid_actions"], "episode/seed": row["seed"],
                   "episode/index": row["episode"], "llm/prompt_tokens": row["prompt_tokens"],
                   "llm/completion_tokens": row["completion_tokens"], "llm/cost_usd": row["cost_usd"]}, step=step)


@dataclass
class StreamSetup:
    """What every stream of one run shares: the env to make, the agent factory, the episode keys.

    Args:
        cfg: the eval config (``env``, ``level``, ``agent``, ``episodes``, ``max_steps``, ``protocol``).
        model: the LLM's model name (part of every episode key), or ``None`` for an agent without an LLM.
    """

    cfg: DictConfig
    model: str | None = None

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.env_id = textgym.env_entry(cfg.env.name).text_id
        self.agent = agent_name(cfg.agent._target_, cfg.agent.get("name"))
        self.make_agent: Callable[..., Agent] = instantiate(cfg.agent)
        self.same_reset_seed = bool(OmegaConf.select(cfg, "protocol.same_reset_seed", default=False))  # paper
        self.env_kwargs = {"level": cfg.level, **cfg.env.kwargs}
        if cfg.max_steps is not None:
            self.env_kwargs["max_episode_steps"] = cfg.max_steps
        self.group = f"{cfg.env.name} L{cfg.level} {self.agent}"  # its line in the progress display
        # Read once: a config lookup costs tens of microseconds, and keys and rows are made for every episode.
        self.env_name: str = cfg.env.name
        self.level: int = cfg.level
        self.obfuscation_seed = obfuscation_seed(cfg.env.kwargs)
        self.episodes: int = cfg.episodes  # a stream's episodes

    def key(self, seed: int, episode: int) -> EpisodeKey:
        """The key of episode ``episode`` of ``seed``'s stream."""
        return EpisodeKey(self.env_name, self.level, self.agent, seed, episode, llm_model=self.model,
                          obfuscation_seed=self.obfuscation_seed)

    def episode_row(self, record: EpisodeRecord, notes: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``episodes.jsonl`` row of a finished episode (:func:`agent_episode_row` for this run)."""
        return _agent_row(self.env_name, self.level, self.obfuscation_seed, self.env_id, self.agent, self.model,
                          record, notes)

    def keys(self, seeds: list[int]) -> list[EpisodeKey]:
        """Every episode of ``seeds``' streams, stream by stream."""
        return [self.key(seed, k) for seed in seeds for k in range(self.episodes)]

    def check_buildable(self, client: ChatModel | None, seed: int) -> None:
        """Build one env and one agent: settings that cannot are the user's to fix, not N episode failures.

        Raises:
            ConfigError: naming the env, the agent and what went wrong.
        """
        try:
            gym.make(self.env_id, **self.env_kwargs).close()
            self.make_agent(llm=client, seed=seed)
        except Exception as error:
            raise ConfigError(f"cannot build env={self.cfg.env.name} / agent={self.agent} with these settings: "
                              f"{error_text(error)}") from error

    def failed_row(self, key: EpisodeKey, error: BaseException, attempt: _Attempt | None = None) -> dict[str, Any]:
        """The ``status: "failed"`` row of ``key``, with what ``attempt`` got through before it failed."""
        attempt = attempt or _Attempt(None)
        usage = attempt.agent.usage - attempt.usage_before if attempt.agent else Usage()
        invalid_replies = attempt.agent.invalid_replies - attempt.invalid_replies_before if attempt.agent else 0
        return episode_row(
            None, kind="agent", env=key.env, env_id=self.env_id, level=key.level, agent=key.agent,
            llm_model=key.llm_model, seed=key.seed, episode=key.episode, obfuscation_seed=key.obfuscation_seed,
            status=FAILED, error=error_text(error),
            steps=attempt.steps, terminated=False, invalid_actions=attempt.invalid_actions,
            invalid_replies=invalid_replies, wall_time_s=round(time.perf_counter() - attempt.started, 3),
            **usage_fields(usage),
        )


class _Attempt:
    """What an episode got through before it failed: steps, invalid actions, LLM usage, time."""

    def __init__(self, agent: Agent | None) -> None:
        self.agent = agent
        self.usage_before = agent.usage if agent else Usage()
        self.invalid_replies_before = agent.invalid_replies if agent else 0
        self.started = time.perf_counter()
        self.steps = self.invalid_actions = 0

    def on_step(self, record: dict[str, Any]) -> None:
        self.steps += 1
        self.invalid_actions += int(record["invalid_action"])


class EpisodeTally:
    """Counts an episode as finished once its sink keeps it for good: in the progress display and wandb's log."""

    def __init__(self, progress: RunProgress, group: str, wandb_run: Any = None) -> None:
        self.progress, self.group, self.wandb_run = progress, group, wandb_run
        self.logged = 0  # wandb's step: episodes logged so far

    async def count(self, row: dict[str, Any], written: Awaitable[None]) -> None:
        """Count the episode of ``row`` once ``written`` (what its sink's ``commit_episode`` returned) ends."""
        await written
        self.progress.episode_finished(self.group)
        if self.wandb_run is not None:
            self.logged += 1
            log_episode(self.wandb_run, row, self.logged)


async def play_streams(setup: StreamSetup, sink: ResultSink, client: ChatModel | None, seeds: list[int],
                       progress: RunProgress, gate: asyncio.Semaphore,
                       wandb_run: Any = None) -> dict[EpisodeKey, str]:
    """Play every unfinished episode of ``seeds``' streams into ``sink``; returns the failed ones, with their error.

    ``gate`` bounds the streams playing at once (runs sharing one take turns stream by stream); each finished or
    failed episode is counted in ``progress`` under ``setup.group`` (which the caller added).
    """
    failures: dict[EpisodeKey, str] = {}
    tally = EpisodeTally(progress, setup.group, wandb_run)

    def record_failure(key: EpisodeKey, row: dict[str, Any]) -> None:
        sink.write_failure(row)
        failures[key] = row["error"]

    async def play_stream(seed: int, keys: list[EpisodeKey], agent: Agent, env: gym.Env) -> None:
        # The episodes written but not yet on disk: the stream plays on meanwhile (an fsync takes as long as a
        # decision or more), and waits for them before it ends.
        commits: list[asyncio.Task[None]] = []
        try:
            await play_episodes(seed, keys, agent, env, commits)
        finally:
            await asyncio.gather(*commits)

    async def play_episodes(seed: int, keys: list[EpisodeKey], agent: Agent, env: gym.Env,
                            commits: list[asyncio.Task[None]]) -> None:
        played_previous = False  # whether the agent object already holds what the previous episode taught
        for key in keys:
            for commit in [commit for commit in commits if commit.done()]:
                commit.result()  # a commit that failed (a full disk) stops the stream here
                commits.remove(commit)
            if sink.is_done(key):
                played_previous = False
                continue
            attempt = _Attempt(agent)
            try:
                if key.episode > 0 and not played_previous:
                    # Continue a stream interrupted after its previous episode, from what it had learned.
                    state = sink.load_state(keys[key.episode - 1])
                    if state is not None:
                        agent.load_state(state)
                    elif agent.state_attributes:
                        logger.warning("no saved state for %s before episode %d: the agent starts fresh",
                                       key.stream, key.episode)
                record = await run_episode(env, agent, seed, key.episode, setup.episodes, on_step=attempt.on_step,
                                           same_reset_seed=setup.same_reset_seed)
                row = setup.episode_row(record, agent.episode_notes())
            except Exception as error:  # noqa: BLE001 - whatever the client or agent raised ends this stream only
                row = setup.failed_row(key, error, attempt)
                record_failure(key, row)
                progress.episode_finished(setup.group, failed=True)
                later = len(keys) - key.episode - 1
                logger.warning("seed %d episode %d failed: %s%s", seed, key.episode, row["error"],
                               f" ({later} later episodes of this stream not run)" if later else "")
                return
            # The sink takes the episode now (the agent plays on and changes); it is kept for good later.
            written = sink.commit_episode(row, record.step_records, agent.state(), calls=record.calls)
            # Counted as finished only once the sink has it for good (on disk, or with the parent that writes it).
            commits.append(asyncio.get_running_loop().create_task(tally.count(row, written)))
            played_previous = True

    async def stream(seed: int) -> None:
        keys = [setup.key(seed, k) for k in range(setup.episodes)]
        if all(sink.is_done(k) for k in keys):
            return
        async with gate:
            env: gym.Env | None = None
            try:
                # The goal text states the step limit the env enforces, a max_steps override included. gymnasium's
                # env checker ran on the run's first env (check_buildable): once per stream cost ~0.7 ms a stream.
                env = textgym.wrapper.state_step_limit(gym.make(setup.env_id, **{"disable_env_checker": True,
                                                                                 **setup.env_kwargs}))
                agent = setup.make_agent(llm=client, seed=seed)
            except Exception as error:  # noqa: BLE001 - recorded as the stream's first unfinished episode
                first = next(k for k in keys if not sink.is_done(k))
                row = setup.failed_row(first, error)
                record_failure(first, row)
                logger.warning("seed %d could not start: %s", seed, row["error"])
                if env is not None:
                    env.close()
                return
            try:
                await play_stream(seed, keys, agent, env)
            finally:
                env.close()

    # return_exceptions: a stream that breaks in a way it could not record (a full disk) must not cancel the
    # others; it is raised once they are all over.
    results = await asyncio.gather(*(stream(seed) for seed in seeds), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return failures
