"""textgym-ppo: config composition, the task env, tiny real runs with resume, and (slow) CartPole at the zoo's score."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hydra import compose, initialize_config_module
from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf
from stable_baselines3 import PPO

import textgym
from experiments.ppo_setup import CURVE_FIELDS, make_task_env, ppo_kwargs, step_limit
from experiments.records.results import EPISODE_FIELDS, iter_jsonl
from experiments.run_ppo import run, validate_ppo
from experiments.running.episodes import episode_seed
from textgym.registration import ENVS

ENV_NAMES = list(ENVS)
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_ppo(overrides: list[str], hydra_config: bool = False) -> DictConfig:
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name="ppo", overrides=overrides, return_hydra_config=hydra_config)


# ---- configuration ----

def test_every_text_env_has_ppo_settings() -> None:
    assert {path.stem for path in (CONF_DIR / "ppo").glob("*.yaml")} == set(ENVS)


@pytest.mark.parametrize("env_name", ENV_NAMES)
def test_ppo_settings_follow_env(env_name: str) -> None:
    cfg = compose_ppo([f"env={env_name}"])
    assert cfg.env.name == env_name
    assert cfg.ppo == OmegaConf.load(CONF_DIR / "ppo" / f"{env_name}.yaml")
    validate_ppo(cfg)
    kwargs = ppo_kwargs(OmegaConf.to_container(cfg.ppo.model))  # schedules and policy kwargs convert
    assert all(not isinstance(v, str) for k, v in kwargs.items() if k in ("learning_rate", "clip_range"))


def test_defaults_and_explicit_ppo_choice() -> None:
    cfg = compose_ppo([])
    assert (cfg.env.name, cfg.seed, list(cfg.eval_seeds), cfg.eval_episodes, cfg.device) == ("cartpole", 0, [0, 1, 2],
                                                                                            5, "cpu")
    assert cfg.ppo.n_envs == 8 and cfg.ppo.model.learning_rate == "lin_1e-3"  # the zoo's CartPole-v1
    assert compose_ppo(["env=taxi", "ppo=cliffwalking"]).ppo.n_timesteps == 300_000  # an explicit choice wins


def test_unknown_env_lists_what_exists() -> None:
    with pytest.raises(MissingConfigException, match="Available options in 'env'") as error:
        compose_ppo(["env=cartpol"])
    assert all(name in str(error.value) for name in ENV_NAMES)
    cfg = compose_ppo([])
    cfg.env.name = "cartpol"  # an env file naming an env that TextGym does not have
    with pytest.raises(ValueError, match="Did you mean 'cartpole'"):
        validate_ppo(cfg)


@pytest.mark.parametrize(("override", "message"), [
    ("eval_seeds=[]", "eval_seeds"), ("eval_episodes=0", "eval_episodes"), ("ppo.n_envs=0", "n_envs"),
    ("ppo.n_timesteps=1.5", "n_timesteps"),
])
def test_bad_values_are_named(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_ppo(compose_ppo([override]))


def test_run_dir_is_deterministic() -> None:
    cfg = compose_ppo(["env=taxi", "seed=3", "results_dir=out"], hydra_config=True)
    assert cfg.hydra.run.dir == "out/ppo/taxi-s3"
    assert f"{cfg.hydra.sweep.dir}/{cfg.hydra.sweep.subdir}" == "out/ppo/taxi-s3"  # multiruns resume single runs


# ---- the task env ----

@pytest.mark.parametrize("env_name", ENV_NAMES)
def test_task_env_has_the_text_env_step_limit(env_name: str) -> None:
    assert step_limit(env_name) == gym.spec(ENVS[env_name].text_id).max_episode_steps
    env = make_task_env(env_name)
    assert env.observation_space.contains(env.reset(seed=0)[0])


def test_cliffwalking_gets_textgyms_step_limit() -> None:
    env = make_task_env("cliffwalking")
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated:  # "up" from the start never reaches the goal
        _, _, terminated, truncated, _ = env.step(0)
        steps += 1
        assert not terminated
    assert steps == 200


def test_blackjack_observation_is_flattened() -> None:
    env = make_task_env("blackjack")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (45,) and obs.sum() == 3  # one-hot blocks: player sum, dealer card, usable ace


@pytest.mark.parametrize("env_name", ["cartpole", "acrobot", "pendulum"])
def test_task_env_starts_where_the_text_env_starts(env_name: str) -> None:
    text_env, task_env = gym.make(ENVS[env_name].text_id), make_task_env(env_name)
    for seed, k in [(0, 0), (2, 4)]:
        _, info = text_env.reset(seed=episode_seed(seed, k))
        obs, _ = task_env.reset(seed=episode_seed(seed, k))
        np.testing.assert_array_equal(obs, info["raw_obs"])


# ---- real runs ----

def tiny(env_name: str, results_dir: Path, *extra: str) -> DictConfig:
    return compose_ppo([f"env={env_name}", "ppo.n_envs=2", "ppo.n_timesteps=128", "ppo.model.n_steps=64",
                        "++ppo.model.batch_size=64", "logger=none", "progress=false", f"results_dir={results_dir}",
                        *extra])


def rows_of(run_dir: Path) -> list[dict]:
    return list(iter_jsonl(run_dir / "episodes.jsonl"))


def test_run_writes_results_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = compose_ppo(["env=frozenlake", "ppo.n_timesteps=2048", "eval_seeds=[0,1]", "eval_episodes=3",
                       "logger=none", "progress=false", f"results_dir={tmp_path}"])
    run_dir = tmp_path / "ppo" / "frozenlake-s0"
    assert run(cfg, run_dir) == run_dir / "episodes.jsonl"

    rows = rows_of(run_dir)
    assert [(r["seed"], r["episode"]) for r in rows] == [(s, k) for s in (0, 1) for k in range(3)]
    for row in rows:
        assert tuple(row) == EPISODE_FIELDS
        assert (row["kind"], row["agent"], row["level"], row["llm_model"], row["env"]) == ("ppo", "ppo", None, None,
                                                                                          "frozenlake")
        assert row["env_id"] == textgym.env_entry("frozenlake").text_id
        assert row["env_steps_trained"] == 2048 and row["cost_usd"] == 0 and row["prompt_tokens"] == 0
        assert 1 <= row["steps"] <= 100 and row["return"] in (0.0, 1.0)
    assert (run_dir / "model.zip").exists() and not (run_dir / "vecnormalize.pkl").exists()
    with (run_dir / "learning_curve.csv").open() as handle:
        curve = list(csv.DictReader(handle))
    assert curve and tuple(curve[0]) == CURVE_FIELDS and int(curve[-1]["env_steps"]) == 2048

    # A rerun trains nothing and writes nothing new.
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a rerun with model.zip must not train")

    monkeypatch.setattr(PPO, "learn", no_training)
    model_mtime = (run_dir / "model.zip").stat().st_mtime_ns
    run(cfg, run_dir)
    assert rows_of(run_dir) == rows and (run_dir / "model.zip").stat().st_mtime_ns == model_mtime

    # Episodes lost from the file are played again by the saved model, with the same outcome.
    lines = (run_dir / "episodes.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "episodes.jsonl").write_text("".join(lines[:4]))
    run(cfg, run_dir)
    replayed = rows_of(run_dir)
    assert len(replayed) == 6
    assert [{**r, "wall_time_s": 0} for r in replayed] == [{**r, "wall_time_s": 0} for r in rows]


@pytest.mark.parametrize("env_name", ENV_NAMES)
def test_every_env_trains_and_resumes(env_name: str, tmp_path: Path) -> None:
    """A two-rollout budget through every env's own settings (VecNormalize, gSDE, Box actions, flattening)."""
    run_dir = tmp_path / "run"
    # A whole Atari game can last 27,000 steps (Breakout waits for FIRE until ALE's cap): evaluate 500 steps of it.
    cap = ["+env.kwargs.max_episode_steps=500"] if ENVS[env_name].extra == "atari" else []
    run(tiny(env_name, tmp_path, "eval_seeds=[0]", "eval_episodes=1", *cap), run_dir)
    if compose_ppo([f"env={env_name}"]).ppo.normalize:
        assert (run_dir / "vecnormalize.pkl").exists()
    run(tiny(env_name, tmp_path, "eval_seeds=[0]", "eval_episodes=2", *cap), run_dir)  # loads the model (and stats)
    rows = rows_of(run_dir)
    assert [r["episode"] for r in rows] == [0, 1]
    assert all(r["env_steps_trained"] == 128 and np.isfinite(r["return"]) for r in rows)


