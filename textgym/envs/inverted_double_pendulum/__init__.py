"""InvertedDoublePendulum (MuJoCo) as text: a cart balancing two poles stacked on each other."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from textgym.envs.mujoco_common import Component, LQRTranslator
from textgym.templating import fixed

__all__ = ["InvertedDoublePendulumTranslator"]

LOWER, UPPER = "Lower pole", "Upper pole (angle relative to the lower pole)"


def mujoco_state(obs: Any) -> np.ndarray:
    """The MuJoCo state (cart, both angles, their velocities) behind an observation: angles from sine and cosine."""
    o = np.asarray(obs, dtype=float)
    return np.array([o[0], math.atan2(o[1], o[3]), math.atan2(o[2], o[4]), o[5], o[6], o[7]])


class InvertedDoublePendulumTranslator(LQRTranslator):
    """Speaks for ``InvertedDoublePendulum-v5``: the poles' angles as sine and cosine, velocities clipped to +-10."""

    name = "inverted_double_pendulum"
    # LQR weights on (cart position, lower pole angle, upper pole relative angle, and their velocities).
    state_cost = (1.0, 10.0, 10.0, 0.1, 0.1, 0.1)
    components = (
        Component("Cart", "position", "m"),
        Component(LOWER, "angle sine"), Component(UPPER, "angle sine"),
        Component(LOWER, "angle cosine"), Component(UPPER, "angle cosine"),
        Component("Cart", "velocity", "m/s"),
        Component(LOWER, "angular velocity", "rad/s"), Component(UPPER, "angular velocity", "rad/s"),
        Component("Cart", "constraint force", "N"),
    )
    velocity_clip = 10.0

    def extra_facts(self, values: np.ndarray) -> list[str]:
        lower = math.atan2(values[1], values[3])
        upper = math.atan2(values[2], values[4])
        return [f"From sine and cosine: the lower pole leans {fixed(lower, 3)} rad from upright and the upper pole "
                f"{fixed(lower + upper, 3)} rad from upright ({fixed(upper, 3)} rad relative to the lower pole)."]

    def lqr_state(self, obs: Any) -> np.ndarray:
        """LQR about both poles upright, from the angles the sines and cosines give: ~9,360 of about 9,360 possible."""
        return mujoco_state(obs)
