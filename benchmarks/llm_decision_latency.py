"""Seconds per decision of language agents on the embedded model (SmolLM2-135M, all cores).

    python benchmarks/llm_decision_latency.py --agents naive exe --env cartpole --level 1 --episodes 2

Runs real episodes through textgym-eval's episode loop with the response cache off, one stream at a
time (``--streams`` runs several at once to show batching throughput), and prints wall seconds per
env step, including the EXE agent's per-episode suggestion/summary/insight calls.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time

import gymnasium as gym

import textgym
from agents.llm.client import LLMClient
from agents.llm.embedded import EmbeddedServer
from experiments.episodes import run_episode

AGENT_CLASSES = {"naive": "agents.naive:NaiveAgent", "exe": "agents.exe:EXEAgent", "cot": "agents.cot:CoTAgent",
                 "reflexion": "agents.reflexion:ReflexionAgent"}


def agent_class(name: str) -> type:
    module, _, attribute = AGENT_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


async def measure(client: LLMClient, agent_name: str, env_id: str, level: int, episodes: int, streams: int,
                  max_steps: int) -> tuple[int, int, float]:
    async def stream(seed: int) -> tuple[int, int]:
        env = gym.make(env_id, level=level, max_episode_steps=max_steps)
        agent = agent_class(agent_name)(llm=client, seed=seed)
        records = [await run_episode(env, agent, seed, k, episodes) for k in range(episodes)]
        return sum(r.steps for r in records), sum(r.usage.calls for r in records)

    started = time.perf_counter()
    results = await asyncio.gather(*(stream(seed) for seed in range(streams)))
    return sum(r[0] for r in results), sum(r[1] for r in results), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", nargs="+", default=["naive", "exe"], choices=sorted(AGENT_CLASSES))
    parser.add_argument("--env", default="cartpole")
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=30)
    args = parser.parse_args()
    env_id = textgym.env_entry(args.env).text_id
    with EmbeddedServer(parallel=max(1, args.streams)) as server:
        for name in args.agents:
            client = LLMClient(model=server.model_name, base_url=server.base_url, api_key_env=None,
                               max_concurrency=max(1, args.streams))
            steps, calls, seconds = asyncio.run(measure(client, name, env_id, args.level, args.episodes,
                                                        args.streams, args.max_steps))
            print(f"{name:10s} {args.env} L{args.level}: {steps} steps, {calls} LLM calls in {seconds:.1f}s -> "
                  f"{seconds / steps:.2f} s/decision ({seconds / calls:.2f} s/call), streams={args.streams}")


if __name__ == "__main__":
    main()