@pytest.mark.slow
def test_cartpole_cli_reaches_the_zoo_score(tmp_path: Path) -> None:
    """``textgym-ppo env=cartpole`` with the zoo's settings: mean evaluation return >= 475 (about 2 min here)."""
    script = shutil.which("textgym-ppo")
    command = [script] if script else [sys.executable, "-m", "experiments.run_ppo"]
    subprocess.run([*command, "env=cartpole", "logger=none", "progress=false", f"results_dir={tmp_path}"],
                   check=True, timeout=1800, cwd=tmp_path)
    run_dir = tmp_path / "ppo" / "cartpole-s0"
    rows = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    assert sorted((r["seed"], r["episode"]) for r in rows) == [(s, k) for s in (0, 1, 2) for k in range(5)]
    assert (run_dir / "model.zip").exists() and (run_dir / ".hydra" / "config.yaml").exists()
    assert all(r["env_steps_trained"] >= 100_000 for r in rows)
    assert np.mean([r["return"] for r in rows]) >= 475


def test_training_progress_off_a_terminal_writes_no_redraws(tmp_path: Path) -> None:
    """Issue 24 item 11: with progress on and stderr a pipe (a log file), PPO's bar writes no carriage-return redraws;
    the log still says how training goes."""
    command = [sys.executable, "-m", "experiments.run_ppo", "env=cartpole", "logger=none", "progress=true",
               "ppo.n_envs=2", "ppo.n_timesteps=1024", "ppo.model.n_steps=64", "eval_seeds=[0]", "eval_episodes=1",
               f"results_dir={tmp_path}"]
    result = subprocess.run(command, capture_output=True, timeout=300, cwd=tmp_path)  # bytes: text mode hides \r
    assert result.returncode == 0, result.stderr[-2000:].decode()
    assert b"\r" not in result.stderr and b"\r" not in result.stdout
    assert (tmp_path / "ppo" / "cartpole-s0" / "learning_curve.csv").exists()
