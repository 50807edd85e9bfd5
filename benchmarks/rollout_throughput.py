"""Throughput of textgym-rollout beside textgym-eval at the same concurrency, against a fixed-latency server.

    python benchmarks/rollout_throughput.py                     # 64 in flight, 50 ms, 100 decisions an episode
    python benchmarks/rollout_throughput.py --concurrency 64 --latency-ms 50 --steps 100 --repeats 2

It starts ``benchmarks/fixed_latency_server.py`` in a child process (every reply: the request schema's first
action), then, ``--repeats`` times and interleaved so that a change in the machine's load hits both alike:

1. **eval**: ``textgym-eval``'s path (``evaluate_async``: naive agent, MountainCar L5, one episode per seed on
   ``concurrency`` seeds, ``max_steps`` decisions each, the action schema sent, response cache off);
2. **rollout**: ``textgym-rollout``'s path (:func:`experiments.rollout.play_rollouts` into a
   :class:`~experiments.records.results.ResultsWriter`: the same env, level, step cap and decisions, ``concurrency``
   rollouts in flight as ``concurrency / n`` seeds of ``n`` rollouts, ``constrained`` so the schema is sent too,
   ``logprobs`` asked for; ``--history``: ChatEnv's ``all`` by default, ``10`` is the naive agent's window).

Both write their result and transcript files to a temporary dir. It prints decisions/s (env steps over the wall
time, start-up and final writes included), the ratio rollout / eval of each pair, the bare client's ceiling
(requests/s of raw keep-alive connections, ``benchmarks/throughput.py``'s) and the load average before and after:
the CPU is shared, so read a figure beside the load it ran under.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from hydra import initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents.llm.client import LLMClient, Sampling  # noqa: E402
from agents.llm.transport import HTTPTransport  # noqa: E402
from benchmarks.fixed_latency_server import start_in_process  # noqa: E402
from benchmarks.throughput import CONF_DIR, ENVS, ceiling, eval_config  # noqa: E402
from experiments.config import register_resolvers  # noqa: E402
from experiments.records.results import ResultsWriter  # noqa: E402
from experiments.rollout import RolloutSettings, play_rollouts  # noqa: E402
from experiments.run_agent import evaluate_async  # noqa: E402

ENV = ENVS[0]  # MountainCar: long episodes of a fixed length, as benchmarks/throughput.py's default
LEVEL = 5  # as benchmarks/throughput.py's eval config


async def eval_run(concurrency: int, steps: int, base_url: str) -> tuple[int, float]:
    """(decisions, wall s) of ``concurrency`` one-episode streams through textgym-eval's code."""
    cfg = eval_config(concurrency, steps, 1, base_url, env=ENV)
    client = LLMClient("fixed", HTTPTransport(base_url, None, max_concurrency=concurrency))
    with tempfile.TemporaryDirectory() as run_dir:
        wall = time.perf_counter()
        await evaluate_async(cfg, run_dir, client)
        wall = time.perf_counter() - wall
        rows = [json.loads(line) for line in (Path(run_dir) / "episodes.jsonl").read_text().splitlines()]
    await client.aclose()
    return sum(row["steps"] for row in rows), wall


async def rollout_run(concurrency: int, n: int, steps: int, base_url: str, history: int | str) -> tuple[int, float]:
    """(decisions, wall s) of ``concurrency`` rollouts (``concurrency / n`` seeds of ``n``) through textgym-rollout's
    code, written to a run dir as the command writes them."""
    client = LLMClient("fixed", HTTPTransport(base_url, None, max_concurrency=concurrency),
                       sampling=Sampling(temperature=1.0))
    seeds = list(range(concurrency // n))
    with tempfile.TemporaryDirectory() as run_dir:
        wall = time.perf_counter()
        played = await play_rollouts(client, ENV, LEVEL, seeds, n, concurrency=concurrency,
                                     chat={"max_episode_steps": steps, "history": history},
                                     settings=RolloutSettings(constrained=True, logprobs=True),
                                     sink=ResultsWriter(run_dir, identity={"benchmark": "rollout"}))
        wall = time.perf_counter() - wall
    await client.aclose()
    failed = [r.error for r in played if r.status != "done"]
    if failed:
        raise RuntimeError(f"{len(failed)} rollouts failed: {failed[0]}")
    return sum(r.steps for r in played), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--n", type=int, default=4, help="rollouts per seed")
    parser.add_argument("--steps", type=int, default=100, help="decisions per episode")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--history", default="all", help="ChatEnv's history: all, or k steps (the naive agent: 10)")
    parser.add_argument("--ceiling-seconds", type=float, default=5.0)
    args = parser.parse_args()
    history = args.history if args.history == "all" else int(args.history)
    if args.concurrency % args.n:
        parser.error(f"--concurrency ({args.concurrency}) must be a multiple of --n ({args.n})")
    register_resolvers()
    load_before = os.getloadavg()
    server, base_url = start_in_process(args.latency_ms)
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            top = asyncio.run(ceiling(base_url, args.concurrency, args.ceiling_seconds))
            print(f"{ENV} L{LEVEL}, {args.concurrency} in flight, server latency {args.latency_ms:.0f} ms, "
                  f"{args.steps} decisions an episode, rollout history {history}; bare client ceiling {top:.0f} req/s")
            print(f"{'repeat':>6} {'eval dec/s':>11} {'rollout dec/s':>14} {'ratio':>6}")
            for repeat in range(args.repeats):
                decisions, wall = asyncio.run(eval_run(args.concurrency, args.steps, base_url))
                rolled, rollout_wall = asyncio.run(rollout_run(args.concurrency, args.n, args.steps, base_url,
                                                               history))
                eval_rate, rollout_rate = decisions / wall, rolled / rollout_wall
                print(f"{repeat:>6} {eval_rate:>11.0f} {rollout_rate:>14.0f} {rollout_rate / eval_rate:>6.2f}",
                      flush=True)
    finally:
        server.kill()
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(
        *load_before, *os.getloadavg()))


if __name__ == "__main__":
    main()
