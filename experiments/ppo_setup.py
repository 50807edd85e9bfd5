"""The parts of ``textgym-ppo`` that are not the experiment itself: the task env, hyperparameters, learning curve.

- :func:`make_task_env` builds the numeric task behind a text env, with the text env's step limit.
- :func:`ppo_kwargs` turns a ``conf/ppo/<env>.yaml`` ``model`` block (rl-baselines3-zoo notation) into ``PPO`` kwargs.
- :class:`TrainingMonitor` writes ``learning_curve.csv`` and reports progress (tqdm, logging, wandb) while PPO trains.
"""

from __future__ import annotations

import csv
import inspect
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from hydra.utils import get_class
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import LinearSchedule
from tqdm import tqdm

from experiments.running.progress import is_terminal
from textgym.registration import env_entry
from textgym.wrapper import make_base_env, make_text_env

__all__ = ["make_task_env", "step_limit", "ppo_kwargs", "parse_schedule", "TrainingMonitor", "CURVE_FIELDS"]

logger = logging.getLogger(__name__)

# make_text_env's own arguments (level, few-shot settings...) mean nothing to the numeric task; the rest of
# env.kwargs goes to the base task, as it does for the text env.
_TEXT_ONLY_KWARGS = frozenset(inspect.signature(make_text_env).parameters) - {"base_kwargs"}
CURVE_FIELDS = ("env_steps", "episodes", "return_mean", "return_std", "length_mean", "wall_time_s")


def step_limit(env_name: str, env_kwargs: dict[str, Any] | None = None) -> int | None:
    """The step limit of ``env_name``'s text env (its registered spec, or ``max_episode_steps`` in ``env_kwargs``)."""
    kwargs = env_kwargs or {}
    if "max_episode_steps" in kwargs:
        return kwargs["max_episode_steps"]
    return gym.spec(env_entry(env_name).text_id).max_episode_steps


