"""MountainCarContinuous as text: the MountainCar valley with a throttle instead of three buttons."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from textgym.envs.mountaincar import MountainCarTranslator
from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.translator import Policy

__all__ = ["MountainCarContinuousTranslator"]

# Continuous_MountainCarEnv.step uses literals for these rewards; there are no attributes to read.
GOAL_REWARD = 100.0
FORCE_COST = 0.1
# Share of full force the expert pushes with. Gentle pushes need more swings, but the cost grows
# with the force squared, so a third of full force earns more than full force (about 98 against 89).
EXPERT_FORCE_SHARE = 0.3


# The obfuscated variant (textgym.obfuscation): MountainCar's, with one number as the action.
OBFUSCATION = ObfuscationSpec(
    objects=("body",),
    quantities=(Quantity("{body} place"), Quantity("{body} pace")),
    actions=(),
    giveaways=("car", "mountain", "mountaincar", "MountainCarContinuous-v0", "TextGym-MountainCarContinuous-v0",
               "hill", "hills", "valley", "flag", "engine", "left", "right", "0.5", "-1.2", "0.6", "-0.52", "0.45",
               "throttle"),  # not 0.07 (the speed limit, mapped in the text): a step's cost can print so
    templates="mountaincar_continuous/templates/obfuscated",
    facts={"goal_reward": GOAL_REWARD, "force_cost": FORCE_COST},
)


class MountainCarContinuousTranslator(MountainCarTranslator):
    """Speaks for ``MountainCarContinuous-v0``: the same track and observation text as MountainCar.

    The action is one number, the engine force: positive pushes right, negative pushes left.
    """

    name = "mountaincar_continuous"
    action_names = ()

    def template_context(self) -> dict[str, Any]:
        return {**super().template_context(), "goal_reward": GOAL_REWARD, "force_cost": FORCE_COST,
                "expert_force": EXPERT_FORCE_SHARE * self.action_high}

    def obfuscation_spec(self) -> ObfuscationSpec:
        return OBFUSCATION

    def expert_policy(self, env: gym.Env) -> Policy:
        # Pushing the way the car moves adds energy on every swing; from rest, start up the left hill.
        force = EXPERT_FORCE_SHARE * self.action_high
        dtype = self.action_space.dtype

        def policy(obs: np.ndarray) -> np.ndarray:
            return np.array([force if obs[1] > 0 else -force], dtype=dtype)

        return policy
