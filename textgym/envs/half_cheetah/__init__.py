"""HalfCheetah (MuJoCo) as text: a two-legged planar cheetah running forward."""

from __future__ import annotations

from textgym.envs.mujoco_common import MujocoTranslator, planar_body

__all__ = ["HalfCheetahTranslator"]

JOINTS = ("Back thigh", "Back shin", "Back foot", "Front thigh", "Front shin", "Front foot")


class HalfCheetahTranslator(MujocoTranslator):
    """Speaks for ``HalfCheetah-v5``: the front tip's height, angle and velocities and six joints."""

    name = "half_cheetah"
    action_names = ("back_thigh", "back_shin", "back_foot", "front_thigh", "front_shin", "front_foot")
    action_effects = tuple(f"torque on the {joint.lower()} rotor" for joint in JOINTS)
    components = planar_body("Front tip", JOINTS)
