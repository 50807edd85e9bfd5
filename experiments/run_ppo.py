"""textgym-ppo: SB3 PPO on the numeric task behind a text env, evaluated exactly as the language agents are.

    textgym-ppo env=cartpole seed=0
    textgym-ppo env=taxi seed=1 ppo.n_timesteps=50000 eval_seeds=[0,1,2,3,4] logger=none

PPO trains with ``conf/ppo/<env>.yaml`` (chosen by ``env``; rl-baselines3-zoo hyperparameters where the zoo has
them) on the base task with the text env's step limit. The trained policy then plays ``eval_episodes`` deterministic
episodes per seed in ``eval_seeds``, episode ``k`` of seed ``s`` reset with ``episode_seed(s, k)`` like the language
agents' episodes, and each episode becomes one ``episodes.jsonl`` row in the shared schema
(experiments/records/results.py).

The run dir ``${results_dir}/ppo/<env>-s<seed>`` holds ``model.zip``, ``vecnormalize.pkl`` (when normalizing),
``learning_curve.csv`` and ``episodes.jsonl``. Rerunning the same config with ``model.zip`` present trains nothing
and plays only the episodes that are missing.
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import textgym
from experiments.cli import guard_job, hydra_command
from experiments.config import quiet_libraries, start_wandb
from experiments.ppo_setup import TrainingMonitor, make_task_env, ppo_kwargs
from experiments.records.results import EpisodeKey, ResultsWriter, episode_row, iter_jsonl
from experiments.reports.costs import EVALUATION, TRAINING, cpu_clock
from experiments.running.episodes import EPISODES_PER_SEED, episode_seed

__all__ = ["run", "train", "load_trained", "play_episode", "main"]

logger = logging.getLogger(__name__)

AGENT = "ppo"
MODEL_FILE = "model.zip"
VECNORM_FILE = "vecnormalize.pkl"
CURVE_FILE = "learning_curve.csv"


def validate_ppo(cfg: DictConfig) -> None:
    """Check the values Hydra cannot type-check, naming what is allowed."""
    textgym.env_entry(cfg.env.name)  # unknown env -> the list of known ones
    checks = [
        (isinstance(cfg.seed, int), f"seed must be an int, got {cfg.seed!r}"),
        (OmegaConf.is_list(cfg.eval_seeds) and len(cfg.eval_seeds) > 0
         and all(isinstance(s, int) and s >= 0 for s in cfg.eval_seeds),
         f"eval_seeds must be a non-empty list of ints >= 0, got {cfg.eval_seeds!r}"),
        (isinstance(cfg.eval_episodes, int) and 1 <= cfg.eval_episodes <= EPISODES_PER_SEED,
         f"eval_episodes must be in [1, {EPISODES_PER_SEED}], got {cfg.eval_episodes!r}"),
        (isinstance(cfg.ppo.n_envs, int) and cfg.ppo.n_envs >= 1, f"ppo.n_envs must be >= 1, got {cfg.ppo.n_envs!r}"),
        (isinstance(cfg.ppo.n_timesteps, int) and cfg.ppo.n_timesteps >= 1,
         f"ppo.n_timesteps must be an int >= 1, got {cfg.ppo.n_timesteps!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _env_kwargs(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg.env.kwargs, resolve=True)  # type: ignore[return-value]  # a mapping's: a dict


def _normalize_kwargs(normalize: Any) -> dict[str, Any] | None:
    """The zoo's ``normalize``: false, true (observations and rewards) or ``{norm_obs: …, norm_reward: …}``."""
    if normalize is None or normalize is False:
        return None
    if normalize is True:
        return {}
    return dict(normalize)


def train(cfg: DictConfig, run_dir: Path, wandb_run: Any = None) -> tuple[PPO, VecNormalize | None]:
    """Train PPO as ``cfg.ppo`` says; save the learning curve, the normalization stats and (last) the model."""
    set_random_seed(cfg.seed)
    venv = make_vec_env(make_task_env, n_envs=cfg.ppo.n_envs, seed=cfg.seed,
                        env_kwargs={"env_name": cfg.env.name, "env_kwargs": _env_kwargs(cfg)})
    model_kwargs = ppo_kwargs(OmegaConf.to_container(cfg.ppo.model, resolve=True))  # type: ignore[arg-type]  # a dict
    norm = _normalize_kwargs(cfg.ppo.normalize)
    if norm is not None:
        venv = VecNormalize(venv, gamma=model_kwargs.get("gamma", 0.99), **norm)
    model = PPO(cfg.ppo.policy, venv, seed=cfg.seed, device=cfg.device, verbose=0, **model_kwargs)
    monitor = TrainingMonitor(run_dir / CURVE_FILE, cfg.ppo.n_timesteps, wandb_run=wandb_run, progress=cfg.progress)
    started = time.perf_counter()
    model.learn(total_timesteps=cfg.ppo.n_timesteps, callback=monitor)
    logger.info("trained %d steps in %.1fs", model.num_timesteps, time.perf_counter() - started)

    # model.zip is written last and atomically: its presence is what tells a rerun that training finished.
    vecnorm = None
    if isinstance(venv, VecNormalize):
        venv.save(str(run_dir / VECNORM_FILE))
        vecnorm = _for_evaluation(venv)
    partial = run_dir / "model.partial.zip"
    model.save(partial)
    partial.replace(run_dir / MODEL_FILE)
    return model, vecnorm


