"""Pendulum as text: swing a motorised pendulum up from any angle and balance it upright."""

from __future__ import annotations

import math
import re
from typing import Any, cast

import gymnasium as gym
import numpy as np

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.translator import Policy, Translator

__all__ = ["PendulumTranslator"]

DIGITS = 3
# PendulumEnv.step uses literal weights in its cost; there are no attributes to read.
SPEED_COST = 0.1
TORQUE_COST = 0.001
# The expert balances with proportional-derivative feedback once the pendulum is this close to
# upright (cosine of its angle); below it, it pumps energy. Stiff gains: the torque saturates anyway.
BALANCE_ZONE_COS = 0.9
ANGLE_GAIN = 10.0
SPEED_GAIN = 2.0


# The obfuscated variant (textgym.obfuscation): a rotor under gravity with a motor, its phase as cosine and sine.
OBFUSCATION = ObfuscationSpec(
    objects=("rotor",),
    quantities=(Quantity("{rotor} c"), Quantity("{rotor} s"), Quantity("{rotor} spin")),
    actions=(),
    giveaways=("pendulum", "Pendulum-v1", "TextGym-Pendulum-v0", "upright", "hanging", "hinge", "hinged", "swing",
               "clockwise", "counterclockwise", "torque", "8.0", "10.0", "-2.0", "2.0"),
    templates="pendulum/templates/obfuscated",
)


class PendulumTranslator(Translator):
    """Speaks for ``Pendulum-v1``: the angle in radians from upright, turn directions in words.

    Angles and torques are positive counterclockwise, as the env draws them (a small positive angle
    leans the pendulum to the left). The observation gives the angle as its cosine and sine; the
    text prints both, so the raw vector can be read back exactly, next to the angle they describe.
    Gravity (``gym.make(..., g=...)``) is read from the env.
    """

    name = "pendulum"

    def template_context(self) -> dict[str, Any]:
        return {**super().template_context(), "digits": DIGITS, "hanging_down": math.pi,
                "gravity": float(self.env.g),
                # Holding the pendulum horizontal takes a torque of m g l / 2 (PendulumEnv.step's dynamics).
                "motor_lifts": self.action_high >= self.env.m * self.env.g * self.env.l / 2,
                "max_speed": float(cast(gym.spaces.Box, self.observation_space).high[2]),
                "speed_cost": SPEED_COST, "torque_cost": TORQUE_COST,
                "balance_zone_angle": math.acos(BALANCE_ZONE_COS), "angle_gain": ANGLE_GAIN,
                "speed_gain": SPEED_GAIN}

    def describe(self, obs: Any) -> dict[str, Any]:
        cos, sin, angular_velocity = (float(v) for v in obs)
        return {"cos": cos, "sin": sin, "angle": math.atan2(sin, cos), "angular_velocity": angular_velocity}

    def read_observation(self, text: str) -> np.ndarray:
        match = re.search(r"\(cos (-?\d+\.\d+), sin (-?\d+\.\d+)\), rotating (clockwise|counterclockwise) "
                          r"at (\d+\.\d+) rad/s", text)
        if match is None:
            raise ValueError(f"no angle and angular velocity in {text!r}")
        cos, sin, turn, speed = match.groups()
        return np.array([float(cos), float(sin), float(speed) * (1 if turn == "counterclockwise" else -1)])

    @property
    def observation_precision(self) -> float:
        return 0.5 * 10**-DIGITS

    def obfuscation_spec(self) -> ObfuscationSpec:
        return OBFUSCATION

    def expert_policy(self, env: gym.Env) -> Policy:
        """Energy pumping far from upright, proportional-derivative balancing near it.

        The model is ``angular acceleration = a sin(angle) + b torque`` (``PendulumEnv.step``), which
        conserves ``speed**2 / 2 + a cos(angle)``; upright at rest that is ``a``. Far from upright the
        expert torques along the motion while energy is short and against it when in excess.
        """
        pendulum: Any = env.unwrapped  # PendulumEnv: g and l are its own attributes, not gym.Env's
        gravity_term = 3 * pendulum.g / (2 * pendulum.l)
        max_torque, dtype = self.action_high, self.action_space.dtype

        def policy(obs: np.ndarray) -> np.ndarray:
            cos, sin, speed = (float(v) for v in obs)
            if cos > BALANCE_ZONE_COS:
                torque = -ANGLE_GAIN * math.atan2(sin, cos) - SPEED_GAIN * speed
            elif speed == 0:
                torque = max_torque  # at rest the energy rule gives 0: any push starts the swing
            else:
                energy_gap = speed**2 / 2 + gravity_term * cos - gravity_term
                torque = -energy_gap * speed
            return np.array([min(max(torque, -max_torque), max_torque)], dtype=dtype)

        return policy
