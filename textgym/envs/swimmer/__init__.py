"""Swimmer (MuJoCo) as text: a three-segment swimmer in a viscous fluid, driven by two rotors."""

from __future__ import annotations

from textgym.envs.mujoco_common import Component, MujocoTranslator

__all__ = ["SwimmerTranslator"]

TIP, FIRST, SECOND = "Front tip", "First rotor", "Second rotor"


class SwimmerTranslator(MujocoTranslator):
    """Speaks for ``Swimmer-v5``: the front tip's angle and velocity and the two rotors' angles and velocities."""

    name = "swimmer"
    action_names = ("first_rotor", "second_rotor")
    action_effects = ("torque on the first rotor", "torque on the second rotor")
    components = (
        Component(TIP, "x position", "m", position=True), Component(TIP, "y position", "m", position=True),
        Component(TIP, "angle", "rad"), Component(FIRST, "angle", "rad"), Component(SECOND, "angle", "rad"),
        Component(TIP, "velocity along x", "m/s"), Component(TIP, "velocity along y", "m/s"),
        Component(TIP, "angular velocity", "rad/s"), Component(FIRST, "angular velocity", "rad/s"),
        Component(SECOND, "angular velocity", "rad/s"),
    )
