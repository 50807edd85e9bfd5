"""InvertedPendulum (MuJoCo) as text: a cart balancing a pole, pushed by one force."""

from __future__ import annotations

from typing import Any

import numpy as np

from textgym.envs.mujoco_common import Component, MujocoTranslator, lqr_gain
from textgym.translator import Policy

__all__ = ["InvertedPendulumTranslator"]

# LQR weights on (cart position, pole angle, cart velocity, pole angular velocity) and on the control.
STATE_COST, CONTROL_COST = (1.0, 1.0, 0.1, 0.1), 1.0


class InvertedPendulumTranslator(MujocoTranslator):
    """Speaks for ``InvertedPendulum-v5``: cart position and velocity, pole angle and angular velocity."""

    name = "inverted_pendulum"
    has_controller = True
    components = (Component("Cart", "position", "m"), Component("Pole", "angle from upright", "rad"),
                  Component("Cart", "velocity", "m/s"), Component("Pole", "angular velocity", "rad/s"))

    def controller(self, task: Any) -> Policy:
        """LQR about the upright pole (observation = MuJoCo state): 1,000, the maximum, on every seed tested."""
        gain = lqr_gain(task, np.diag(STATE_COST), np.eye(1) * CONTROL_COST)
        low, high = self.action_low, self.action_high
        return lambda obs: np.clip(-gain @ np.asarray(obs, dtype=float), low, high).astype(np.float32)

    def gains(self) -> list[float]:
        """The expert's weights (push = sum of weight x state), so that L5's teaching can show its arithmetic."""
        return [float(g) for g in -lqr_gain(self.env, np.diag(STATE_COST), np.eye(1) * CONTROL_COST)[0]]

    def teaching_context(self) -> dict[str, Any]:
        return {**super().teaching_context(), "gains": self.gains()}

    def guidance(self) -> str:
        return self._render("guidance", gains=self.gains())
