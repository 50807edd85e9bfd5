"""Seconds and new prompt tokens per decision of language agents on the embedded model (SmolLM2-135M).

    python benchmarks/llm_decision_latency.py                   # naive and EXE at L1 and L5 on CartPole
    python benchmarks/llm_decision_latency.py --streams 4 --set agent.history_trim=block
    python benchmarks/llm_decision_latency.py --agents naive --levels 1 --set llm.context_per_slot=2048

Each case (agent x level) is a real ``textgym-eval`` run (``experiments.run_agent.evaluate``) into a temporary
dir, with ``llm=local`` exactly as ``conf/llm/local.yaml`` sets it (plus any ``--set`` override) and the response
cache off, on a freshly started embedded server (so every case starts with a cold prompt cache). ``--streams N``
runs seeds 0..N-1 at once (``concurrency=N``), as ``textgym-eval seeds=[...]`` does. Printed per case, from the
run's result files:

- ``s/decision``: a stream's wall time (reset, every step, the calls after the last step, e.g. EXE's summary
  and insight at L3) over its env steps, all streams added up: how long an agent waits per decision.
- ``decisions/s``: all streams' env steps over the longest stream's wall time (throughput; streams start
  together).
- ``new prompt tok/decision``: prompt tokens the server read anew, that is prompt tokens minus those it
  served from its prefix cache (llama.cpp's ``timings.cache_n``), per env step; ``prompt tok/decision``
  is all of them, ``completion tok/decision`` what it generated.
- ``LLM s/decision``: the time the agents' requests took (server queueing included), per env step.
- ``other CPU``: cores that other processes kept busy meanwhile (from ``/proc/stat``): the figures only hold
  for a machine left alone, so a case with other CPU well above 0 should be measured again.

The settings each case ran with are printed first. Run it alone: the embedded server uses every core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from experiments.config import register_resolvers  # noqa: E402
from experiments.records.results import EpisodeKey, load_episodes  # noqa: E402
from experiments.reports.report import episodes_reporting_cache  # noqa: E402
from experiments.run_agent import evaluate  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


@dataclass
class Case:
    """What one agent x level run measured."""

    agent: str
    level: int
    episodes: int
    steps: int
    s_per_decision: float
    decisions_per_s: float
    llm_s_per_decision: float
    calls_per_decision: float
    prompt_per_decision: float
    new_prompt_per_decision: float | None
    completion_per_decision: float
    mean_return: float
    other_cores: float | None


def _busy_cpu_s() -> float | None:
    """CPU seconds every process has used since boot (Linux), or None where /proc/stat is missing."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def compose_case(agent: str, level: int, args: argparse.Namespace, results_dir: Path) -> DictConfig:
    register_resolvers()
    seeds = ",".join(map(str, range(args.streams)))
    overrides = [f"env={args.env}", f"agent={agent}", f"level={level}", f"seeds=[{seeds}]",
                 f"episodes={args.episodes}", f"max_steps={args.max_steps}", f"concurrency={args.streams}",
                 "llm=local", "llm.cache=off", "logger=none", "progress=false", f"results_dir={results_dir}",
                 *args.set]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="eval", overrides=overrides)


