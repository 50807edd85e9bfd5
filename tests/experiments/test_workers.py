"""workers=N: a run's streams spread over N processes give the one-process run's files; the parent writes them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from agents.llm.client import LLMClient
from agents.llm.transport import HTTPTransport
from experiments.config import register_resolvers
from experiments.records.results import EpisodeKey, iter_jsonl, load_episodes, load_state
from experiments.records.transcripts import Transcript
from experiments.run_agent import evaluate_async
from experiments.running.workers import prepare_workers, worker_context
from tests.experiments.conftest import default_sigint, run_cli, untimed
from tests.fake_llm_server import FakeLLMServer

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def _args(server: FakeLLMServer, tmp_path: Path, results: str, *extra: str) -> list[str]:
    # L3 with 2 episodes a stream: the second episode starts from what the first taught (its saved state).
    return ["experiments.run_agent", "agent=naive", "level=3", "seeds=[0,1,2,3,4]", "episodes=2", "max_steps=5",
            "concurrency=4", "llm=server", f"llm.base_url={server.base_url}", "llm.model=scripted", "llm.cache=off",
            "logger=none", "progress=false", f"results_dir={tmp_path / results}", *extra]


def test_workers_write_what_one_process_writes(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        run_cli(_args(server, tmp_path, "one"), cwd=tmp_path)
        result = run_cli(_args(server, tmp_path, "two", "workers=2"), cwd=tmp_path)
    assert "10 episodes done, 0 failed" in result.stdout
    assert "cartpole L3 naive: 5 streams in 2 worker processes" in result.stderr + result.stdout
    one, two = (tmp_path / name / "eval" / "cartpole-L3-naive" for name in ("one", "two"))
    assert untimed(load_episodes([two])) == untimed(load_episodes([one]))
    assert untimed(list(iter_jsonl(two / "steps.jsonl"))) == untimed(list(iter_jsonl(one / "steps.jsonl")))
    # One writer: the plain files only, every LLM call on record with its texts, every state saved.
    assert sorted(p.name for p in two.glob("*.jsonl")) == ["calls.jsonl", "episodes.jsonl", "steps.jsonl",
                                                           "texts.jsonl"]
    rows = load_episodes([two])
    calls = Transcript(two).calls_by_episode()
    assert len(calls) == 10 and sum(map(len, calls.values())) == sum(row["llm_calls"] for row in rows)
    assert len(list((two / "agent_state").glob("*.jsonl"))) == 5  # a file a stream
    keys = [EpisodeKey.of(row) for row in rows]
    assert all(load_state(two, key) == load_state(one, key) is not None for key in keys)


def test_an_interrupted_run_with_workers_resumes_without_duplicates(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        server.delay_s = 0.05
        args = _args(server, tmp_path, "runs", "workers=2")
        episodes = tmp_path / "runs" / "eval" / "cartpole-L3-naive" / "episodes.jsonl"
        process = subprocess.Popen([sys.executable, "-m", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint,
                                   env={**os.environ, "WANDB_MODE": "disabled"})
        deadline = time.time() + 120
        while time.time() < deadline and len(list(iter_jsonl(episodes))) < 2:
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr[-2000:]
        before = list(iter_jsonl(episodes))
        assert 2 <= len(before) < 10
        result = run_cli(args, cwd=tmp_path)
    assert "10 episodes done, 0 failed" in result.stdout
    rows = list(iter_jsonl(episodes))
    keys = [(r["seed"], r["episode"]) for r in rows]
    assert sorted(keys) == [(s, e) for s in range(5) for e in range(2)] and len(set(keys)) == len(keys)
    assert rows[: len(before)] == before
    steps = list(iter_jsonl(episodes.with_name("steps.jsonl")))
    assert len(steps) == sum(r["steps"] for r in rows)


def test_workers_must_be_a_positive_int(tmp_path: Path) -> None:
    result = run_cli(["experiments.run_agent", "agent=random", "workers=0", "logger=none", "progress=false",
                      f"results_dir={tmp_path}"], cwd=tmp_path, check=False)
    assert result.returncode == 2 and "workers must be an int >= 1 or auto, got 0" in result.stderr


def test_episodes_from_workers_are_logged_to_wandb(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        args = [a for a in _args(server, tmp_path, "runs", "workers=2") if a != "logger=none"]
        run_cli([*args, "logger=wandb", "seeds=[0,1]", "episodes=1"], cwd=tmp_path, env={"WANDB_MODE": "offline"})
    (log,) = (tmp_path / "runs").rglob("*.wandb")
    assert log.read_bytes().count(b"episode/return") >= 2  # each episode's metrics, logged by the parent


def test_workers_fork_from_the_preloaded_server_yet_see_the_parent_as_it_is_now(tmp_path: Path, monkeypatch) -> None:
    # The fork server starts (and imports TextGym) first; the key, the working directory and the import path change
    # after. A worker must still send the key set since, resolve relative paths where the parent stands and import
    # the user's agent from the folder put on sys.path, as a spawned one would.
    assert worker_context().get_start_method() == "forkserver"  # Linux: workers do not import TextGym again
    prepare_workers()
    monkeypatch.setenv("TEXTGYM_TEST_WORKER_KEY", "sk-set-after-the-fork-server")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "late_agents.py").write_text(
        "from agents.naive import NaiveAgent\n\nclass LateNaive(NaiveAgent):\n    name = 'late_naive'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    register_resolvers()
    with FakeLLMServer() as server, initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        server.api_key = "sk-set-after-the-fork-server"
        cfg = compose("eval", overrides=["agent=naive", "agent._target_=late_agents.LateNaive", "llm=server",
                                         f"llm.base_url={server.base_url}", "llm.model=scripted", "llm.cache=off",
                                         "seeds=[0,1,2,3]", "episodes=1", "max_steps=3", "concurrency=4",
                                         "workers=2", "logger=none", "progress=false"])
        client = LLMClient("scripted", HTTPTransport(server.base_url, "TEXTGYM_TEST_WORKER_KEY", max_concurrency=4))
        outcome = asyncio.run(evaluate_async(cfg, "runs/relative", client))
    assert (outcome.done, outcome.failed) == (4, {})
    rows = load_episodes([tmp_path / "runs" / "relative"])
    assert {row["agent"] for row in rows} == {"late_naive"}
    assert len(server.authorizations) == 12
    assert set(server.authorizations) == {"Bearer sk-set-after-the-fork-server"}


def test_workers_start_inside_a_hydra_joblib_sweep(tmp_path: Path) -> None:
    # Each sweep job runs in a loky process, whose default start method is loky's: a worker started from there is
    # told to use it, so the fork server must know it too (before, no worker could start: 0 episodes done).
    with FakeLLMServer() as server:
        args = [a for a in _args(server, tmp_path, "runs", "workers=2") if a not in ("level=3", "episodes=2")]
        result = run_cli([args[0], "-m", "hydra/launcher=joblib", "level=1,5", *args[1:]], cwd=tmp_path)
    assert result.stdout.count("5 episodes done, 0 failed") == 2, result.stdout[-2000:]
    for level in (1, 5):
        run_dir = tmp_path / "runs" / "sweep" / f"cartpole-L{level}-naive"
        assert sorted(row["seed"] for row in load_episodes([run_dir])) == [0, 1, 2, 3, 4]
