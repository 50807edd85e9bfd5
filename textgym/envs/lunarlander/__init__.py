"""LunarLander as text: steering a lander with three engines onto a landing pad."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.box2d.lunar_lander import heuristic

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.translator import Policy, Translator

__all__ = ["LunarLanderTranslator"]

DIGITS = 3
# The episode ends once |horizontal position| reaches 1 (LunarLander.step); the observation space
# allows more, so the limit is not in the spaces.
SCREEN_EDGE = 1.0
NUMBER = r"(\d+\.\d+)"


# The obfuscated variant (textgym.obfuscation): a craft falling onto a target zone, steered by three thrusters.
OBFUSCATION = ObfuscationSpec(
    objects=("craft", "zone", "act0", "act1", "act2", "act3", "foot1", "foot2"),
    quantities=(Quantity("{craft} across"), Quantity("{craft} height"), Quantity("{craft} across rate"),
                Quantity("{craft} height rate"), Quantity("{craft} tilt"), Quantity("{craft} tilt rate"),
                Quantity("{foot1} contact"), Quantity("{foot2} contact")),
    actions=("{act0}", "{act1}", "{act2}", "{act3}"),
    giveaways=("lander", "lunar", "moon", "LunarLander", "LunarLander-v3", "TextGym-LunarLander-v0", "landing",
               "land", "flag", "flags", "engine", "engines", "leg", "legs", "pilot", "clockwise",
               "counterclockwise", "left", "right", "orientation"),
    templates="lunarlander/templates/obfuscated",
)


class LunarLanderTranslator(Translator):
    """Speaks for ``LunarLander-v3``: position and speed relative to the pad, tilt, spin and leg contact.

    The observation's last two entries are the leg contacts in gymnasium's leg order: its first
    leg is built on the right-hand side of the lander (positive x), the second on the left. Gravity and
    wind (``gym.make(..., gravity=..., enable_wind=True)``) are read from the env; the continuous variant
    (``continuous=True``, a 2-D action) is not supported.

    Example:
        >>> from textgym.wrapper import make_base_env
        >>> base = make_base_env("lunarlander")
        >>> translator = LunarLanderTranslator(base)
        >>> translator.render_observation([0.1, 1.2, 0, -0.3, 0.05, 0, 1, 0]).split(". ")[0]
        'The lander is 0.100 right of the landing pad centre and 1.200 above the pad'
    """

    name = "lunarlander"
    # Index = raw action (LunarLander's docs: 0 noop, 1 left engine, 2 main engine, 3 right engine).
    action_names = ("do nothing", "fire left orientation engine", "fire main engine",
                    "fire right orientation engine")

    def template_context(self) -> dict[str, Any]:
        return {**super().template_context(), "digits": DIGITS, "screen_edge": SCREEN_EDGE,
                "gravity": abs(float(self.env.gravity)), "enable_wind": bool(self.env.enable_wind),
                "wind_power": float(self.env.wind_power), "turbulence_power": float(self.env.turbulence_power)}

    def describe(self, obs: Any) -> dict[str, Any]:
        (horizontal_position, vertical_position, horizontal_velocity, vertical_velocity, angle,
         angular_velocity, right_leg_contact, left_leg_contact) = (float(v) for v in obs)
        return {"horizontal_position": horizontal_position, "vertical_position": vertical_position,
                "horizontal_velocity": horizontal_velocity, "vertical_velocity": vertical_velocity,
                "angle": angle, "angular_velocity": angular_velocity,
                "left_leg_contact": left_leg_contact, "right_leg_contact": right_leg_contact}

    def read_observation(self, text: str) -> np.ndarray:
        signed = (
            (rf"lander is {NUMBER} (right|left) of the landing pad", "right"),
            (rf"and {NUMBER} (above|below) the pad", "above"),
            (rf"moves (right|left) at {NUMBER}", "right"),
            (rf"and (up|down) at {NUMBER}", "up"),
            (rf"tilted {NUMBER} rad (counterclockwise|clockwise)", "counterclockwise"),
            (rf"turning (counterclockwise|clockwise) at {NUMBER}", "counterclockwise"),
        )
        values = []
        for pattern, positive in signed:
            match = _search(pattern, text)
            word, number = sorted(match.groups(), key=lambda group: group[0].isdigit())
            values.append(float(number) * (1 if word == positive else -1))
        # Gymnasium's order: right leg, then left leg.
        values += [_leg_contact(_search(rf"{side} leg (touches the ground|is off the ground|has ground contact "
                                        rf"{NUMBER})", text)) for side in ("right", "left")]
        return np.array(values)

    @property
    def observation_precision(self) -> float:
        return 0.5 * 10**-DIGITS

    def obfuscation_spec(self) -> ObfuscationSpec:
        return OBFUSCATION

    def expert_policy(self, env: gym.Env) -> Policy:
        # Gymnasium's own hand-tuned controller; it reads env.unwrapped to tell discrete from continuous.
        return lambda obs: int(heuristic(env, obs))


def _search(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"no match for {pattern!r} in {text!r}")
    return match


def _leg_contact(match: re.Match[str]) -> float:
    if match.group(2) is not None:
        return float(match.group(2))
    return 1.0 if match.group(1) == "touches the ground" else 0.0
