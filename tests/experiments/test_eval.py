"""textgym-eval through Hydra's compose API and as a real CLI: results, resume, sweeps, plug-ins, secrets."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from agents.base import prompt_templates_fingerprint
from experiments.records.results import RunIdentityError, iter_jsonl, load_episodes
from experiments.run_agent import evaluate
from experiments.running.gc_tuning import STREAMING_GC_THRESHOLDS, streaming_gc
from tests.experiments.conftest import REPO_ROOT, compose_config, run_cli
from textgym.registration import ENVS

AGENTS = ["random", "naive", "cot", "self_consistency", "self_ask", "spp", "reflexion", "exe"]


@pytest.mark.parametrize("agent", AGENTS)
@pytest.mark.parametrize("env", list(ENVS))
def test_every_env_and_agent_composes(env: str, agent: str) -> None:
    cfg = compose_config("eval", [f"env={env}", f"agent={agent}", "level=3"])
    assert cfg.env.name == env and cfg.agent._target_.startswith("agents.")


def test_unknown_names_list_what_exists() -> None:
    with pytest.raises(MissingConfigException, match=r"(?s)Available options.*naive"):
        compose_config("eval", ["agent=navie"])
    with pytest.raises(MissingConfigException, match=r"(?s)Available options.*cartpole"):
        compose_config("eval", ["env=cartpol"])
    with pytest.raises(ConfigCompositionException, match="lvl"):
        compose_config("eval", ["lvl=3"])


def test_bad_values_are_named(tmp_path: Path) -> None:
    cfg = compose_config("eval", ["agent=random", "level=7", "logger=none"])
    with pytest.raises(ValueError, match=r"level=7 is not a level: expected one of \[1, 2, 3, 4, 5\]"):
        evaluate(cfg, tmp_path)


def test_eval_writes_results_and_resumes(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    overrides = ["env=cartpole", "agent=naive", "level=3", "seeds=[0,1]", "episodes=2", "max_steps=4",
                 "concurrency=2", "llm.cache=off", *fake_llm_overrides]
    run_dir = tmp_path / "run"
    evaluate(compose_config("eval", overrides), run_dir)
    rows = list(iter_jsonl(run_dir / "episodes.jsonl"))
    assert sorted((r["seed"], r["episode"]) for r in rows) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for row in rows:
        assert row["agent"] == "naive" and row["level"] == 3 and row["llm_model"] == "scripted"
        # At L3 the first episode ends with a summary call (what the second one is told); the last needs none.
        assert row["steps"] == 4 and row["llm_calls"] == 4 + (row["episode"] == 0) and row["prompt_tokens"] > 0
    steps = list(iter_jsonl(run_dir / "steps.jsonl"))
    assert len(steps) == sum(r["steps"] for r in rows)
    assert {"observation", "action_text", "action", "reward", "prompt_tokens", "latency_s", "cost_usd",
            "replies"} <= set(steps[0])
    calls = len(fake_llm.requests)
    assert calls == 18
    # Every call is in the transcript (calls.jsonl), tagged with its episode.
    transcript = list(iter_jsonl(run_dir / "calls.jsonl"))
    assert len(transcript) == calls and {(c["seed"], c["episode"]) for c in transcript} == {
        (r["seed"], r["episode"]) for r in rows}
    # Same config again: every episode is done, nothing reruns or duplicates.
    evaluate(compose_config("eval", overrides), run_dir)
    assert len(fake_llm.requests) == calls
    assert len(list(iter_jsonl(run_dir / "episodes.jsonl"))) == 4
    # One more seed: only its stream runs.
    evaluate(compose_config("eval", [*overrides, "seeds=[0,1,2]"]), run_dir)
    assert len(list(iter_jsonl(run_dir / "episodes.jsonl"))) == 6 and len(fake_llm.requests) == calls + 9
    # A stream cut after its first episode continues from the memory saved after it (L3).
    rows = list(iter_jsonl(run_dir / "episodes.jsonl"))
    (run_dir / "episodes.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows if (r["seed"], r["episode"]) != (2, 1)))
    calls = len(fake_llm.requests)
    evaluate(compose_config("eval", [*overrides, "seeds=[0,1,2]"]), run_dir)
    new_prompts = fake_llm.prompts()[calls:]
    assert len(new_prompts) == 4 and all("Trial 1 (return 4.00 in 4 steps)" in p for p in new_prompts)
    assert len(list(iter_jsonl(run_dir / "steps.jsonl"))) == 6 * 4


def test_streaming_gc_is_undone_by_the_last_open_block(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    before = gc.get_threshold()
    first, second = streaming_gc(), streaming_gc()
    first.__enter__()
    assert gc.get_threshold() == STREAMING_GC_THRESHOLDS and gc.get_freeze_count() > 0
    second.__enter__()  # a run side by side with the first, in the same process
    first.__exit__(None, None, None)
    assert gc.get_threshold() == STREAMING_GC_THRESHOLDS  # the second run still plays
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    evaluate(compose_config("eval", ["env=cartpole", "agent=naive", "max_steps=3", "llm.cache=off",
                                     *fake_llm_overrides]), tmp_path / "run")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_resume_under_other_settings_is_refused(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    overrides = ["agent=naive", "seeds=[0]", "max_steps=2", *fake_llm_overrides]
    evaluate(compose_config("eval", overrides), tmp_path)
    for changed in ("llm.temperature=0.5", "max_steps=3", "episodes=2", "agent.history_window=1",
                    "+env.kwargs.fewshot_episodes=1"):
        with pytest.raises(RunIdentityError, match="holds results made with other settings"):
            evaluate(compose_config("eval", [*overrides, changed]), tmp_path)
    assert len(list(iter_jsonl(tmp_path / "episodes.jsonl"))) == 1  # nothing computed was lost
    # A run made under other prompt templates (an older TextGym) is another protocol: refused, naming them.
    identity_file = tmp_path / "run_identity.json"
    recorded = json.loads(identity_file.read_text())
    assert recorded["prompt_templates"] == prompt_templates_fingerprint()
    identity_file.write_text(json.dumps({**recorded, "prompt_templates": "0123456789abcdef"}))
    with pytest.raises(RunIdentityError, match=r"\(prompt_templates differ"):
        evaluate(compose_config("eval", overrides), tmp_path)


def test_torn_last_line_is_cut_before_appending(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    overrides = ["agent=naive", "seeds=[0,1]", "max_steps=2", *fake_llm_overrides]
    evaluate(compose_config("eval", overrides), tmp_path)
    rows = list(iter_jsonl(tmp_path / "episodes.jsonl"))
    text = "".join(json.dumps(r) + "\n" for r in rows[:1]) + json.dumps(rows[1])[:40]  # killed mid-write
    (tmp_path / "episodes.jsonl").write_text(text)
    evaluate(compose_config("eval", overrides), tmp_path)
    again = list(iter_jsonl(tmp_path / "episodes.jsonl"))
    assert sorted(r["seed"] for r in again) == [0, 1]
    assert (tmp_path / "episodes.jsonl").read_text().count("\n") == 2


@pytest.mark.parametrize("bad", ["seeds=[-1]", "seeds=[true]", "episodes=0", "episodes=1001", "concurrency=0"])
def test_bad_run_values_name_the_allowed_range(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=bad.split("=")[0]):
        evaluate(compose_config("eval", ["agent=random", "logger=none", bad]), tmp_path)


def test_unset_api_key_variable_is_named(tmp_path: Path) -> None:
    cfg = compose_config("eval", ["agent=naive", "llm=openai", "llm.api_key_env=TEXTGYM_SURELY_UNSET_KEY",
                                  "logger=none"])
    with pytest.raises(ValueError, match="llm.api_key_env=TEXTGYM_SURELY_UNSET_KEY names an unset"):
        evaluate(cfg, tmp_path)


def test_identical_rerun_replays_from_cache(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    overrides = ["env=cartpole", "agent=naive", "seeds=[0]", "episodes=1", "max_steps=5", *fake_llm_overrides]
    evaluate(compose_config("eval", overrides), tmp_path / "first")
    calls = len(fake_llm.requests)
    evaluate(compose_config("eval", overrides), tmp_path / "second")
    assert len(fake_llm.requests) == calls  # zero model calls the second time
    first, second = (list(iter_jsonl(tmp_path / d / "steps.jsonl")) for d in ("first", "second"))
    assert [s["action_text"] for s in first] == [s["action_text"] for s in second]
    row = next(iter_jsonl(tmp_path / "second" / "episodes.jsonl"))
    assert row["cached_calls"] == row["llm_calls"] == 5


def test_transient_server_errors_are_retried(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    fake_llm.fail_next = [500, 503]
    overrides = ["agent=naive", "seeds=[0]", "max_steps=3", "llm.cache=off", *fake_llm_overrides]
    evaluate(compose_config("eval", overrides), tmp_path)
    assert len(fake_llm.requests) == 3 + 2
    assert next(iter_jsonl(tmp_path / "episodes.jsonl"))["steps"] == 3


def test_dead_server_fails_the_episode_but_keeps_finished_ones(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    overrides = ["agent=naive", "seeds=[0]", "episodes=3", "max_steps=3", "llm.cache=off", "llm.max_retries=1",
                 *fake_llm_overrides]
    original = fake_llm.responder
    calls = {"n": 0}

    def responder(request):
        calls["n"] += 1
        if calls["n"] > 3:  # the server breaks after the first episode
            fake_llm.fail_next.extend([500] * 5)
        return original(request)

    fake_llm.responder = responder
    outcome = evaluate(compose_config("eval", overrides), tmp_path)
    assert not outcome.ok and outcome.done == 1 and outcome.not_run == 1
    rows = list(iter_jsonl(tmp_path / "episodes.jsonl"))
    assert [(r["episode"], r["status"]) for r in rows] == [(0, "done"), (1, "failed")]
    assert rows[1]["error"].startswith("LLMError: ") and "500" in rows[1]["error"]
    # It got through one step (one LLM call) before the server broke; what that cost is kept.
    assert rows[1]["return"] is None and rows[1]["steps"] == 1 and rows[1]["llm_calls"] == 1
    assert list(outcome.failed.values()) == [rows[1]["error"]]
    # Healthy again: the rerun plays exactly the failed episode and the one after it.
    fake_llm.responder, fake_llm.fail_next = original, []
    before = len(fake_llm.requests)
    outcome = evaluate(compose_config("eval", overrides), tmp_path)
    assert outcome.ok and outcome.done == 3 and len(fake_llm.requests) - before == 2 * 3
    rows = list(iter_jsonl(tmp_path / "episodes.jsonl"))
    assert [(r["episode"], r["status"]) for r in rows] == [(0, "done"), (1, "failed"), (1, "done"), (2, "done")]
    assert [r["episode"] for r in load_episodes([tmp_path])] == [0, 1, 2]


def test_api_key_is_sent_but_never_written(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    secret = "sk-test-SECRET-0123456789"
    os.environ["TEXTGYM_TEST_KEY"] = secret
    try:
        run_cli(["experiments.run_agent", "agent=naive", "max_steps=2", "llm.api_key_env=TEXTGYM_TEST_KEY",
                 f"results_dir={tmp_path / 'runs'}", *fake_llm_overrides, "logger=wandb"], cwd=tmp_path,
                timeout=600)
    finally:
        del os.environ["TEXTGYM_TEST_KEY"]
    assert fake_llm.authorizations and all(a == f"Bearer {secret}" for a in fake_llm.authorizations)
    written = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in written) and any(p.name == "episodes.jsonl" for p in written)
    assert any(p.suffix == ".wandb" for p in written)  # the offline wandb run, with the resolved config
    for path in written:
        assert secret not in path.read_text(errors="ignore"), path


def test_killed_run_resumes_without_duplicates(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    fake_llm.delay_s = 0.05
    args = ["experiments.run_agent", "agent=naive", "level=3", "seeds=[0,1,2]", "episodes=2", "max_steps=6",
            "concurrency=1", "llm.cache=off", f"results_dir={tmp_path / 'runs'}", *fake_llm_overrides]
    run_dir = tmp_path / "runs" / "eval" / "cartpole-L3-naive"
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "WANDB_MODE": "disabled"})
    deadline = time.time() + 120
    while time.time() < deadline and len(list(iter_jsonl(run_dir / "episodes.jsonl"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = list(iter_jsonl(run_dir / "episodes.jsonl"))
    assert 2 <= len(finished_before) < 6
    run_cli(args, cwd=tmp_path)
    rows = list(iter_jsonl(run_dir / "episodes.jsonl"))
    keys = [(r["seed"], r["episode"]) for r in rows]
    assert sorted(keys) == [(s, e) for s in range(3) for e in range(2)] and len(set(keys)) == 6
    assert rows[: len(finished_before)] == finished_before  # kept as they were
    steps = list(iter_jsonl(run_dir / "steps.jsonl"))
    assert len(steps) == sum(r["steps"] for r in rows)  # partial episodes left no lines behind


def test_user_agent_class_plugs_in_by_path(fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    package = tmp_path / "my_agents"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from agents.base import Agent\n\n"
        "class AlwaysRight(Agent):\n"
        "    name = 'always_right'\n"
        "    uses_llm = False\n"
        "    def __init__(self, llm=None, seed=0, word='push right'):\n"
        "        super().__init__(llm, seed)\n"
        "        self.word = word\n"
        "    async def _act(self, observation, info):\n"
        "        return self.word\n"
    )
    run_cli(["experiments.run_agent", "agent=custom", "agent._target_=my_agents.AlwaysRight", "+agent.word='2'",
             "seeds=[4]", f"results_dir={tmp_path / 'runs'}", "logger=none"], cwd=tmp_path,
            env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}"})
    run_dir = tmp_path / "runs" / "eval" / "cartpole-L1-always_right"
    steps = list(iter_jsonl(run_dir / "steps.jsonl"))
    assert steps and all(s["action"] == 1 and not s["invalid_action"] for s in steps)


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_multirun_sweeps(launcher: str, fake_llm, fake_llm_overrides, tmp_path: Path) -> None:
    run_cli(["experiments.run_agent", "-m", "env=cartpole,frozenlake", "level=1,5", "agent=random,naive",
             "max_steps=3", f"hydra/launcher={launcher}", f"results_dir={tmp_path / 'runs'}", *fake_llm_overrides],
            cwd=tmp_path, timeout=600)
    sweep = tmp_path / "runs" / "sweep"
    dirs = sorted(p.parent.name for p in sweep.rglob("episodes.jsonl"))
    assert dirs == sorted(f"{e}-L{lv}-{a}" for e in ("cartpole", "frozenlake") for lv in (1, 5)
                          for a in ("naive", "random"))
    assert any(r["llm_calls"] > 0 for r in iter_jsonl(sweep / "cartpole-L5-naive" / "episodes.jsonl"))


def test_slurm_launcher_preset_composes() -> None:
    from hydra import compose, initialize_config_dir

    from tests.experiments.conftest import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("eval", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.cpus_per_task == 4
