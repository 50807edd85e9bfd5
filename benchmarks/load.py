"""Load: hundreds of episode streams against a faulty local server; every episode done once, or failed on record.

    python benchmarks/load.py                                  # 8, 64, 256 streams x 0% and 30% faults
    python benchmarks/load.py --streams 256 --rates 0.3 --episodes 2 --max-steps 20

Each case runs in a fresh child process (so its peak RSS is its own): the real ``textgym-eval`` path
(``evaluate`` with a composed config: naive agent on CartPole, ``concurrency`` = streams, response cache off,
the client's default retry policy of ``conf/llm/server.yaml``) against ``tests/fake_llm_server.py`` in another
process, with a seeded mix of its default faults (HTTP 500, 429 with Retry-After, a hang then a dropped
connection, a cut-off JSON body, empty content, random text, a connection reset, an answer after ``--slow-s``).
Then the run dir is read back and checked: per episode exactly one done row, or a failed row with its reason,
or "not run" because an earlier episode of its stream failed; anything else is *lost* (must be 0), and so are
duplicates. Printed per case: episodes done/failed/not run/lost, duplicate rows, retries by kind (the client's
count) beside the faults injected by kind (the server's), wall time, and RSS at start, at the end and at peak
(``ru_maxrss``), plus RSS sampled at each quarter of the run. Not a test: figures for the README.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def rss_mb() -> float:
    """This process's resident set size now, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def serve(rate: float, seed: int, slow_s: float, hang_s: float, pipe: Any) -> None:
    """Child process: the fault-injecting fake server until told to stop; sends back what it injected."""
    from tests.fake_llm_server import FakeLLMServer, Faults

    with FakeLLMServer(faults=Faults(rate=rate, seed=seed, slow_s=slow_s, hang_s=hang_s)) as server:
        pipe.send(server.base_url)
        pipe.recv()  # "stop"
        pipe.send({"requests": len(server.requests), "injected": dict(server.injected)})


def check(run_dir: Path, seeds: list[int], episodes: int) -> dict[str, int]:
    """Done / failed / not-run / lost / duplicate counts, read from the run dir's files alone."""
    from experiments.records.results import episode_files, iter_jsonl

    rows = [row for path in episode_files(run_dir) for row in iter_jsonl(path)]
    done = Counter((r["seed"], r["episode"]) for r in rows if r["status"] == "done")
    failed = {(r["seed"], r["episode"]) for r in rows if r["status"] == "failed" and r["error"]} - set(done)
    counts = {"done": len(done), "failed": len(failed), "not_run": 0, "lost": 0,
              "duplicates": sum(n - 1 for n in done.values())}
    for seed in seeds:
        stopped = False  # a stream stops at its failed episode; the later ones are "not run", not lost
        for k in range(episodes):
            if (seed, k) in done:
                continue
            if (seed, k) in failed:
                stopped = True
            elif stopped:
                counts["not_run"] += 1
            else:
                counts["lost"] += 1
    return counts


def one_case(streams: int, rate: float, episodes: int, max_steps: int, seed: int, slow_s: float, hang_s: float,
             timeout_s: float) -> dict[str, Any]:
    """Run one case in this process and return its figures."""
    from hydra import compose, initialize_config_dir

    from experiments.config import register_resolvers
    from experiments.run_agent import evaluate

    rss_start = rss_mb()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(rate, seed, slow_s, hang_s, child), daemon=True)
    server.start()
    base_url = parent.recv()
    seeds = list(range(streams))
    samples: list[float] = []
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            samples.append(rss_mb())
            time.sleep(0.25)

    with tempfile.TemporaryDirectory() as tmp:
        register_resolvers()
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("eval", overrides=[
                "env=cartpole", "agent=naive", "level=1", f"seeds=[{','.join(map(str, seeds))}]",
                f"episodes={episodes}", f"max_steps={max_steps}", f"concurrency={streams}", "llm=server",
                f"llm.base_url={base_url}", "llm.model=scripted", "llm.cache=off", f"llm.timeout_s={timeout_s}",
                "logger=none", "progress=false"])
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        outcome = evaluate(cfg, Path(tmp) / "run")
        wall = time.perf_counter() - started
        running.clear()
        sampler.join()
        counts = check(Path(tmp) / "run", seeds, episodes)
    parent.send("stop")
    served = parent.recv()
    server.join(timeout=10)
    return {"streams": streams, "fault_rate": rate, "episodes_wanted": streams * episodes, **counts,
            "retries": dict(sorted(outcome.retries.items())), "injected": dict(sorted(served["injected"].items())),
            "requests": served["requests"], "wall_s": round(wall, 1), "rss_start_mb": round(rss_start, 1),
            "rss_end_mb": round(rss_mb(), 1), "rss_max_sampled_mb": round(max(samples, default=rss_mb()), 1),
            "peak_rss_mb": round(max(peak_rss_mb(), rss_mb(), *samples), 1),
            # RSS a quarter, half, three quarters of the way through and at the end: flat, or growing?
            "rss_by_quarter_mb": [round(samples[min(len(samples) - 1, len(samples) * q // 4)], 1) for q in (1, 2, 3, 4)]
            if samples else [],
            "failure_reasons": dict(Counter(outcome.failed.values()).most_common(5))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.0, 0.3], help="share of faulty requests")
    parser.add_argument("--episodes", type=int, default=1, help="episodes per stream")
    parser.add_argument("--max-steps", type=int, default=10, help="steps per episode (the scripted reply loses)")
    parser.add_argument("--seed", type=int, default=1, help="fault seed")
    parser.add_argument("--slow-s", type=float, default=10.0, help="how late a 'slow' answer comes")
    parser.add_argument("--hang-s", type=float, default=1.0, help="how long a hang lasts before the drop")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="llm.timeout_s (a slower answer is retried)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # run a single case (child)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_case(args.streams[0], args.rates[0], args.episodes, args.max_steps, args.seed,
                                  args.slow_s, args.hang_s, args.timeout_s)))
        return
    results = []
    for rate in args.rates:
        for streams in args.streams:
            command = [sys.executable, __file__, "--one", "--streams", str(streams), "--rates", str(rate),
                       "--episodes", str(args.episodes), "--max-steps", str(args.max_steps), "--seed", str(args.seed),
                       "--slow-s", str(args.slow_s), "--hang-s", str(args.hang_s), "--timeout-s", str(args.timeout_s)]
            child = subprocess.run(command, capture_output=True, text=True, check=False)
            if child.returncode != 0:
                print(child.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"case streams={streams} rate={rate} failed ({child.returncode})")
            result = json.loads(child.stdout.strip().splitlines()[-1])
            results.append(result)
            print(f"{streams:4d} streams, {rate:.0%} faults: {result['done']}/{result['episodes_wanted']} done, "
                  f"{result['failed']} failed, {result['not_run']} not run, {result['lost']} lost, "
                  f"{result['duplicates']} duplicates; {result['requests']} requests in {result['wall_s']} s; "
                  f"RSS {result['rss_start_mb']} -> {result['rss_end_mb']} MB (peak {result['peak_rss_mb']} MB; by "
                  f"quarter of the run {result['rss_by_quarter_mb']})",
                  flush=True)
            if result["retries"] or result["injected"]:
                print(f"      retries {result['retries']}\n      injected {result['injected']}", flush=True)
            if result["failure_reasons"]:
                print(f"      failures {result['failure_reasons']}", flush=True)
    lost = sum(r["lost"] + r["duplicates"] for r in results)
    print(json.dumps(results, indent=1))
    if lost:
        raise SystemExit(f"{lost} episodes lost or duplicated")


if __name__ == "__main__":
    main()