def measure(agent: str, cfg: DictConfig, run_dir: Path) -> Case:
    started, busy_before, own_before = time.perf_counter(), _busy_cpu_s(), _own_cpu_s()
    outcome = evaluate(cfg, run_dir)
    busy_after, wall = _busy_cpu_s(), time.perf_counter() - started
    other_cores = (None if busy_before is None or busy_after is None
                   else max(0.0, busy_after - busy_before - (_own_cpu_s() - own_before)) / wall)
    if outcome.failed:
        raise RuntimeError(f"{cfg.agent._target_} L{cfg.level}: {len(outcome.failed)} episodes failed: "
                           f"{sorted(set(outcome.failed.values()))}")
    rows = load_episodes([run_dir])
    steps = sum(int(r["steps"]) for r in rows)
    wall_by_stream: dict[int, float] = defaultdict(float)
    for row in rows:
        wall_by_stream[int(row["seed"])] += float(row["wall_time_s"])

    def per_decision(field: str) -> float:
        return sum(float(r[field] or 0) for r in rows) / steps

    reported = episodes_reporting_cache(rows, [run_dir])
    known = all(EpisodeKey.of(r) in reported for r in rows)
    return Case(
        agent=agent, level=int(cfg.level),
        episodes=len(rows), steps=steps, s_per_decision=sum(wall_by_stream.values()) / steps,
        decisions_per_s=steps / max(wall_by_stream.values()), llm_s_per_decision=per_decision("llm_latency_s"),
        calls_per_decision=per_decision("llm_calls"), prompt_per_decision=per_decision("prompt_tokens"),
        new_prompt_per_decision=per_decision("prompt_tokens") - per_decision("cached_prompt_tokens") if known else None,
        completion_per_decision=per_decision("completion_tokens"),
        mean_return=sum(float(r["return"]) for r in rows) / len(rows), other_cores=other_cores,
    )


def settings_text(cfg: DictConfig, args: argparse.Namespace) -> str:
    llm = {key: value for key, value in OmegaConf.to_container(cfg.llm, resolve=True).items()  # type: ignore[union-attr]
           if key not in ("cache_path", "prices", "api_key_env", "base_url")}
    agent_overrides = [o for o in args.set if o.startswith(("agent.", "+agent."))]
    return "\n".join([
        f"env {args.env}, {args.streams} stream(s) at once (seeds 0-{args.streams - 1}), {args.episodes} episode(s) "
        f"per stream, at most {args.max_steps} steps each, protocol {cfg.protocol.get('name', 'textgym')}; "
        f"{os.cpu_count()} CPU cores",
        f"llm: {llm}",
        f"overrides: {args.set or 'none'}" + ("" if agent_overrides else " (agents as conf/agent/<name>.yaml)"),
    ])


def _fmt(value: float | None, digits: int) -> str:
    return "unknown" if value is None else f"{value:.{digits}f}"


def table(cases: list[Case]) -> str:
    lines = ["| agent | level | episodes | steps | s/decision | decisions/s | LLM s/decision | calls/decision "
             "| prompt tok/decision | new prompt tok/decision | completion tok/decision | mean return | other CPU |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cases:
        lines.append(f"| {c.agent} | L{c.level} | {c.episodes} | {c.steps} | {c.s_per_decision:.3f} "
                     f"| {c.decisions_per_s:.2f} | {c.llm_s_per_decision:.3f} | {c.calls_per_decision:.2f} "
                     f"| {c.prompt_per_decision:.0f} | {_fmt(c.new_prompt_per_decision, 0)} "
                     f"| {c.completion_per_decision:.1f} | {c.mean_return:.1f} | {_fmt(c.other_cores, 2)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", nargs="+", default=["naive", "exe"], help="conf/agent/<name>.yaml names")
    parser.add_argument("--levels", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--env", default="cartpole", help="conf/env/<name>.yaml name")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per stream")
    parser.add_argument("--streams", type=int, default=1, help="streams (seeds) run at once")
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override of textgym-eval's config (repeatable), e.g. llm.parallel=2 or "
                             "agent.history_trim=block")
    args = parser.parse_args()
    cases = []
    with tempfile.TemporaryDirectory(prefix="llm-latency-") as scratch:
        for agent in args.agents:
            for level in args.levels:
                cfg = compose_case(agent, level, args, Path(scratch))
                if not cases:
                    print(settings_text(cfg, args), flush=True)
                started = time.perf_counter()
                cases.append(measure(agent, cfg, Path(scratch) / f"{agent}-L{level}"))
                print(f"{agent} L{level}: done in {time.perf_counter() - started:.0f}s (server start included)",
                      file=sys.stderr, flush=True)
    print(table(cases))


if __name__ == "__main__":
    main()
