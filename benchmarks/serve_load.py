"""textgym-serve under load: decisions/s with many concurrent WebSocket sessions, and the server's memory over
many episodes.

    python benchmarks/serve_load.py                       # 1,000 CartPole L1 episodes, 64 sessions at once
    python benchmarks/serve_load.py --episodes 200 --sessions 8 --env frozenlake --level 5

Starts the real ``textgym-serve`` (a child process, 127.0.0.1) and plays ``--episodes`` episodes through OpenEnv's
own ``GenericEnvClient``, ``--sessions`` at a time: each episode opens a session (a WebSocket), resets with its own
seed, replies with seeded random valid actions (as lenient JSON) until the episode ends, and closes, so sessions
come and go all run long. Printed: decisions/s (steps answered per second of wall time, client and server sharing
the machine), episodes/s, and the server's RSS (``/proc/<pid>/status``) after the warm-up, at each tenth of the
run and at the end, with its growth from the warm-up mark. Not a test: figures for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from openenv import GenericEnvClient

from textgym.chat import ChatEnv

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` now, in MB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_until_serving(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/sessions", timeout=5):
                return
        except OSError as error:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"textgym-serve did not come up:\n{log.read_text()}") from error
            time.sleep(0.2)


async def play(url: str, seed: int, names: list[str]) -> int:
    """One episode in its own session; returns the steps played."""
    rng = random.Random(seed)
    steps = 0
    async with GenericEnvClient(base_url=url, message_timeout_s=300) as client:
        result = await client.reset(seed=seed)
        while not result.done:
            result = await client.step({"reply": json.dumps({"action": rng.choice(names)})})
            steps += 1
    return steps


async def run(url: str, pid: int, episodes: int, sessions: int, warmup: int, names: list[str]) -> dict:
    seeds = iter(range(episodes + warmup))
    done = {"episodes": 0, "steps": 0}
    marks: list[tuple[int, float]] = []

    async def worker() -> None:
        for seed in seeds:
            steps = await play(url, seed, names)  # awaited first: `+= await` would read the count before the wait
            done["steps"] += steps
            done["episodes"] += 1
            if done["episodes"] > warmup and (done["episodes"] - warmup) % max(1, episodes // 10) == 0:
                marks.append((done["episodes"] - warmup, rss_mb(pid)))

    # Warm-up: one wave of sessions, so caches and thread pools exist before memory is watched.
    warm = [asyncio.create_task(play(url, next(seeds), names)) for _ in range(warmup)]
    await asyncio.gather(*warm)
    await asyncio.sleep(0.5)  # let the server close the warm-up sessions
    rss_warm = rss_mb(pid)
    done["episodes"] = warmup
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(sessions)))
    wall = time.perf_counter() - start
    await asyncio.sleep(0.5)
    return {"episodes": done["episodes"] - warmup, "steps": done["steps"], "wall_s": round(wall, 2),
            "decisions_per_s": round(done["steps"] / wall, 1),
            "episodes_per_s": round((done["episodes"] - warmup) / wall, 2),
            "rss_mb_after_warmup": round(rss_warm, 1), "rss_mb_marks": [(n, round(mb, 1)) for n, mb in marks],
            "rss_mb_end": round(rss_mb(pid), 1), "rss_growth_mb": round(rss_mb(pid) - rss_warm, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--env", default="cartpole")
    parser.add_argument("--level", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None, help="the env's step cap (default: its own)")
    args = parser.parse_args()

    names = ChatEnv(args.env, args.level).action_spec.get("names")
    if not names:
        sys.exit(f"--env {args.env}: this benchmark replies with action names; pick an env with discrete actions")
    port = free_port()
    command = [sys.executable, "-m", "experiments.serve", f"env={args.env}", f"level={args.level}", f"port={port}",
               f"max_sessions={args.sessions}"]
    if args.max_steps:
        command.append(f"max_steps={args.max_steps}")
    log = Path(tempfile.mkdtemp(prefix="serve_load-")) / "server.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                  env={**os.environ, "WANDB_MODE": "disabled"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, server, log)
        figures = asyncio.run(run(url, server.pid, args.episodes, args.sessions, min(args.sessions, 64), names))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    print(json.dumps({"env": args.env, "level": args.level, "sessions": args.sessions, **figures}))


if __name__ == "__main__":
    main()
