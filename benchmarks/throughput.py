"""Throughput of textgym-eval's episode loop against a local fixed-latency server, beside a bare client's ceiling.

    python benchmarks/throughput.py                        # 50 ms server; 1, 8, 64, 256 streams; 0 ms CPU figure
    python benchmarks/throughput.py --streams 64 --latency-ms 50 --steps 40
    python benchmarks/throughput.py --env blackjack --streams 64 --episodes 10 --workers 1 --no-cpu
    python benchmarks/throughput.py --streams 64 256 1024 --steps 40 --workers 1 2 4 8 16 auto   # many cores
    python -m cProfile -o /tmp/decide.prof benchmarks/throughput.py --only-cpu   # where our own time goes

Where an episode boundary's time goes (short episodes: Blackjack is one to three decisions a hand), profiled in the
process that plays the streams; rely on call counts and shares, not rates, on a loaded machine::

    python -m cProfile -o /tmp/boundary.prof benchmarks/throughput.py --env blackjack --streams 64 --episodes 10 \
        --workers 1 --no-cpu --ceiling-seconds 1
    python -c "import pstats; pstats.Stats('/tmp/boundary.prof').sort_stats('tottime').print_stats(25)"

It starts ``benchmarks/fixed_latency_server.py`` in a child process, then:

1. **ceiling**: a bare asyncio client (raw streams, one keep-alive connection per stream) posting one fixed
   naive-agent-sized request in a loop: the requests/s the server and loopback allow;
2. **streams**: the real ``textgym-eval`` path (``evaluate_async`` with a composed config: naive agent, the
   ``--env`` (MountainCar by default: a fixed number of steps per episode since the scripted reply never reaches the
   goal; CartPole ends in about nine steps and a Blackjack hand in one decision with that reply, so those are short
   episodes, ``--episodes`` per stream), response cache off, result files written to a temporary dir), in one
   process and with ``workers=2`` (``--workers``), and prints decisions/s and requests/s over the whole run
   (start-up of the streams and their last writes included), and requests/s while the server was busy (its first
   request's arrival to its last reply, from the server's ``/stats``) with that figure's ratio to the ceiling's,
   counted the same way; the whole-run decisions/s over the busy requests/s (what start-up and wind-down cost: the
   workers' fork server is started before the first run, as ``textgym-eval`` starts it before its LLM session, so
   a worker's start is a fork and its streams' setup, not an interpreter importing TextGym); and
   the mean turnaround, from a reply to the same connection's next request (our side's time per decision, queueing
   in the event loop included); and the **shape bound**: the bare client again, each connection posting as many
   requests as its stream made and then stopping, as a ratio to the ceiling counted the same way: what a client
   with no work of its own reaches on the run's shape. Streams whose episodes end at different steps (CartPole's
   seeds end in 8 to 11) leave fewer requests in flight towards the end, which no client can avoid, and a short
   run's first requests all wait on connections being opened. (The bare client sends its first requests in one
   burst, which the one-core server answers one by one; streams that start one after another spread them, so a
   short run can land a little above its bound.)
3. **own CPU per decision**: one stream against a 0 ms server, this process's CPU seconds per decision (the
   server runs in another process, so its time is not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
from hydra import compose, initialize_config_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agents.llm.client import LLMClient  # noqa: E402
from agents.llm.transport import HTTPTransport  # noqa: E402
from benchmarks.fixed_latency_server import start_in_process  # noqa: E402
from experiments.config import register_resolvers  # noqa: E402
from experiments.run_agent import evaluate_async  # noqa: E402
from experiments.running.workers import prepare_workers  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
ENVS = ("mountaincar", "cartpole", "blackjack")  # long fixed episodes; ~9 steps; one decision a hand


def bare_request_body() -> bytes:
    """A request the size of a naive MountainCar decision (~1.5 kB of prompt)."""
    schema = {"type": "object", "properties": {"action": {"type": "string", "enum": ["push left", "no push",
                                                                                      "push right"]}},
              "required": ["action"], "additionalProperties": False}
    return json.dumps({"model": "fixed", "messages": [{"role": "system", "content": "x" * 1200},
                                                      {"role": "user", "content": "y" * 300}],
                       "n": 1, "temperature": 0, "max_tokens": 48, "seed": 0,
                       "response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema,
                                                                                  "strict": True}}}).encode()


async def ceiling(base_url: str, in_flight: int, seconds: float, shape: list[int] | None = None) -> float:
    """Requests/s of a bare asyncio client: ``in_flight`` keep-alive connections, each posting one fixed request
    and reading the whole reply in a loop (raw ``asyncio`` streams, so no client library's overhead counts).

    With ``shape``, connection ``i`` posts ``shape[i]`` requests and stops (no time limit): a run's streams' request
    counts played with no work between requests, so the server's busy-window rate is what a client without
    overhead reaches on that run's shape (streams that end sooner leave fewer requests in flight).
    """
    url = httpx.URL(base_url)
    body = bare_request_body()
    request = (f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: {url.host}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    deadline = time.perf_counter() + seconds
    count = 0

    async def worker(requests: float) -> None:
        nonlocal count
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            while requests > 0 and (shape is not None or time.perf_counter() < deadline):
                requests -= 1
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                json.loads(await reader.readexactly(length))
                count += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in (shape or [float("inf")] * in_flight)))
    return count / (time.perf_counter() - started)


def server_stats(base_url: str) -> tuple[float, float]:
    """Since the last call (which this call restarts): requests/s the server answered between its first request and
    its last reply, and the clients' mean turnaround in ms (a reply to the same connection's next request)."""
    busy = httpx.get(f"{base_url}/stats").json()
    rate = busy["requests"] / (busy["last"] - busy["first"]) if busy["requests"] > 1 else 0.0
    return rate, 1000 * busy["turnaround_s"] / max(busy["turnarounds"], 1)


def eval_config(streams: int, steps: int, episodes: int, base_url: str, workers: int | str = 1,
                env: str = ENVS[0]):
    return compose("eval", overrides=[f"workers={workers}",
        f"env={env}", "agent=naive", "llm=server", f"llm.base_url={base_url}", "llm.model=fixed", "llm.cache=off",
        f"seeds=[{','.join(map(str, range(streams)))}]", f"episodes={episodes}", f"max_steps={steps}",
        f"concurrency={streams}", "logger=none", "progress=false", "level=5",
    ])


async def run_streams(streams: int, steps: int, episodes: int, base_url: str, workers: int | str = 1,
                      env: str = ENVS[0]) -> tuple[int, int, float, float, list[int]]:
    """(decisions, requests, wall s, CPU s of this process, LLM calls per stream) of ``streams`` streams through
    textgym-eval's code."""
    cfg = eval_config(streams, steps, episodes, base_url, workers, env)
    client = LLMClient("fixed", HTTPTransport(base_url, None, max_concurrency=streams))
    with tempfile.TemporaryDirectory() as run_dir:
        wall, cpu = time.perf_counter(), time.process_time()
        await evaluate_async(cfg, run_dir, client)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows = [json.loads(line) for line in (Path(run_dir) / "episodes.jsonl").read_text().splitlines()]
    await client.aclose()
    decisions = sum(row["steps"] for row in rows)
    calls: dict[int, int] = {}
    for row in rows:
        calls[row["seed"]] = calls.get(row["seed"], 0) + row["llm_calls"]
    return decisions, client.usage.calls, wall, cpu, list(calls.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 64, 256])
    parser.add_argument("--env", choices=ENVS, default=ENVS[0],
                        help="mountaincar: --steps decisions an episode; cartpole: ~9; blackjack: 1 (short episodes)")
    parser.add_argument("--steps", type=int, default=100, help="decisions per episode (a cap where the env ends "
                                                                "sooner)")
    parser.add_argument("--episodes", type=int, default=1, help="consecutive episodes per stream")
    parser.add_argument("--workers", type=lambda text: text if text == "auto" else int(text), nargs="+",
                        default=[1, 2], help="worker processes per run (1: one event loop; auto: textgym-eval's "
                                             "default rule); streams below 64 run in one only")
    parser.add_argument("--ceiling-seconds", type=float, default=5.0)
    parser.add_argument("--cpu-steps", type=int, default=400, help="decisions for the 0 ms CPU figure")
    parser.add_argument("--only-cpu", action="store_true", help="just the 0 ms own-CPU figure (for profiling)")
    parser.add_argument("--no-cpu", action="store_true", help="skip the 0 ms own-CPU figure")
    args = parser.parse_args()
    register_resolvers()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        if not args.only_cpu:
            server, base_url = start_in_process(args.latency_ms)
            try:
                print(f"server latency {args.latency_ms:.0f} ms, {args.steps} decisions per episode at most, "
                      f"{args.episodes} episodes per stream, env {args.env}")
                print(f"{'streams':>8} {'workers':>8} {'ceiling req/s':>14} {'decisions/s':>12} {'requests/s':>11} "
                      f"{'busy req/s':>11} {'ratio':>6} {'whole/busy':>11} {'turnaround ms':>14} "
                      f"{'shape bound':>12}")
                server_stats(base_url)
                if any(workers != 1 for workers in args.workers):
                    prepare_workers()  # as textgym-eval does before its LLM session: imports off the clock
                for streams in args.streams:
                    asyncio.run(ceiling(base_url, streams, args.ceiling_seconds))
                    top, _ = server_stats(base_url)
                    bound = None  # the same-shape bare client's ratio: the same for every worker count
                    for workers in args.workers if streams >= 64 else [1]:
                        decisions, requests, wall, _, shape = asyncio.run(run_streams(
                            streams, args.steps, args.episodes, base_url, workers, args.env))
                        busy, turnaround = server_stats(base_url)
                        if bound is None:
                            asyncio.run(ceiling(base_url, streams, 0.0, shape=shape))
                            bound = server_stats(base_url)[0] / top
                        whole = decisions / wall
                        print(f"{streams:>8} {str(workers):>8} {top:>14.0f} {whole:>12.0f} {requests / wall:>11.0f} "
                              f"{busy:>11.0f} {busy / top:>6.2f} {whole / busy if busy else 0.0:>11.2f} "
                              f"{turnaround:>14.1f} {bound:>12.2f}", flush=True)
            finally:
                server.kill()
        if args.no_cpu:
            return
        server, base_url = start_in_process(0.0)
        try:
            decisions, _, wall, cpu, _ = asyncio.run(run_streams(1, args.cpu_steps, 1, base_url))
            print(f"own CPU per decision at 0 ms (1 stream, {decisions} decisions): {1000 * cpu / decisions:.2f} ms "
                  f"CPU, {1000 * wall / decisions:.2f} ms wall")
        finally:
            server.kill()


if __name__ == "__main__":
    main()