def make_task_env(env_name: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """The numeric task behind text env ``env_name``, ending exactly when the text env ends.

    The base env and its kwargs come from :func:`textgym.wrapper.make_base_env` and the step limit from the text
    env's spec (e.g. the 200 steps TextGym adds to CliffWalking). A ``Tuple`` observation (Blackjack) is flattened
    to one-hot blocks; ``Discrete`` observations (Taxi, FrozenLake, CliffWalking) stay integers because SB3 one-hot
    encodes them itself.

    Example:
        >>> env = make_task_env("cliffwalking")
        >>> env.spec.max_episode_steps if env.spec else None, env.observation_space
        (200, Discrete(48))
        >>> make_task_env("blackjack").observation_space.shape
        (45,)
    """
    kwargs = dict(env_kwargs or {})
    limit = step_limit(env_name, kwargs)
    base_kwargs = {k: v for k, v in kwargs.items() if k not in _TEXT_ONLY_KWARGS and k != "max_episode_steps"}
    env = make_base_env(env_name, **base_kwargs)
    if limit is not None:
        env = gym.wrappers.TimeLimit(env, limit)
    if isinstance(env.observation_space, (spaces.Tuple, spaces.Dict)):
        env = gym.wrappers.FlattenObservation(env)
    return env


def parse_schedule(value: Any) -> Any:
    """``"lin_1e-3"`` (rl-baselines3-zoo) -> a schedule falling linearly from 1e-3 to 0; numbers pass through.

    >>> parse_schedule("lin_0.2")(0.5), parse_schedule(3e-4)
    (0.1, 0.0003)
    """
    if isinstance(value, str):
        if not value.startswith("lin_"):
            raise ValueError(f"a schedule must be a number or 'lin_<start>', actually {value!r}")
        return LinearSchedule(float(value.removeprefix("lin_")), 0.0, 1.0)
    return value


_SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")


def ppo_kwargs(model: dict[str, Any]) -> dict[str, Any]:
    """``PPO(**kwargs)`` from a config ``model`` block: schedules parsed, ``activation_fn`` imported by path.

    >>> kwargs = ppo_kwargs({"n_steps": 32, "clip_range": "lin_0.2",
    ...                      "policy_kwargs": {"activation_fn": "torch.nn.ReLU"}})
    >>> kwargs["n_steps"], kwargs["policy_kwargs"]["activation_fn"].__name__
    (32, 'ReLU')
    """
    kwargs = {k: (parse_schedule(v) if k in _SCHEDULED else v) for k, v in model.items()}
    policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
    if isinstance(policy_kwargs.get("activation_fn"), str):
        policy_kwargs["activation_fn"] = get_class(policy_kwargs["activation_fn"])
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    else:
        kwargs.pop("policy_kwargs", None)
    return kwargs


class TrainingMonitor(BaseCallback):
    """Learning curve and progress while PPO trains.

    After every rollout that has seen a finished episode, one row goes to ``curve_path``: env steps so far,
    episodes finished, and the mean/std return and mean length of the last ``window`` training episodes (raw
    returns, as the ``Monitor`` wrapper under any ``VecNormalize`` reports them). The same figures go to wandb
    (``charts/…``) and, every tenth of the run, to the log; a tqdm bar counts env steps.

    Args:
        curve_path: the CSV file to write (replaced).
        total_timesteps: the training budget, for the progress bar and log.
        window: how many recent episodes the means cover (SB3's ``rollout/ep_rew_mean`` uses 100).
        wandb_run: a wandb run to log to, or ``None``.
        progress: show a tqdm bar.
    """

    def __init__(self, curve_path: Path, total_timesteps: int, window: int = 100, wandb_run: Any = None,
                 progress: bool = True) -> None:
        super().__init__()
        self.curve_path = Path(curve_path)
        self.total_timesteps = total_timesteps
        self.recent: deque[tuple[float, int]] = deque(maxlen=window)
        self.episodes = 0
        self.wandb_run = wandb_run
        self.progress = progress
        self._next_log = 0.1
        self._started = 0.0
        self._bar: tqdm | None = None
        self._handle: Any = None
        self._writer: Any = None

    def _on_training_start(self) -> None:
        self._started = time.perf_counter()
        self._handle = self.curve_path.open("w", newline="")
        self._writer = csv.DictWriter(self._handle, fieldnames=CURVE_FIELDS)
        self._writer.writeheader()
        # Off a terminal the bar would write its redraws into a log: the tenth-of-the-run log lines say enough there.
        self._bar = tqdm(total=self.total_timesteps, desc="ppo", unit="step",
                         disable=not self.progress or not is_terminal(sys.stderr))

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.recent.append((float(info["episode"]["r"]), int(info["episode"]["l"])))
                self.episodes += 1
        if self._bar is not None:
            self._bar.update(self.training_env.num_envs)
        return True

    def _on_rollout_end(self) -> None:
        if not self.recent:
            return
        returns = np.array([r for r, _ in self.recent])
        row = {"env_steps": self.num_timesteps, "episodes": self.episodes,
               "return_mean": round(float(returns.mean()), 4), "return_std": round(float(returns.std()), 4),
               "length_mean": round(float(np.mean([n for _, n in self.recent])), 2),
               "wall_time_s": round(time.perf_counter() - self._started, 2)}
        self._writer.writerow(row)
        self._handle.flush()
        if self.wandb_run is not None:
            self.wandb_run.log({"charts/episodic_return": row["return_mean"], "charts/episodic_length":
                                row["length_mean"], "charts/episodes": self.episodes}, step=self.num_timesteps)
        if self.num_timesteps >= self._next_log * self.total_timesteps:
            self._next_log = min(1.0, self.num_timesteps / self.total_timesteps) + 0.1
            logger.info("%d/%d steps, %d episodes, mean return of the last %d: %.2f", self.num_timesteps,
                        self.total_timesteps, self.episodes, len(self.recent), row["return_mean"])

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._handle is not None:
            self._handle.close()