def _for_evaluation(vecnorm: VecNormalize) -> VecNormalize:
    vecnorm.training = False  # frozen statistics
    vecnorm.norm_reward = False  # returns are reported raw
    return vecnorm


def load_trained(cfg: DictConfig, run_dir: Path) -> tuple[PPO, VecNormalize | None]:
    """The model (and normalization stats) a previous run saved in ``run_dir``."""
    model = PPO.load(run_dir / MODEL_FILE, device=cfg.device)
    vecnorm = None
    if (run_dir / VECNORM_FILE).exists():
        dummy = DummyVecEnv([functools.partial(make_task_env, cfg.env.name, _env_kwargs(cfg))])
        vecnorm = _for_evaluation(VecNormalize.load(str(run_dir / VECNORM_FILE), dummy))
    return model, vecnorm


def play_episode(model: PPO, env: gym.Env, vecnorm: VecNormalize | None, reset_seed: int) -> dict[str, Any]:
    """One deterministic episode of ``model`` on ``env`` reset with ``reset_seed``; return, steps, terminated."""
    started = time.perf_counter()
    obs, _ = env.reset(seed=reset_seed)
    total, steps, terminated, truncated = 0.0, 0, False, False
    while not (terminated or truncated):
        model_obs = vecnorm.normalize_obs(np.asarray(obs)) if vecnorm is not None else obs
        prediction, _ = model.predict(model_obs, deterministic=True)
        action = int(prediction) if isinstance(env.action_space, gym.spaces.Discrete) else prediction
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        steps += 1
    return {"return": total, "steps": steps, "terminated": bool(terminated),
            "wall_time_s": round(time.perf_counter() - started, 3)}


def ppo_episode_row(cfg: DictConfig, seed: int, episode: int, result: dict[str, Any],
                    env_steps: int) -> dict[str, Any]:
    """An ``episodes.jsonl`` row in the language agents' schema: no level, no LLM, the training budget filled in."""
    return episode_row(
        result["return"], kind="ppo", env=cfg.env.name, env_id=textgym.env_entry(cfg.env.name).text_id,
        agent=AGENT, seed=seed, episode=episode, steps=result["steps"], terminated=result["terminated"],
        wall_time_s=result["wall_time_s"], env_steps_trained=env_steps, train_seed=cfg.seed,
    )


def run(cfg: DictConfig, run_dir: str | Path) -> Path:
    """Train (unless ``model.zip`` exists in ``run_dir``) and evaluate missing episodes; returns the episodes file."""
    validate_ppo(cfg)
    quiet_libraries()
    torch.set_num_threads(cfg.torch_threads)
    writer = ResultsWriter(run_dir, identity={  # what changes the trained model; eval seeds may grow
        "env": cfg.env.name, "env_kwargs": _env_kwargs(cfg), "seed": cfg.seed,
        "ppo": OmegaConf.to_container(cfg.ppo, resolve=True)})
    run_dir = writer.run_dir
    wandb_run = start_wandb(cfg, run_dir, f"{cfg.env.name}-ppo-s{cfg.seed}", "ppo")
    try:
        if (run_dir / MODEL_FILE).exists():
            model, vecnorm = load_trained(cfg, run_dir)
            logger.info("found %s (%d steps trained): not training again", run_dir / MODEL_FILE, model.num_timesteps)
        else:
            with cpu_clock(run_dir, TRAINING):  # the cost view's CPU-seconds (experiments/reports/costs.py)
                model, vecnorm = train(cfg, run_dir, wandb_run)

        # ---- evaluation: the language agents' protocol, episode by episode ----
        with cpu_clock(run_dir, EVALUATION):
            env = make_task_env(cfg.env.name, _env_kwargs(cfg))
            for seed in cfg.eval_seeds:
                for k in range(cfg.eval_episodes):
                    if writer.is_done(EpisodeKey(cfg.env.name, None, AGENT, seed, k, cfg.seed)):
                        continue
                    result = play_episode(model, env, vecnorm, episode_seed(seed, k))
                    writer.write_episode(ppo_episode_row(cfg, seed, k, result, model.num_timesteps))
                    if wandb_run is not None:
                        wandb_run.log({"episode/return": result["return"], "episode/steps": result["steps"],
                                       "episode/seed": seed, "episode/index": k})
            env.close()
        wanted = {(s, k) for s in cfg.eval_seeds for k in range(cfg.eval_episodes)}
        returns = [row["return"] for row in iter_jsonl(writer.episodes_path)
                   if row["agent"] == AGENT and (row["seed"], row["episode"]) in wanted]
        logger.info("%s: mean return %.3f over %d evaluation episodes -> %s", cfg.env.name, np.mean(returns),
                    len(returns), writer.episodes_path)
        if wandb_run is not None:
            wandb_run.summary["eval/return_mean"] = float(np.mean(returns))
    finally:
        if wandb_run is not None:
            wandb_run.finish()
    return writer.episodes_path


@hydra.main(version_base="1.3", config_path="../conf", config_name="ppo")
def _hydra_main(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    guard_job("textgym-ppo", cfg, lambda: run(cfg, run_dir), run_dir)


def main() -> None:
    """Console entry point: ``textgym-ppo env=NAME seed=N`` (``--help`` explains the keys)."""
    hydra_command("textgym-ppo", _hydra_main, "ppo")


if __name__ == "__main__":
    main()
