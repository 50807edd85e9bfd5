"""Hopper (MuJoCo) as text: a one-legged robot hopping forward."""

from __future__ import annotations

from textgym.envs.mujoco_common import MujocoTranslator, planar_body

__all__ = ["HopperTranslator"]

JOINTS = ("Thigh joint", "Leg joint", "Foot joint")


class HopperTranslator(MujocoTranslator):
    """Speaks for ``Hopper-v5``: torso height, angle and velocities and three joints (velocities clipped to +-10)."""

    name = "hopper"
    action_names = ("thigh", "leg", "foot")
    action_effects = ("torque on the thigh rotor", "torque on the leg rotor", "torque on the foot rotor")
    components = planar_body("Torso", JOINTS)
    velocity_clip = 10.0
