"""shard=i/n: shards of one evaluation run as separate processes into one run dir and add up to the whole run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from experiments.records.results import iter_jsonl, load_episodes
from tests.experiments.conftest import REPO_ROOT, run_cli, untimed
from tests.fake_llm_server import FakeLLMServer

SEEDS = "[" + ",".join(map(str, range(16))) + "]"


def _steps(run_dir: Path) -> list[dict]:
    return [row for path in sorted(run_dir.glob("steps*.jsonl")) for row in iter_jsonl(path)]


def test_four_parallel_shards_give_the_unsharded_run(tmp_path: Path) -> None:
    args = ["experiments.run_agent", "agent=random", "env=frozenlake", f"seeds={SEEDS}", "episodes=2",
            "logger=none", "progress=false"]
    run_cli([*args, f"results_dir={tmp_path / 'whole'}"], cwd=tmp_path)
    whole = tmp_path / "whole" / "eval" / "frozenlake-L1-random"

    env = {**os.environ, "WANDB_MODE": "disabled"}
    shards = [subprocess.Popen([sys.executable, "-m", *args, f"shard={i}/4", f"results_dir={tmp_path / 'split'}"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for i in range(1, 5)]
    outputs = [shard.communicate(timeout=300) for shard in shards]
    assert [shard.returncode for shard in shards] == [0] * 4, outputs
    for stdout, _ in outputs:
        assert "8 episodes done, 0 failed" in stdout  # 4 seeds x 2 episodes each
    split = tmp_path / "split" / "eval" / "frozenlake-L1-random"
    assert sorted(p.name for p in split.glob("episodes*.jsonl")) == [f"episodes.shard{i}of4.jsonl" for i in range(1, 5)]
    # Shard i holds seeds[i-1::4], by position in the list.
    assert sorted({r["seed"] for r in iter_jsonl(split / "episodes.shard2of4.jsonl")}) == [1, 5, 9, 13]
    assert "shard" not in (split / "run_identity.json").read_text()
    assert untimed(load_episodes([split])) == untimed(load_episodes([whole]))
    assert untimed(_steps(split)) == untimed(_steps(whole))

    # textgym-report over the shards' run dir prints the unsharded table (up to the cost section, whose
    # wall-seconds differ from run to run).
    tables = [[line for line in run_cli(["experiments.reports.report", f"results=[{d}]",
                                         f"out_dir={tmp_path / d.parent.parent.name}-report"],
                                        cwd=REPO_ROOT).stdout.split("\n## Cost")[0].splitlines()
               if line.startswith("|")]
              for d in (whole, split)]
    assert tables[0] == tables[1] and tables[0][2].startswith("| frozenlake | 1 | random | - | 16 | 32 |")

    # The unsharded command over the shards' dir finds everything done.
    again = run_cli([*args, f"results_dir={tmp_path / 'split'}"], cwd=tmp_path)
    assert "32 episodes done, 0 failed" in again.stdout and not (split / "episodes.jsonl").exists()


def test_a_killed_shard_reruns_to_completion_without_duplicates(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        server.delay_s = 0.03
        args = ["experiments.run_agent", "agent=naive", f"seeds={SEEDS}", "episodes=2", "max_steps=6",
                "concurrency=2", "shard=3/4", "llm=server", f"llm.base_url={server.base_url}", "llm.model=scripted",
                "llm.cache=off", f"llm.cache_path={tmp_path / 'cache.sqlite'}", "logger=none", "progress=false",
                f"results_dir={tmp_path / 'runs'}"]
        run_dir = tmp_path / "runs" / "eval" / "cartpole-L1-naive"
        episodes = run_dir / "episodes.shard3of4.jsonl"
        process = subprocess.Popen([sys.executable, "-m", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env={**os.environ, "WANDB_MODE": "disabled"})
        deadline = time.time() + 120
        while time.time() < deadline and len(list(iter_jsonl(episodes))) < 2:
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        before = list(iter_jsonl(episodes))
        assert 2 <= len(before) < 8
        result = run_cli(args, cwd=tmp_path)
    assert "8 episodes done, 0 failed" in result.stdout
    rows = list(iter_jsonl(episodes))
    keys = [(r["seed"], r["episode"]) for r in rows]
    assert sorted(keys) == [(s, e) for s in (2, 6, 10, 14) for e in range(2)] and len(set(keys)) == len(keys)
    assert rows[: len(before)] == before
    steps = list(iter_jsonl(run_dir / "steps.shard3of4.jsonl"))
    assert len(steps) == sum(r["steps"] for r in rows)  # the killed episodes left no step lines
    calls = list(iter_jsonl(run_dir / "calls.shard3of4.jsonl"))
    assert len(calls) == sum(r["llm_calls"] for r in rows)  # nor LLM calls
    assert sorted(p.name for p in run_dir.glob("*.jsonl")) == [
        "calls.shard3of4.jsonl", "episodes.shard3of4.jsonl", "steps.shard3of4.jsonl", "texts.shard3of4.jsonl"]
