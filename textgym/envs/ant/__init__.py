"""Ant (MuJoCo) as text: a four-legged robot walking forward, with its contact forces when observed."""

from __future__ import annotations

from textgym.envs.mujoco_common import Component, MujocoTranslator

__all__ = ["AntTranslator"]

TORSO = "Torso"
# qpos/qvel order of the leg joints, with gymnasium's names for them.
JOINTS = ("Front left hip (hip_1)", "Front left ankle (ankle_1)", "Front right hip (hip_2)",
          "Front right ankle (ankle_2)", "Back left hip (hip_3)", "Back left ankle (ankle_3)",
          "Back right hip (hip_4)", "Back right ankle (ankle_4)")
# The 13 bodies after the world body, in cfrc_ext order, as gymnasium's docs name them.
BODIES = ("torso", "front_left_leg", "aux_1 (front left leg)", "ankle_1 (front left leg)", "front_right_leg",
          "aux_2 (front right leg)", "ankle_2 (front right leg)", "back_leg (back left leg)",
          "aux_3 (back left leg)", "ankle_3 (back left leg)", "right_back_leg (back right leg)",
          "aux_4 (back right leg)", "ankle_4 (back right leg)")
# MuJoCo's spatial order: torque (rotation) first, then force (translation); tests/textgym/envs/test_mujoco.py
# checks it on a standing Ant (the ground pushes its feet up: force z > 0).
CONTACT_LABELS = (("torque x", "N m"), ("torque y", "N m"), ("torque z", "N m"), ("force x", "N"), ("force y", "N"),
                  ("force z", "N"))
CONTACT_GROUPS = tuple(f"Contact forces on {body}" for body in BODIES)


class AntTranslator(MujocoTranslator):
    """Speaks for ``Ant-v5``: torso pose and velocities, eight leg joints, and the clipped contact forces."""

    name = "ant"
    action_names = ("back_right_hip", "back_right_ankle", "front_left_hip", "front_left_ankle", "front_right_hip",
                    "front_right_ankle", "back_left_hip", "back_left_ankle")
    action_effects = ("torque on the rotor between the torso and the back right hip (hip_4)",
                      "torque on the rotor between the back right leg's two links (angle_4)",
                      "torque on the rotor between the torso and the front left hip (hip_1)",
                      "torque on the rotor between the front left leg's two links (angle_1)",
                      "torque on the rotor between the torso and the front right hip (hip_2)",
                      "torque on the rotor between the front right leg's two links (angle_2)",
                      "torque on the rotor between the torso and the back left hip (hip_3)",
                      "torque on the rotor between the back left leg's two links (angle_3)")
    components = (
        Component(TORSO, "x position", "m", position=True), Component(TORSO, "y position", "m", position=True),
        Component(TORSO, "height", "m"),
        *(Component(TORSO, f"orientation quaternion {axis}") for axis in "wxyz"),
        *(Component(joint, "angle", "rad") for joint in JOINTS),
        *(Component(TORSO, f"velocity {axis}", "m/s") for axis in "xyz"),
        *(Component(TORSO, f"angular velocity {axis}", "rad/s") for axis in "xyz"),
        *(Component(joint, "angular velocity", "rad/s") for joint in JOINTS),
    )
    contact_components = tuple(Component(group, label, unit) for group in CONTACT_GROUPS
                               for label, unit in CONTACT_LABELS)
    compressible_groups = frozenset(CONTACT_GROUPS)

    @property
    def contact_forces_included(self) -> bool:
        return bool(getattr(self.env, "_include_cfrc_ext_in_observation", True))

    def observation_layout(self) -> list[Component]:
        contacts = list(self.contact_components) if self.contact_forces_included else []
        return super().observation_layout() + contacts
