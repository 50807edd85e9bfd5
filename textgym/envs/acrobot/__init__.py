"""Acrobot as text: two links hanging from a pivot, with a motor only in the joint between them."""

from __future__ import annotations

import math
import re
from typing import Any, cast

import gymnasium as gym
import numpy as np

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.translator import Policy, Translator

__all__ = ["AcrobotTranslator"]

DIGITS = 3
# AcrobotEnv._terminal compares the free end's height with a literal 1.0; there is no attribute to read.
TARGET_HEIGHT = 1.0
# Index of each torque direction in the env's AVAIL_TORQUE = [-1, 0, +1].
CLOCKWISE, NO_TORQUE, COUNTERCLOCKWISE = 0, 1, 2


# The obfuscated variant (textgym.obfuscation): two jointed parts under gravity, one motor at the joint.
OBFUSCATION = ObfuscationSpec(
    objects=("inner", "outer", "act0", "act1", "act2"),
    quantities=(Quantity("{inner} c"), Quantity("{inner} s"), Quantity("{outer} c"), Quantity("{outer} s"),
                Quantity("{inner} spin"), Quantity("{outer} spin")),
    actions=("{act0}", "{act1}", "{act2}"),
    giveaways=("acrobot", "Acrobot-v1", "TextGym-Acrobot-v0", "link", "links", "pendulum", "gymnast", "swing",
               "torque", "clockwise", "counterclockwise", "pivot", "4 pi", "9 pi"),
    templates="acrobot/templates/obfuscated",
)


class AcrobotTranslator(Translator):
    """Speaks for ``Acrobot-v1``: link angles in radians from hanging straight down, turn directions in words.

    Angles grow counterclockwise as the env draws them (link 1 at a small positive angle has swung to
    the right). The observation gives each angle as its cosine and sine; the text prints both, so the
    raw vector can be read back exactly, next to the angle they describe. Link lengths, torques and
    the step length are read from the env.
    """

    name = "acrobot"
    action_names = ("torque clockwise", "no torque", "torque counterclockwise")
    fallback_action_index = NO_TORQUE

    def template_context(self) -> dict[str, Any]:
        high = cast(gym.spaces.Box, self.observation_space).high
        return {**super().template_context(), "digits": DIGITS,
                "link_length_1": float(self.env.LINK_LENGTH_1), "link_length_2": float(self.env.LINK_LENGTH_2),
                "torques": [float(torque) for torque in self.env.AVAIL_TORQUE], "step_seconds": float(self.env.dt),
                "target_height": TARGET_HEIGHT, "straight_up": math.pi,
                "max_speed_1": float(high[4]), "max_speed_2": float(high[5])}

    def describe(self, obs: Any) -> dict[str, Any]:
        cos_1, sin_1, cos_2, sin_2, speed_1, speed_2 = (float(v) for v in obs)
        # cos(angle_1 + angle_2) from the observed cosines and sines, so the height matches the text.
        cos_sum = cos_1 * cos_2 - sin_1 * sin_2
        return {"link_1_cos": cos_1, "link_1_sin": sin_1, "link_1_angle": math.atan2(sin_1, cos_1),
                "link_1_angular_velocity": speed_1,
                "link_2_cos": cos_2, "link_2_sin": sin_2, "link_2_angle": math.atan2(sin_2, cos_2),
                "link_2_angular_velocity": speed_2,
                "end_height": -self.env.LINK_LENGTH_1 * cos_1 - self.env.LINK_LENGTH_2 * cos_sum}

    def read_observation(self, text: str) -> np.ndarray:
        signed, number = r"(-?\d+\.\d+)", r"(\d+\.\d+)"
        values: list[float] = []
        for link in (1, 2):
            match = re.search(rf"Link {link} .*?\(cos {signed}, sin {signed}\), rotating "
                              rf"(clockwise|counterclockwise) at {number} rad/s", text)
            if match is None:
                raise ValueError(f"no description of link {link} in {text!r}")
            cos, sin, turn, speed = match.groups()
            values += [float(cos), float(sin)]
            values.append(float(speed) * (1 if turn == "counterclockwise" else -1))
        cos_1, sin_1, speed_1, cos_2, sin_2, speed_2 = values
        return np.array([cos_1, sin_1, cos_2, sin_2, speed_1, speed_2])

    @property
    def observation_precision(self) -> float:
        return 0.5 * 10**-DIGITS

    def obfuscation_spec(self) -> ObfuscationSpec:
        return OBFUSCATION

    def expert_policy(self, env: gym.Env) -> Policy:
        # Energy pumping: torque the elbow the way it already turns. Each swing then adds energy,
        # and the free end clears the target height within about 80 steps on average.
        return lambda obs: COUNTERCLOCKWISE if obs[5] > 0 else CLOCKWISE
