"""Reacher (MuJoCo) as text: a two-jointed arm moving its fingertip to a target."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from textgym.envs.mujoco_common import Component, MujocoTranslator
from textgym.templating import fixed
from textgym.translator import Policy

__all__ = ["ReacherTranslator"]

FIRST, SECOND = "First arm", "Second arm (angle relative to the first arm)"
TO_TARGET = "Fingertip minus target"
# Joint-space PD gains towards the inverse-kinematics angles: tuned on seeds 0-49 against the control cost
# (stiffer arms reach sooner but pay more for torque).
ANGLE_GAIN, DAMPING_GAIN = 0.3, 0.05


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def reach_angles(target: tuple[float, float], lengths: tuple[float, float], current: tuple[float, float]
                 ) -> tuple[float, float]:
    """Joint angles putting a two-link arm's tip on ``target`` (the elbow solution nearer ``current``)."""
    l1, l2 = lengths
    x, y = target
    reach = min(math.hypot(x, y), (l1 + l2) * 0.9999)
    cos_elbow = max(-1.0, min(1.0, (reach**2 - l1**2 - l2**2) / (2 * l1 * l2)))
    solutions = []
    for sign in (1, -1):
        elbow = sign * math.acos(cos_elbow)
        shoulder = math.atan2(y, x) - math.atan2(l2 * math.sin(elbow), l1 + l2 * math.cos(elbow))
        solutions.append((abs(_wrap(shoulder - current[0])) + abs(_wrap(elbow - current[1])), shoulder, elbow))
    _, shoulder, elbow = min(solutions)
    return shoulder, elbow


class ReacherTranslator(MujocoTranslator):
    """Speaks for ``Reacher-v5``: arm angles as cosine and sine, the target, and the fingertip's offset from it."""

    name = "reacher"
    has_controller = True
    action_names = ("first_hinge", "second_hinge")
    action_effects = ("torque at the first hinge, which connects the first arm to the fixed base",
                      "torque at the second hinge, which connects the two arms")
    components = (
        Component(FIRST, "angle cosine"), Component(SECOND, "angle cosine"),
        Component(FIRST, "angle sine"), Component(SECOND, "angle sine"),
        Component("Target", "x", "m"), Component("Target", "y", "m"),
        Component(FIRST, "angular velocity", "rad/s"), Component(SECOND, "angular velocity", "rad/s"),
        Component(TO_TARGET, "x", "m"), Component(TO_TARGET, "y", "m"),
    )

    def extra_facts(self, values: np.ndarray) -> list[str]:
        first, second = math.atan2(values[2], values[0]), math.atan2(values[3], values[1])
        distance = math.hypot(values[8], values[9])
        return [f"From cosine and sine: the first arm's angle is {fixed(first, 3)} rad and the second arm's "
                f"{fixed(second, 3)} rad relative to the first. The fingertip is {fixed(distance, 3)} m from the "
                "target."]

    def controller(self, task: Any) -> Policy:
        """Inverse kinematics for the target, then PD in joint space: about -3.4 per episode (zoo PPO: about -4)."""
        # Link lengths from the model: the second body's offset and the fingertip's offset on it.
        lengths = (float(np.linalg.norm(task.model.body("body1").pos)),
                   float(np.linalg.norm(task.model.body("fingertip").pos)))
        lows, highs = np.array(self.action_lows), np.array(self.action_highs)

        def act(obs: Any) -> np.ndarray:
            o = np.asarray(obs, dtype=float)
            current = (math.atan2(o[2], o[0]), math.atan2(o[3], o[1]))
            wanted = reach_angles((o[4], o[5]), lengths, current)
            error = np.array([_wrap(wanted[0] - current[0]), _wrap(wanted[1] - current[1])])
            return np.clip(ANGLE_GAIN * error - DAMPING_GAIN * o[6:8], lows, highs).astype(np.float32)

        return act

    def obfuscation_facts(self) -> dict[str, Any]:
        return {"angle_gain": ANGLE_GAIN, "damping_gain": DAMPING_GAIN}

    def teaching_context(self) -> dict[str, Any]:
        lengths = (float(np.linalg.norm(self.env.model.body("body1").pos)),
                   float(np.linalg.norm(self.env.model.body("fingertip").pos)))

        def plan(values: list[float]) -> dict[str, float]:
            current = (math.atan2(values[2], values[0]), math.atan2(values[3], values[1]))
            wanted = reach_angles((values[4], values[5]), lengths, current)
            return {"shoulder": current[0], "elbow": current[1], "wanted_shoulder": wanted[0],
                    "wanted_elbow": wanted[1], "shoulder_error": _wrap(wanted[0] - current[0]),
                    "elbow_error": _wrap(wanted[1] - current[1])}

        return {**super().teaching_context(), "plan": plan, "lengths": lengths, "angle_gain": ANGLE_GAIN,
                "damping_gain": DAMPING_GAIN}

    def guidance(self) -> str:
        return self._render("guidance", angle_gain=ANGLE_GAIN, damping_gain=DAMPING_GAIN)
