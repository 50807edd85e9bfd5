"""MountainCarContinuous as text: the MountainCar valley with a throttle instead of three buttons."""

from __future__ import annotations

import math
import re
from typing import Any

import gymnasium as gym
import numpy as np

from textgym.translator import Policy, Translator

__all__ = ["MountainCarContinuousTranslator"]

DIGITS = 4
# The track's height follows sin(3 x) (Continuous_MountainCarEnv._height), lowest where 3 x = -pi / 2.
VALLEY_POSITION = -math.pi / 6
# Continuous_MountainCarEnv.step uses literals for these rewards; there are no attributes to read.
GOAL_REWARD = 100.0
FORCE_COST = 0.1
# Share of full force the expert pushes with. Gentle pushes need more swings, but the cost grows
# with the force squared, so a third of full force earns more than full force (about 98 against 89).
EXPERT_FORCE_SHARE = 0.3


class MountainCarContinuousTranslator(Translator):
    """Speaks for ``MountainCarContinuous-v0``: position in metres, speed per step, directions in words.

    The action is one number, the engine force: positive pushes right, negative pushes left.
    """

    name = "mountaincar_continuous"

    @property
    def goal_position(self) -> float:
        """Where the flag stands, in metres (an attribute of the env, not of its spaces)."""
        return float(self.env.goal_position)

    def template_context(self) -> dict[str, Any]:
        low, high = self.observation_space.low, self.observation_space.high
        return {**super().template_context(), "digits": DIGITS,
                "left_end": float(low[0]), "right_end": float(high[0]), "max_speed": float(high[1]),
                "goal_position": self.goal_position, "goal_velocity": float(self.env.goal_velocity),
                "valley_position": VALLEY_POSITION,
                "goal_reward": GOAL_REWARD, "force_cost": FORCE_COST,
                "expert_force": EXPERT_FORCE_SHARE * self.action_high}

    def describe(self, obs: Any) -> dict[str, Any]:
        position, velocity = (float(v) for v in obs)
        return {"position": position, "velocity": velocity,
                "offset_from_valley": position - VALLEY_POSITION,
                "distance_to_goal": self.goal_position - position}

    def read_observation(self, text: str) -> np.ndarray:
        match = re.search(r"car is at position (-?\d+\.\d+) m .*?, "
                          r"(at rest|moving (right|left) at (\d+\.\d+) m per step)", text)
        if match is None:
            raise ValueError(f"no position and velocity in {text!r}")
        position, motion, word, speed = match.groups()
        velocity = 0.0 if motion == "at rest" else float(speed) * (1 if word == "right" else -1)
        return np.array([float(position), velocity])

    @property
    def observation_precision(self) -> float:
        return 0.5 * 10**-DIGITS

    def expert_policy(self, env: gym.Env) -> Policy:
        # Pushing the way the car moves adds energy on every swing; from rest, start up the left hill.
        force = EXPERT_FORCE_SHARE * self.action_high
        dtype = self.action_space.dtype

        def policy(obs: np.ndarray) -> np.ndarray:
            return np.array([force if obs[1] > 0 else -force], dtype=dtype)

        return policy
