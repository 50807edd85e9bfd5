"""textgym-eval and textgym-compare under faults, bad input and signals, as real processes on real sockets.

The LLM is tests/fake_llm_server.py on 127.0.0.1: scripted replies (so runs are exact), seeded faults, and a
responder that breaks for chosen prompts (the handler dies and the connection drops, as a crashing server's
does). Exit statuses: 0 all done, 1 something failed (after the summary), 2 config error (one line),
130/143 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from experiments.records.results import iter_jsonl, load_episodes
from tests.experiments.conftest import default_sigint, run_cli, untimed
from tests.fake_llm_server import FakeLLMServer, Faults, first_action_responder


def _llm_args(server: FakeLLMServer, tmp_path: Path) -> list[str]:
    return ["llm=server", f"llm.base_url={server.base_url}", "llm.model=scripted", "llm.cache=off",
            f"llm.cache_path={tmp_path / 'cache.sqlite'}", "logger=none", "progress=false"]


def _breaks_on(word: str):
    """A responder that crashes (dropping the connection) for any request whose prompt mentions ``word``."""

    def responder(request: dict[str, Any]) -> str:
        if any(word in message["content"].lower() for message in request["messages"]):
            raise ConnectionAbortedError(f"the scripted server breaks on {word!r} prompts")
        return first_action_responder(request)

    return responder


# ---- exit status 2: one clean line ------------------------------------------------------------------

@pytest.mark.parametrize(("args", "says"), [
    (["agent=random", "level=7"], "textgym-eval: error: level=7 is not a level: expected one of [1, 2, 3, 4, 5]"),
    (["agent=random", "seeds=[1,-2]"], "textgym-eval: error: seeds must be a non-empty list of ints >= 0"),
    (["agent=random", "shard=5/4"], "textgym-eval: error: shard must be i/n with 1 <= i <= n"),
    (["agent=random", "+env.kwargs.gravity_well=1"], "textgym-eval: error: cannot build env=cartpole"),
    (["agent=naive", "llm=openai", "llm.api_key_env=TEXTGYM_SURELY_UNSET_KEY"],
     "textgym-eval: error: llm.api_key_env=TEXTGYM_SURELY_UNSET_KEY names an unset environment variable"),
    (["agent=naive", "llm=server", "llm.base_url=http://127.0.0.1:9/v1", "llm.model=m"],
     "textgym-eval: error: no OpenAI-compatible server at http://127.0.0.1:9/v1 (connection refused)"),
])
def test_config_errors_exit_2_with_one_line(args: list[str], says: str, tmp_path: Path) -> None:
    result = run_cli(["experiments.run_agent", *args, f"results_dir={tmp_path}", "logger=none"], cwd=tmp_path,
                     check=False, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and "WARNING" not in line]
    assert lines == [lines[-1]] and lines[-1].startswith(says), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    for extra, env in ((["verbose=true"], {}), ([], {"HYDRA_FULL_ERROR": "1"})):
        result = run_cli(["experiments.run_agent", "agent=random", "level=9", *extra, f"results_dir={tmp_path}",
                          "logger=none"], cwd=tmp_path, check=False, env=env, timeout=120)
        assert result.returncode == 2 and "Traceback" in result.stderr
        assert result.stderr.rstrip().endswith("textgym-eval: error: level=9 is not a level: expected one of "
                                               "[1, 2, 3, 4, 5]")


@pytest.mark.parametrize("args", [["agent=navie"], ["env=cartpol"], ["lvl=3"]])
def test_configs_hydra_cannot_compose_exit_2(args: list[str], tmp_path: Path) -> None:
    result = run_cli(["experiments.run_agent", *args, f"results_dir={tmp_path}"], cwd=tmp_path, check=False,
                     timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert args[0].split("=")[0].lstrip("+") in result.stderr


# ---- faults: every seed done once or failed with its reason; the rerun fixes them; no secret anywhere ----

def test_faulty_server_run_records_failures_and_rerun_fixes_them(tmp_path: Path) -> None:
    secret = "sk-test-SECRET-7f3a9c0e5d"
    faults = Faults(rate=0.3, seed=3, slow_s=0.2, hang_s=0.2)
    with FakeLLMServer(faults=faults) as server:
        server.api_key = secret  # the server refuses requests without it
        args = ["experiments.run_agent", "agent=naive", "seeds=[0,1,2,3,4,5,6,7]", "concurrency=8", "max_steps=5",
                "llm.api_key_env=TEXTGYM_TEST_KEY", "llm.timeout_s=2", "llm.max_retries=0",
                f"results_dir={tmp_path / 'runs'}", *_llm_args(server, tmp_path)]
        env = {"TEXTGYM_TEST_KEY": secret}
        first = run_cli(args, cwd=tmp_path, env=env, check=False, timeout=300)
        run_dir = tmp_path / "runs" / "eval" / "cartpole-L1-naive"
        rows = list(iter_jsonl(run_dir / "episodes.jsonl"))
        assert sorted(r["seed"] for r in rows) == list(range(8))  # every seed once: done or failed
        failed = [r for r in rows if r["status"] == "failed"]
        done = [r for r in rows if r["status"] == "done"]
        assert failed, f"30% faults without retries failed nothing: {server.injected}"
        for row in failed:
            assert row["return"] is None and row["error"].startswith("LLMError") and row["error"].count(":") >= 2
        assert all(r["error"] is None and r["steps"] == 5 for r in done)
        assert first.returncode == 1, first.stderr[-2000:]
        assert f"{len(done)} episodes done, {len(failed)} failed: " in first.stdout
        assert "run the same command again to retry" in first.stdout
        assert sum(server.injected.values()) > 0
        steps = list(iter_jsonl(run_dir / "steps.jsonl"))
        assert sorted({s["seed"] for s in steps}) == sorted(r["seed"] for r in done)  # failed ones left no steps

        server.faults = Faults()  # healthy again: the same command retries exactly the failed episodes
        requests_before = len(server.requests)
        second = run_cli(args, cwd=tmp_path, env=env, check=False, timeout=300)
        assert second.returncode == 0, second.stderr[-2000:]
        assert "8 episodes done, 0 failed" in second.stdout
        assert len(server.requests) - requests_before == 5 * len(failed)
        final = load_episodes([run_dir])
        assert sorted(r["seed"] for r in final) == list(range(8)) and all(r["status"] == "done" for r in final)
        assert untimed([r for r in final if r["seed"] in {d["seed"] for d in done}]) == untimed(done)

        # The key went out in the Authorization header and nowhere else: no request body, file, or log line.
        assert server.authorizations and set(server.authorizations) == {f"Bearer {secret}"}
        assert secret not in json.dumps(server.requests)
        for output in (first.stdout, first.stderr, second.stdout, second.stderr):
            assert secret not in output
        written = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
        assert any(p.suffix == ".log" for p in written) and any(p.name == "config.yaml" for p in written)
        for path in written:
            assert secret not in path.read_text(errors="ignore"), path


def test_agent_exception_ends_only_its_stream(fake_llm, tmp_path: Path) -> None:
    package = tmp_path / "flaky_agents"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from agents.random import RandomAgent\n\n"
        "class Flaky(RandomAgent):\n"
        "    name = 'flaky'\n"
        "    async def _act(self, observation, info):\n"
        "        if self.seed == 1 and self.context.episode_index == 1 and len(self.transitions) == 2:\n"
        "            raise KeyError('memory slot')\n"
        "        return await super()._act(observation, info)\n"
    )
    args = ["experiments.run_agent", "agent=custom", "agent._target_=flaky_agents.Flaky", "seeds=[0,1,2]",
            "episodes=3", "max_steps=10", f"results_dir={tmp_path / 'runs'}", "logger=none", "progress=false"]
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{Path(__file__).resolve().parents[2]}"}
    result = run_cli(args, cwd=tmp_path, env=env, check=False)
    assert result.returncode == 1
    assert "7 episodes done, 1 failed: KeyError: 'memory slot' (x1)" in result.stdout
    assert "1 episodes not run" in result.stdout
    rows = list(iter_jsonl(tmp_path / "runs" / "eval" / "cartpole-L1-flaky" / "episodes.jsonl"))
    by_key = {(r["seed"], r["episode"]): r for r in rows}
    assert len(rows) == 8 and (1, 2) not in by_key  # the stream stopped at its failed episode
    assert by_key[(1, 1)]["status"] == "failed" and by_key[(1, 1)]["steps"] == 2
    assert all(r["status"] == "done" for k, r in by_key.items() if k != (1, 1))


# ---- signals: abandon what is in flight, keep what is done, resume to the same episodes ----------------

def _slow_eval_args(server: FakeLLMServer, tmp_path: Path, results: str) -> list[str]:
    return ["experiments.run_agent", "agent=naive", "level=3", "seeds=[0,1,2]", "episodes=2", "max_steps=8",
            "concurrency=3", f"results_dir={tmp_path / results}", *_llm_args(server, tmp_path)]


def _run_files(run_dir: Path) -> tuple[dict, dict]:
    return (untimed(list(iter_jsonl(run_dir / "episodes.jsonl"))),
            untimed(list(iter_jsonl(run_dir / "steps.jsonl"))))


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                                 (signal.SIGKILL, -signal.SIGKILL)])
def test_interrupted_run_resumes_to_the_uninterrupted_episodes(signum: int, status: int, tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        server.delay_s = 0.05
        run_cli(_slow_eval_args(server, tmp_path, "whole"), cwd=tmp_path)
        expected = _run_files(tmp_path / "whole" / "eval" / "cartpole-L3-naive")
        assert len(expected[0]) == 6

        args = _slow_eval_args(server, tmp_path, "cut")
        run_dir = tmp_path / "cut" / "eval" / "cartpole-L3-naive"
        process = subprocess.Popen([sys.executable, "-m", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env={**os.environ, "WANDB_MODE": "disabled"},
                                   preexec_fn=default_sigint)
        deadline = time.time() + 120
        while time.time() < deadline and not list(iter_jsonl(run_dir / "episodes.jsonl")):
            time.sleep(0.02)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == status, stderr[-2000:]
        finished = list(iter_jsonl(run_dir / "episodes.jsonl"))
        assert 1 <= len(finished) < 6 and all(r["status"] == "done" for r in finished)
        if signum != signal.SIGKILL:
            assert "interrupted by " + signal.Signals(signum).name in stderr
            assert "run the same command again to resume" in stderr and "Traceback" not in stderr

        result = run_cli(args, cwd=tmp_path)
        assert "6 episodes done, 0 failed" in result.stdout
        assert list(iter_jsonl(run_dir / "episodes.jsonl"))[: len(finished)] == finished  # kept as they were
        assert _run_files(run_dir) == expected


# ---- sweeps and compare: one failing part, the others go on --------------------------------------------

@pytest.mark.parametrize("launcher", ["basic", "joblib", "submitit_local"])
def test_a_failing_sweep_job_leaves_the_others_alone(launcher: str, tmp_path: Path) -> None:
    with FakeLLMServer(_breaks_on("blackjack")) as server:
        result = run_cli(["experiments.run_agent", "-m", "env=cartpole,blackjack", "agent=naive", "seeds=[0,1]",
                          "max_steps=3", "llm.max_retries=0", f"results_dir={tmp_path / 'runs'}",
                          *([] if launcher == "basic" else [f"hydra/launcher={launcher}"]),
                          *_llm_args(server, tmp_path)], cwd=tmp_path, check=False, timeout=600)
    assert result.returncode == 1
    sweep = tmp_path / "runs" / "sweep"
    cartpole = list(iter_jsonl(sweep / "cartpole-L1-naive" / "episodes.jsonl"))
    blackjack = list(iter_jsonl(sweep / "blackjack-L1-naive" / "episodes.jsonl"))
    assert sorted(r["seed"] for r in cartpole) == [0, 1] and all(r["status"] == "done" for r in cartpole)
    assert sorted(r["seed"] for r in blackjack) == [0, 1] and all(r["status"] == "failed" for r in blackjack)
    if launcher != "submitit_local":  # submitit keeps each job's output in its own log files
        assert "2 episodes done, 0 failed" in result.stdout and "0 episodes done, 2 failed: LLMError" in result.stdout
    assert "blackjack-L1-naive: 0 episodes done, 2 failed" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]


def test_compare_reports_whatever_failed_and_exits_1(tmp_path: Path, capsys) -> None:
    from experiments.compare import main

    results = tmp_path / "cmp"
    conflict = results / "eval" / "cartpole-L1-self_ask"
    conflict.mkdir(parents=True)
    (conflict / "run_identity.json").write_text(json.dumps({"env": "another"}))
    with FakeLLMServer(_breaks_on("step by step")) as server:
        args = ["envs=[cartpole]", "levels=[1]", "agents=[naive,cot,self_ask]", "seeds=[0,1]", "episodes=1",
                "max_steps=4", "ppo_overrides=['ppo.n_timesteps=256','ppo.n_envs=1','ppo.model.n_steps=256']",
                "llm=server", f"llm.base_url={server.base_url}", "llm.model=scripted", "llm.max_retries=0",
                "logger=none", f"llm.cache_path={tmp_path / 'cache.sqlite'}", f"results_dir={results}",
                "progress=false", "per_env=null", "anchor_episodes=null"]  # the demo's caps off: 1 episode a seed
        with pytest.raises(SystemExit) as stop:
            main(args)
        assert stop.value.code == 1
        out = capsys.readouterr().out
        report = (results / "report" / "report.md").read_text()
        for text in (out, report):
            assert "| cartpole | 1 | naive | scripted | 2 | 2 |" in text  # the healthy group is reported
            assert "| eval cartpole-L1-self_ask | | | | all | RunIdentityError:" in text
        cot = [r for r in load_episodes([results / "eval"], include_failed=True) if r["agent"] == "cot"]
        assert len(cot) == 2 and all(r["status"] == "failed" for r in cot)  # its prompts break the server
        assert "| cartpole | 1 | cot | scripted | 2 | LLMError:" in report
        assert "| cartpole | 1 | cot | scripted | 0 | 0 | n/a |" in report
        assert "1 parts failed as a whole: eval cartpole-L1-self_ask: RunIdentityError" in out

        # Fixed: the rerun retries what failed and exits normally.
        (conflict / "run_identity.json").unlink()
        server.responder = first_action_responder
        main(args)
        rows = load_episodes([results / "eval"], include_failed=True)
        assert {r["agent"] for r in rows} == {"random", "naive", "cot", "self_ask"}
        assert all(r["status"] == "done" for r in rows) and len(rows) == 4 * 2


# ---- load: many streams at once, every episode accounted for (figures: benchmarks/load.py) --------------

def test_32_streams_under_30_percent_faults_lose_nothing(tmp_path: Path) -> None:
    from experiments.run_agent import evaluate
    from tests.experiments.conftest import compose_config

    with FakeLLMServer(faults=Faults(rate=0.3, seed=5, slow_s=0.3, hang_s=0.2)) as server:
        cfg = compose_config("eval", [
            "agent=naive", f"seeds=[{','.join(map(str, range(32)))}]", "episodes=2", "max_steps=4",
            "concurrency=32", "llm.timeout_s=1", "llm.max_retries=2", "+llm.backoff_s=0.01", "+llm.max_backoff_s=0.05",
            "+llm.max_retry_after_s=0.05", *_llm_args(server, tmp_path)])
        outcome = evaluate(cfg, tmp_path / "run")
    rows = list(iter_jsonl(tmp_path / "run" / "episodes.jsonl"))
    keys = [(r["seed"], r["episode"]) for r in rows]
    assert len(keys) == len(set(keys))  # nothing twice
    failed = {k for k, r in zip(keys, rows, strict=True) if r["status"] == "failed"}
    assert all(r["error"] for r in rows if r["status"] == "failed")
    for seed in range(32):  # each episode done, or failed, or after a failure in its stream; none lost
        first_failure = next((k for s, k in sorted(failed) if s == seed), None)
        expected = [(seed, k) for k in range(2 if first_failure is None else first_failure + 1)]
        assert sorted(k for k in keys if k[0] == seed) == expected
    assert outcome.done == len(keys) - len(failed) and len(outcome.failed) == len(failed)
    assert outcome.done + len(failed) + outcome.not_run == 64
    assert sum(outcome.retries.values()) > 0 and sum(server.injected.values()) > 0
