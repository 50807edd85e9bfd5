"""InvertedPendulum (MuJoCo) as text: a cart balancing a pole, pushed by one force."""

from __future__ import annotations

from textgym.envs.mujoco_common import Component, LQRTranslator

__all__ = ["InvertedPendulumTranslator"]


class InvertedPendulumTranslator(LQRTranslator):
    """Speaks for ``InvertedPendulum-v5``: cart position and velocity, pole angle and angular velocity."""

    name = "inverted_pendulum"
    # LQR weights on (cart position, pole angle, cart velocity, pole angular velocity): 1,000, the maximum, on
    # every seed tested.
    state_cost = (1.0, 1.0, 0.1, 0.1)
    components = (Component("Cart", "position", "m"), Component("Pole", "angle from upright", "rad"),
                  Component("Cart", "velocity", "m/s"), Component("Pole", "angular velocity", "rad/s"))
