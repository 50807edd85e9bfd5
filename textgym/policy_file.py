"""An expert from a file: a PPO policy trained with ``textgym-ppo``, for tasks where TextGym has no expert of its own.

``textgym-ppo env=hopper`` saves ``model.zip`` (an SB3 PPO model) and, when it normalizes observations,
``vecnormalize.pkl`` beside it. Pass the model file as ``expert_policy_path`` to ``gym.make`` (and
``--expert-policy-path`` to ``textgym-trajectories``) and its deterministic actions become the L4 expert:

    gym.make("TextGym-Hopper-v0", level=4, expert_policy_path="runs/ppo/hopper-s0/model.zip")

The files are identified by their SHA-256, so trajectories cached for one model are never shown for another.
Only load files you made or trust: an SB3 model and its statistics are Python pickles.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["PolicyFile", "NORMALIZATION_FILE"]

NORMALIZATION_FILE = "vecnormalize.pkl"
"""VecNormalize statistics that ``textgym-ppo`` saves next to ``model.zip`` when it normalizes observations."""


class PolicyFile:
    """A saved SB3 PPO model (and its observation statistics) as a deterministic policy for one task.

    Args:
        path: the ``model.zip`` that ``textgym-ppo`` wrote.
        sha256: the digest the files must have (checked when given; computed otherwise).

    Raises:
        ValueError: if the file is missing or its digest differs from ``sha256``.
    """

    def __init__(self, path: str | Path, sha256: str | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_file():
            raise ValueError(f"expert_policy_path {str(path)!r} is not a file: pass the model.zip that "
                             "textgym-ppo saved (runs/ppo/<env>-s<seed>/model.zip)")
        self.normalization = self.path.with_name(NORMALIZATION_FILE)
        digest = hashlib.sha256(self.path.read_bytes())
        if self.normalization.is_file():
            digest.update(self.normalization.read_bytes())
        self.sha256 = digest.hexdigest()
        if sha256 is not None and sha256 != self.sha256:
            raise ValueError(f"{self.path} changed since its trajectories were made (sha256 {sha256[:12]}..., "
                             f"now {self.sha256[:12]}...)")

    def options(self) -> dict[str, str]:
        """The translator options that name this file (and key the trajectory cache)."""
        return {"expert_policy_path": str(self.path), "expert_policy_sha256": self.sha256}

    def policy(self, env: gym.Env) -> Any:
        """The model's deterministic action for each raw observation of ``env``."""
        from stable_baselines3 import PPO

        model = PPO.load(self.path, device="cpu")
        if model.observation_space.shape != env.observation_space.shape:
            raise ValueError(f"{self.path} was trained on observations of shape {model.observation_space.shape}, "
                             f"but this task's are {env.observation_space.shape}: train it on the same task and kwargs")
        statistics = None
        if self.normalization.is_file():
            with self.normalization.open("rb") as handle:
                statistics = pickle.load(handle)  # SB3's VecNormalize, saved without its envs

        def act(obs: Any) -> Any:
            model_obs = np.asarray(obs, dtype=np.float32)
            if statistics is not None:
                model_obs = statistics.normalize_obs(model_obs)
            action, _ = model.predict(model_obs, deterministic=True)
            return int(action) if isinstance(env.action_space, gym.spaces.Discrete) else action

        return act
