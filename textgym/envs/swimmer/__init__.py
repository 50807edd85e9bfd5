"""Swimmer (MuJoCo) as text: a three-segment swimmer in a viscous fluid, driven by two rotors."""

from __future__ import annotations

from typing import Any

import numpy as np

from textgym.envs.mujoco_common import Component, MujocoTranslator
from textgym.translator import Policy

__all__ = ["SwimmerTranslator"]

TIP, FIRST, SECOND = "Front tip", "First rotor", "Second rotor"
# A linear feedback policy, action = clip(GAIN @ observation): found by augmented random search (Mania et al.,
# 2018: 8 directions, top 4, step 0.02, noise 0.05, 60 iterations from zero, rng seed 0; about two minutes here)
# on the default observation, rounded to 3 decimals, then measured: 354.5 over seeds 0-9 (352-357 each; zoo PPO
# 281.6, gymnasium's threshold 360). The feedback through the rotor angles and speeds makes the travelling wave.
GAIN = np.array([[0.198, 0.174, -0.455, -0.002, 0.314, -0.22, 0.366, -0.306],
                 [-0.119, 0.224, -0.211, -0.05, 0.245, -0.374, 0.496, 0.174]])


class SwimmerTranslator(MujocoTranslator):
    """Speaks for ``Swimmer-v5``: the front tip's angle and velocity and the two rotors' angles and velocities."""

    name = "swimmer"
    has_controller = True
    action_names = ("first_rotor", "second_rotor")
    action_effects = ("torque on the first rotor", "torque on the second rotor")
    components = (
        Component(TIP, "x position", "m", position=True), Component(TIP, "y position", "m", position=True),
        Component(TIP, "angle", "rad"), Component(FIRST, "angle", "rad"), Component(SECOND, "angle", "rad"),
        Component(TIP, "velocity along x", "m/s"), Component(TIP, "velocity along y", "m/s"),
        Component(TIP, "angular velocity", "rad/s"), Component(FIRST, "angular velocity", "rad/s"),
        Component(SECOND, "angular velocity", "rad/s"),
    )

    def controller(self, task: Any) -> Policy:
        """The linear policy above, on the default observation (its x and y positions left out)."""
        low, high = np.array(self.action_lows), np.array(self.action_highs)
        drop = 2 if self.positions_included else 0  # the gain was found without the tip's x and y

        return lambda obs: np.clip(GAIN @ np.asarray(obs, dtype=float)[drop:], low, high).astype(np.float32)
