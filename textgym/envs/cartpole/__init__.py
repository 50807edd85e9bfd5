"""CartPole as text: a cart on a track balancing a pole hinged on top of it."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.translator import Policy, Translator

__all__ = ["CartPoleTranslator"]

DIGITS = 3
# State-feedback gains (position, velocity, angle, angular velocity): pushing towards the side the
# pole falls to, with a small pull back to the centre, balances for the whole 500 steps.
EXPERT_GAINS = np.array([0.1, 0.5, 3.0, 1.0])

# The obfuscated variant (textgym.obfuscation): an unstable rod on a sliding body, in invented names.
OBFUSCATION = ObfuscationSpec(
    objects=("body", "rod", "first", "second"),
    quantities=(Quantity("{body} offset"), Quantity("{body} drift"), Quantity("{rod} tilt"),
                Quantity("{rod} tilt rate")),
    actions=("press {first}", "press {second}"),
    giveaways=("cart", "pole", "cartpole", "cart-pole", "CartPole-v1", "TextGym-CartPole-v0", "track", "hinge",
               "hinged", "balance", "upright", "left", "right", "2.4", "12 degrees", "0.209", "0.2095"),
    templates="cartpole/templates/obfuscated",
)


class CartPoleTranslator(Translator):
    """Speaks for ``CartPole-v1``: positions in metres, angles in radians, directions in words.

    The termination bounds and the reward scheme are read from the env (``sutton_barto_reward`` changes the latter).
    """

    name = "cartpole"
    action_names = ("push left", "push right")

    def template_context(self) -> dict[str, Any]:
        return {**super().template_context(), "digits": DIGITS,
                "position_limit": float(self.env.x_threshold), "angle_limit": float(self.env.theta_threshold_radians),
                # gym.make(..., sutton_barto_reward=True) pays 0 per step and -1 on failure; the flag is only
                # kept in this private attribute.
                "sutton_barto_reward": bool(getattr(self.env, "_sutton_barto_reward", False))}

    def describe(self, obs: Any) -> dict[str, Any]:
        cart_position, cart_velocity, pole_angle, pole_angular_velocity = (float(v) for v in obs)
        return {"cart_position": cart_position, "cart_velocity": cart_velocity,
                "pole_angle": pole_angle, "pole_angular_velocity": pole_angular_velocity}

    def read_observation(self, text: str) -> np.ndarray:
        number = r"(\d+\.\d+)"
        patterns = (
            rf"cart is {number} m (right|left) of the centre",
            rf"moving (right|left) at {number} m/s",
            rf"pole leans {number} rad to the (right|left)",
            rf"rotating (right|left) at {number} rad/s",
        )
        values = []
        for pattern in patterns:
            match = re.search(pattern, text)
            if match is None:
                raise ValueError(f"no match for {pattern!r} in {text!r}")
            groups = match.groups()
            word, value = (groups[1], groups[0]) if groups[0][0].isdigit() else groups
            values.append(float(value) * (1 if word == "right" else -1))
        return np.array(values)

    @property
    def observation_precision(self) -> float:
        return 0.5 * 10**-DIGITS

    def expert_policy(self, env: gym.Env) -> Policy:
        return lambda obs: int(np.dot(EXPERT_GAINS, obs) > 0)

    def obfuscation_spec(self) -> ObfuscationSpec:
        return OBFUSCATION
