"""textgym-eval: run a language agent on a text env at one knowledge level, resumably.

    textgym-eval env=cartpole level=3 agent=exe llm=local seeds=[0,1,2] episodes=5 concurrency=8

For each seed, one agent instance plays ``episodes`` consecutive episodes (a *stream*; it keeps what it
learned); up to ``concurrency`` streams run at once against one LLM client. Results go to the run dir:
``episodes.jsonl``, ``steps.jsonl``, ``agent_state/`` and ``.hydra/`` (see experiments/results.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import textgym
from agents.base import Agent
from agents.llm.client import LLMClient
from experiments.config import (
    agent_class,
    agent_name,
    quiet_libraries,
    register_resolvers,
    start_wandb,
    validate_eval,
)
from experiments.episodes import EpisodeRecord, run_episode
from experiments.llm_session import llm_session
from experiments.results import EpisodeKey, ResultsWriter, episode_row

__all__ = ["evaluate", "evaluate_async", "needs_llm", "main"]

logger = logging.getLogger(__name__)
register_resolvers()


def agent_episode_row(cfg: DictConfig, env_id: str, name: str, model: str | None,
                      record: EpisodeRecord) -> dict[str, Any]:
    usage = record.usage
    return episode_row(
        record.episode_return, kind="agent", env=cfg.env.name, env_id=env_id, level=cfg.level, agent=name,
        llm_model=model, seed=record.seed, episode=record.episode_index, steps=record.steps,
        terminated=record.terminated, invalid_actions=record.invalid_actions, invalid_replies=record.invalid_replies,
        llm_calls=usage.calls, cached_calls=usage.cached_calls, prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens, cost_usd=round(usage.cost_usd, 6),
        llm_latency_s=round(usage.latency_s, 3), wall_time_s=round(record.wall_time_s, 3),
    )


async def _run_streams(cfg: DictConfig, writer: ResultsWriter, client: LLMClient | None, wandb_run: Any) -> None:
    entry = textgym.env_entry(cfg.env.name)
    name = agent_name(cfg.agent._target_)
    make_agent = instantiate(cfg.agent)
    model = client.model if client else None
    seeds = list(cfg.seeds)

    def key(seed: int, episode: int) -> EpisodeKey:
        return EpisodeKey(cfg.env.name, cfg.level, name, seed, episode, llm_model=model)

    todo = sum(not writer.is_done(key(s, k)) for s in seeds for k in range(cfg.episodes))
    bar = tqdm(total=todo, desc=f"{cfg.env.name} L{cfg.level} {name}", unit="ep", disable=not cfg.progress)
    gate = asyncio.Semaphore(cfg.concurrency)
    logged = 0

    async def stream(seed: int) -> None:
        nonlocal logged
        keys = [key(seed, k) for k in range(cfg.episodes)]
        if all(writer.is_done(k) for k in keys):
            return
        async with gate:
            env_kwargs = {"level": cfg.level, **cfg.env.kwargs}
            if cfg.max_steps is not None:
                env_kwargs["max_episode_steps"] = cfg.max_steps
            env = gym.make(entry.text_id, **env_kwargs)
            agent: Agent = make_agent(llm=client, seed=seed)
            played_previous = False  # whether the agent object already holds what the previous episode taught
            try:
                for episode_key in keys:
                    if writer.is_done(episode_key):
                        played_previous = False
                        continue
                    if episode_key.episode > 0 and not played_previous:
                        # Continue a stream interrupted after its previous episode, from what it had learned.
                        state = writer.load_state(keys[episode_key.episode - 1])
                        if state is not None:
                            agent.load_state(state)
                        elif agent.state_attributes:
                            logger.warning("no saved state for %s before episode %d: the agent starts fresh",
                                           episode_key.stream, episode_key.episode)
                    record = await run_episode(env, agent, seed, episode_key.episode, cfg.episodes)
                    row = agent_episode_row(cfg, entry.text_id, name, model, record)
                    writer.write_episode(row, record.step_records, agent.state())
                    played_previous = True
                    bar.update(1)
                    if wandb_run is not None:
                        logged += 1
                        wandb_run.log({"episode/return": row["return"], "episode/steps": row["steps"],
                                       "episode/invalid_actions": row["invalid_actions"], "episode/seed": seed,
                                       "episode/index": episode_key.episode, "llm/prompt_tokens": row["prompt_tokens"],
                                       "llm/completion_tokens": row["completion_tokens"],
                                       "llm/cost_usd": row["cost_usd"]}, step=logged)
            finally:
                env.close()

    try:
        await asyncio.gather(*(stream(seed) for seed in seeds))
    finally:
        bar.close()


# The llm settings that change answers; timeouts, retries, concurrency and the cache do not.
LLM_IDENTITY_KEYS = ("provider", "model", "model_path", "temperature", "max_tokens", "seed", "structured_output")


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """The settings that change an eval run's results: resuming under other ones is refused."""
    llm = None
    if needs_llm(cfg):
        llm = {k: cfg.llm.get(k) for k in LLM_IDENTITY_KEYS}
        if cfg.llm.provider != "embedded":  # the embedded server's address is new every start
            llm["base_url"] = cfg.llm.base_url
    return {"env": cfg.env.name, "env_kwargs": OmegaConf.to_container(cfg.env.kwargs, resolve=True),
            "level": cfg.level, "agent": OmegaConf.to_container(cfg.agent, resolve=True), "llm": llm,
            "max_steps": cfg.max_steps, "episodes": cfg.episodes}


async def evaluate_async(cfg: DictConfig, run_dir: str | Path, client: LLMClient | None) -> Path:
    """Run (or resume) ``cfg`` into ``run_dir`` with a client the caller owns (shared by several configs)."""
    validate_eval(cfg)
    textgym.env_entry(cfg.env.name)  # unknown env -> clear error before anything starts
    writer = ResultsWriter(run_dir, identity=run_identity(cfg))
    name = agent_name(cfg.agent._target_)
    started = time.perf_counter()
    wandb_run = start_wandb(cfg, writer.run_dir, f"{cfg.env.name}-L{cfg.level}-{name}", "eval")
    try:
        await _run_streams(cfg, writer, client, wandb_run)
    finally:
        if wandb_run is not None:
            wandb_run.finish()
    logger.info("%s done in %.1fs -> %s", writer.run_dir, time.perf_counter() - started, writer.episodes_path)
    return writer.episodes_path


def needs_llm(cfg: DictConfig) -> bool:
    return bool(getattr(agent_class(cfg.agent._target_), "uses_llm", True))


def evaluate(cfg: DictConfig, run_dir: str | Path) -> Path:
    """Run (or resume) the evaluation described by ``cfg`` into ``run_dir``; returns the episodes file."""
    validate_eval(cfg)
    quiet_libraries()
    if not needs_llm(cfg):
        return asyncio.run(evaluate_async(cfg, run_dir, None))
    with llm_session(cfg.llm, max_concurrency=cfg.concurrency) as client:

        async def run_then_close() -> Path:
            try:
                return await evaluate_async(cfg, run_dir, client)
            finally:
                await client.aclose()

        return asyncio.run(run_then_close())


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def _hydra_main(cfg: DictConfig) -> None:
    evaluate(cfg, HydraConfig.get().runtime.output_dir)


@functools.wraps(_hydra_main)
def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
