"""Walker2d (MuJoCo) as text: a two-legged robot walking forward."""

from __future__ import annotations

from textgym.envs.mujoco_common import MujocoTranslator, planar_body

__all__ = ["Walker2dTranslator"]

JOINTS = ("Thigh joint", "Leg joint", "Foot joint", "Left thigh joint", "Left leg joint", "Left foot joint")


class Walker2dTranslator(MujocoTranslator):
    """Speaks for ``Walker2d-v5``: torso height, angle and velocities and six joints (velocities clipped to +-10)."""

    name = "walker2d"
    action_names = ("thigh", "leg", "foot", "left_thigh", "left_leg", "left_foot")
    action_effects = tuple(f"torque on the {joint.removesuffix(' joint').lower()} rotor" for joint in JOINTS)
    components = planar_body("Torso", JOINTS)
    velocity_clip = 10.0
