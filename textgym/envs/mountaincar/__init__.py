"""MountainCar as text: an underpowered car in a valley that must rock back and forth to reach a flag."""

from __future__ import annotations

import copy
import math
import re
from typing import Any, ClassVar, cast

import gymnasium as gym
import numpy as np

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.registration import ENVS
from textgym.translator import Policy, Translator

__all__ = ["MountainCarTranslator"]

DIGITS = 4
# The track's height is sin(3 x) (MountainCarEnv._height), lowest where 3 x = -pi / 2.
VALLEY_POSITION = -math.pi / 6
PUSH_LEFT, NO_PUSH, PUSH_RIGHT = 0, 1, 2


# The obfuscated variant (textgym.obfuscation): a body in a basin too steep to climb directly.
OBFUSCATION = ObfuscationSpec(
    objects=("body", "act0", "act1", "act2"),
    quantities=(Quantity("{body} place"), Quantity("{body} pace")),
    actions=("{act0}", "{act1}", "{act2}"),
    giveaways=("car", "mountain", "mountaincar", "MountainCar-v0", "TextGym-MountainCar-v0", "hill", "hills",
               "valley", "flag", "engine", "left", "right", "0.5", "-1.2", "0.6", "0.07", "-0.52"),
    templates="mountaincar/templates/obfuscated",
)


class MountainCarTranslator(Translator):
    """Speaks for ``MountainCar-v0``: position on the track in metres, speed per step, directions in words.

    Positions grow to the right; the flag stands on the right hill, where the car's engine alone is
    too weak to drive it.
    """

    name = "mountaincar"
    action_names: ClassVar[tuple[str, ...]] = ("push left", "do not push", "push right")
    fallback_action_index = NO_PUSH

    @property
    def goal_position(self) -> float:
        """Where the flag stands, in metres (an attribute of the env, not of its spaces)."""
        return float(self.env.goal_position)

    def template_context(self) -> dict[str, Any]:
        box = cast(gym.spaces.Box, self.observation_space)
        low, high = box.low, box.high
        return {**super().template_context(), "digits": DIGITS,
                "left_end": float(low[0]), "right_end": float(high[0]), "max_speed": float(high[1]),
                "goal_position": self.goal_position, "goal_velocity": float(self.env.goal_velocity),
                "valley_position": VALLEY_POSITION}

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

    def obfuscation_spec(self) -> ObfuscationSpec:
        return OBFUSCATION

    def expert_policy(self, env: gym.Env) -> Policy:
        """Push the way the car moves, which adds energy on every swing; from rest, try both ways first.

        The first push decides how many swings the car needs, and which side is better depends
        finely on the start, so the policy plays both out on a copy of the env and keeps the faster.
        """
        model: Any = copy.deepcopy(env.unwrapped)  # MountainCarEnv: its state is set directly below
        step_limit = gym.spec(ENVS[self.name].text_id).max_episode_steps
        assert step_limit is not None, "TextGym-MountainCar-v0 is registered with MountainCar-v0's step limit"

        def follow_velocity(velocity: float) -> int:
            return PUSH_RIGHT if velocity > 0 else PUSH_LEFT

        def steps_to_goal(obs: np.ndarray, first_action: int) -> int:
            model.state = np.array(obs, dtype=np.float64)
            action = first_action
            for steps in range(1, step_limit + 1):
                next_obs, _, terminated, _, _ = model.step(action)
                if terminated:
                    return steps
                action = follow_velocity(float(next_obs[1]))
            return step_limit + 1

        def policy(obs: np.ndarray) -> int:
            if obs[1] == 0:
                return min((PUSH_LEFT, PUSH_RIGHT), key=lambda action: steps_to_goal(obs, action))
            return follow_velocity(float(obs[1]))

        return policy
