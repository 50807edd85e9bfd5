"""Pusher (MuJoCo) as text: a seven-jointed arm pushing an object to a goal on a table."""

from __future__ import annotations

import math

import numpy as np

from textgym.envs.mujoco_common import Component, MujocoTranslator
from textgym.templating import fixed

__all__ = ["PusherTranslator"]

JOINTS = ("Shoulder pan joint", "Shoulder lift joint", "Upper arm roll joint", "Elbow flex joint",
          "Forearm roll joint", "Wrist flex joint", "Wrist roll joint")


class PusherTranslator(MujocoTranslator):
    """Speaks for ``Pusher-v5``: seven joint angles and velocities, and the fingertip, object and goal positions."""

    name = "pusher"
    action_names = ("shoulder_pan", "shoulder_lift", "upper_arm_roll", "elbow_flex", "forearm_roll", "wrist_flex",
                    "wrist_roll")
    action_effects = tuple(f"torque on the {joint[0].lower()}{joint[1:]}" for joint in JOINTS)
    components = (
        *(Component(joint, "angle", "rad") for joint in JOINTS),
        *(Component(joint, "angular velocity", "rad/s") for joint in JOINTS),
        *(Component(part, axis, "m") for part in ("Fingertip", "Object", "Goal") for axis in "xyz"),
    )

    def extra_facts(self, values: np.ndarray) -> list[str]:
        fingertip, thing, goal = values[14:17], values[17:20], values[20:23]
        return [f"The object is {fixed(math.dist(thing[:2], goal[:2]), 3)} m from the goal across the table, and "
                f"the fingertip {fixed(math.dist(fingertip, thing), 3)} m from the object."]
