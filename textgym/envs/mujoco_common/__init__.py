"""What the MuJoCo text envs share: observation components named as gymnasium documents them, grouped by body part.

Each task lists its observation components in gymnasium's order (``COMPONENTS``: the body part or joint a value
belongs to, what it is, its unit), with the components that base-task kwargs add or remove marked: the x (and y)
position that ``exclude_current_positions_from_observation=False`` puts first, and Ant's contact forces that
``include_cfrc_ext_in_observation`` appends. The text gives each group as one sentence (``Thigh joint: angle
0.012 rad, angular velocity -0.341 rad/s.``) and :meth:`MujocoTranslator.read_observation` reads every value back.
Actions are one number per actuator (:class:`~textgym.translator.Translator`'s vector actions), named in
``action_names``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import scipy.linalg

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.templating import fixed
from textgym.translator import Policy, Translator

__all__ = ["Component", "MujocoTranslator", "LQRTranslator", "planar_body", "lqr_gain", "compact_number", "DIGITS"]

DIGITS = 3
# Words no obfuscated MuJoCo text may use, beyond each task's own (MujocoTranslator.obfuscation_words) and the
# words of its body parts and actuators; "joint" and the like are left to the plain text's generic vocabulary.
OBFUSCATION_GIVEAWAYS = ("mujoco", "robot", "torso", "leg", "legs", "thigh", "foot", "hinge", "rotor", "arm")
_GENERIC_WORDS = frozenset({"the", "to", "on", "relative", "minus", "aux", "joint", "contact", "forces", "of", "angle",
                            "first", "second", "object"})
_NUMBER = r"(-?\d+\.\d+)"


def compact_number(value: float) -> str:
    """``value`` to :data:`DIGITS` decimals without trailing zeros: ``1.25``, ``-0.005``, ``0``."""
    text = fixed(value, DIGITS).rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


@dataclass(frozen=True)
class Component:
    """One number of the observation.

    Attributes:
        group: the body part or joint it belongs to, e.g. ``"Thigh joint"``; one sentence of the text.
        label: what it is, unique within its group, e.g. ``"angular velocity"``.
        unit: ``"m"``, ``"rad"``, ``"m/s"``, ``"rad/s"``, ``"N"``, ... or ``""`` (unitless).
        position: a current x or y position, which gymnasium leaves out unless
            ``exclude_current_positions_from_observation=False``.
    """

    group: str
    label: str
    unit: str = ""
    position: bool = False


def planar_body(root: str, joints: tuple[str, ...]) -> tuple[Component, ...]:
    """The observation of a planar walker (Hopper, Walker2d, HalfCheetah).

    Its root's x position (excludable), height and angle, the joint angles, the root's velocities, then the joints'
    angular velocities.
    """
    return (
        Component(root, "x position", "m", position=True), Component(root, "height", "m"),
        Component(root, "angle", "rad"),
        *(Component(joint, "angle", "rad") for joint in joints),
        Component(root, "forward velocity", "m/s"), Component(root, "vertical velocity", "m/s"),
        Component(root, "angular velocity", "rad/s"),
        *(Component(joint, "angular velocity", "rad/s") for joint in joints),
    )


class MujocoTranslator(Translator):
    """Speaks for a gymnasium MuJoCo task (v5): grouped, named observation components and named actuators.

    Subclasses set :attr:`name`, :attr:`action_names`, :attr:`components` (gymnasium's order, positions
    included) and may add :meth:`extra_facts` (quantities computed from the observation).

    Raises:
        ValueError: if the base env's observation does not have the documented layout (e.g. another
            ``xml_file``), so that no text ever names a number wrongly.
    """

    has_controller = False  # the tasks with a controller of TextGym's own say so
    components: ClassVar[tuple[Component, ...]] = ()
    """The observation's components in gymnasium's order, with the excludable positions."""
    action_effects: ClassVar[tuple[str, ...]] = ()
    """What each actuator does, in gymnasium's words, in :attr:`action_names` order."""
    compressible_groups: ClassVar[frozenset[str]] = frozenset()
    """Groups written as "all zero" when every value in them prints as zero."""
    velocity_clip: ClassVar[float | None] = None
    obfuscation_words: ClassVar[tuple[str, ...]] = ()
    """Words that identify this task (its name, gym ids, its objects), for the obfuscated variant's no-leak check."""
    """Gymnasium clips these velocities in the observation to +-this value (Hopper, Walker2d, the double pendulum)."""

    def __init__(self, env: gym.Env) -> None:
        self.env = env.unwrapped  # observation_layout reads the kwargs from it
        self.layout = self.observation_layout()
        actuators = len(self.action_names) or 1
        if env.observation_space.shape != (len(self.layout),) or env.action_space.shape != (actuators,):
            raise ValueError(f"{type(self).__name__} describes the documented {self.name} model: an observation of "
                             f"{len(self.layout)} numbers for these kwargs and {actuators} actuators, actually "
                             f"{env.observation_space.shape} and {env.action_space.shape} (another xml_file?)")
        super().__init__(env)
        self.groups: dict[str, list[int]] = {}
        for index, component in enumerate(self.layout):
            self.groups.setdefault(component.group, []).append(index)

    @property
    def positions_included(self) -> bool:
        return not getattr(self.env, "_exclude_current_positions_from_observation", True)

    def observation_layout(self) -> list[Component]:
        """The components of this env's observation, for the kwargs it was made with."""
        return [c for c in self.components if self.positions_included or not c.position]

    def describe(self, obs: Any) -> dict[str, Any]:
        values = np.asarray(obs, dtype=float).reshape(-1)
        groups = []
        for title, indices in self.groups.items():
            items: list[dict[str, Any]] = [
                {"label": self.layout[i].label, "value": float(values[i]), "unit": self.layout[i].unit}
                for i in indices]
            # Ant's contact forces are mostly zero: "all zero" keeps the text short (and reads back as zeros).
            all_zero = title in self.compressible_groups and all(fixed(v["value"], DIGITS) == "0.000" for v in items)
            groups.append({"title": title, "items": items, "all_zero": all_zero})
        return {"groups": groups, "facts": self.extra_facts(values), "values": values.tolist()}

    def extra_facts(self, values: np.ndarray) -> list[str]:
        """Sentences with quantities computed from the observation (a distance, an angle); none here."""
        return []

    def render_observation(self, obs: Any) -> str:
        return self._render_shared("observation", **self.describe(obs))

    def read_observation(self, text: str) -> np.ndarray:
        values = np.zeros(len(self.layout))
        for title, indices in self.groups.items():
            start = text.find(f"{title}: ")
            if start < 0:
                raise ValueError(f"no {title!r} in {text!r}")
            start += len(title) + 2
            end = text.find(". ", start)
            sentence = text[start:] if end < 0 else text[start:end]
            if sentence.startswith("all zero"):
                continue
            for index in indices:
                match = re.search(rf"(?:^|, ){re.escape(self.layout[index].label)} {_NUMBER}", sentence)
                if match is None:
                    raise ValueError(f"no {self.layout[index].label!r} in {title!r}: {sentence!r}")
                values[index] = float(match.group(1))
        return values

    @property
    def observation_precision(self) -> float:
        return 0.5 * 10**-DIGITS

    # L2/L4 trajectories write each step compactly: a MuJoCo observation in words is 100-400 tokens (Ant's 105
    # numbers about 400), so the default 400-token trajectory would show one step or none. As numbers only, group
    # by group in the observation text's order, a step costs a fifth to a third of that.
    def trajectory_observation(self, obs: Any) -> str:
        values = np.asarray(obs, dtype=float).reshape(-1)
        parts = []
        for title, indices in self.groups.items():
            numbers = [compact_number(values[i]) for i in indices]
            zero = title in self.compressible_groups and all(number == "0" for number in numbers)
            parts.append("0" if zero else " ".join(numbers))
        return " | ".join(parts)

    def trajectory_action(self, action: Any) -> str:
        if not self.is_vector:
            return super().trajectory_action(action)
        # A JSON list in actuator order: an answer the parser reads too.
        values = np.asarray(action, dtype=float).reshape(-1)
        return "[" + ", ".join(fixed(value, self.action_digits) for value in values) + "]"

    def obfuscation_spec(self) -> ObfuscationSpec:
        """Every body part (group) gets an invented name, its values ``q1, q2, ...``; every actuator a name."""
        titles = list(self.groups)
        motors = len(self.action_names) if self.is_vector else 0
        quantities = tuple(Quantity(f"{{part{titles.index(c.group)}}} q{self.groups[c.group].index(i) + 1}")
                           for i, c in enumerate(self.layout))
        words = {word for text in (*titles, *self.action_names) for word in re.split(r"[^a-z0-9]+", text.lower())
                 if len(word) >= 3 and word not in _GENERIC_WORDS}
        task = type(self).__name__.removesuffix("Translator")
        return ObfuscationSpec(
            objects=(*(f"part{g}" for g in range(len(titles))), *(f"motor{m}" for m in range(motors))),
            quantities=quantities, actions=tuple(f"{{motor{m}}}" for m in range(motors)),
            giveaways=(*OBFUSCATION_GIVEAWAYS, task, f"{task}-v5", f"TextGym-{task}-v0", self.name,
                       *self.obfuscation_words, *sorted(words)),
            templates=f"{self.template_folder()}/obfuscated", shared_templates="mujoco_common/templates/obfuscated",
            facts={"index": {f"{c.group}/{c.label}": i for i, c in enumerate(self.layout)},
                   "parts": len(titles), "motors": max(motors, 1), **self.obfuscation_facts()})

    def obfuscation_facts(self) -> dict[str, Any]:
        """Task-specific values for the obfuscated templates (an expert's gains); none here."""
        return {}

    def trajectory_legend(self) -> str:
        sections: list[tuple[list[str], list[tuple[str, str]]]] = []  # runs of groups with the same labels and units
        for title, indices in self.groups.items():
            labels = [(self.layout[i].label, self.layout[i].unit) for i in indices]
            if sections and sections[-1][1] == labels:
                sections[-1][0].append(title)
            else:
                sections.append(([title], labels))
        return self._render_shared("trajectory_legend", sections=[(_join_titles(titles), _join_labels(labels))
                                                                  for titles, labels in sections],
                                   compressible=bool(self.compressible_groups & set(self.groups)))

    def template_context(self) -> dict[str, Any]:
        return {**super().template_context(), "dt": float(self.env.dt), "task": self.env, "digits": DIGITS,
                "action_effects": list(self.action_effects), "velocity_clip": self.velocity_clip,
                "positions_included": self.positions_included}

    def action_description(self) -> str:
        return self._render_shared("actions")

    def _render_shared(self, part: str, **values: Any) -> str:
        """A template of this task's own folder if it has one, else the shared MuJoCo one."""
        from textgym.templating import PACKAGE_DIR, render

        own = f"{self.template_folder()}/{part}.j2"
        template = own if (PACKAGE_DIR / "envs" / own).exists() else f"mujoco_common/templates/{part}.j2"
        return render(template, **self.template_context(), **values)

    def teaching_context(self) -> dict[str, Any]:
        expert = self.expert_policy(self.env)
        return {"expert_text": lambda values: self.action_to_text(expert(np.asarray(values)))}

    def expert_policy(self, env: gym.Env) -> Policy:
        return self.controller(env.unwrapped)

    def controller(self, task: Any) -> Policy:
        """The task's expert controller, built for ``task`` (an unwrapped env of this task, whatever its kwargs)."""
        raise NotImplementedError(f"TextGym has no expert controller for {self.name}")


class LQRTranslator(MujocoTranslator):
    """A task balanced by LQR about its upright rest state (the inverted pendulums).

    Subclasses set :attr:`state_cost` and :attr:`control_cost` and, when the observation is not the MuJoCo
    state itself, override :meth:`lqr_state`. L5's guidance and worked examples show the expert's weights.
    """

    has_controller = True
    state_cost: ClassVar[tuple[float, ...]]
    """Diagonal of the LQR state cost, over ``[qpos, qvel]``."""
    control_cost: ClassVar[float] = 1.0

    def lqr_state(self, obs: Any) -> np.ndarray:
        """The ``[qpos, qvel]`` state the gain acts on (default: the observation is that state)."""
        return np.asarray(obs, dtype=float)

    def _gain(self, task: Any) -> np.ndarray:
        return lqr_gain(task, np.diag(self.state_cost), np.eye(1) * self.control_cost)

    def controller(self, task: Any) -> Policy:
        gain = self._gain(task)
        low, high = self.action_low, self.action_high
        return lambda obs: np.clip(-gain @ self.lqr_state(obs), low, high).astype(np.float32)

    @functools.cached_property
    def gains(self) -> list[float]:
        """The expert's weights on this translator's task (push = sum of weight x state), for L5's arithmetic."""
        return [float(g) for g in -self._gain(self.env)[0]]

    def teaching_context(self) -> dict[str, Any]:
        return {**super().teaching_context(), "gains": self.gains}

    def obfuscation_facts(self) -> dict[str, Any]:
        return {"gains": list(self.gains)}

    def guidance(self) -> str:
        return self._render("guidance", gains=self.gains)


def _join_titles(titles: list[str]) -> str:
    """``"Contact forces on torso, front_left_leg, ..."``: the words all titles start with, said once."""
    words = [title.split(" ") for title in titles]
    shared = 0
    while len(titles) > 1 and all(len(w) > shared + 1 and w[shared] == words[0][shared] for w in words):
        shared += 1
    prefix = " ".join(words[0][:shared])
    rest = ", ".join(" ".join(w[shared:]) for w in words)
    return f"{prefix} {rest}" if prefix else rest


def _join_labels(labels: list[tuple[str, str]]) -> str:
    """``"height m, velocity x, y, z m/s"``: labels of one unit shortened.

    A run of labels with one unit that differ only in their last word says the shared words and the unit once.
    """
    runs: list[tuple[list[str], str]] = []  # (labels, unit)
    for label, unit in labels:
        head = label.rsplit(" ", 1)[0]
        if runs and runs[-1][1] == unit and " " in label and runs[-1][0][0].rsplit(" ", 1)[0] == head:
            runs[-1][0].append(label)
        else:
            runs.append(([label], unit))
    texts = []
    for run, unit in runs:
        text = run[0] + "".join(", " + label.rsplit(" ", 1)[1] for label in run[1:])
        texts.append(f"{text} {unit}" if unit else text)
    return ", ".join(texts)


def lqr_gain(task: Any, state_cost: np.ndarray, control_cost: np.ndarray) -> np.ndarray:
    """The discrete LQR gain ``K`` (``control = -K @ [qpos, qvel]``) of ``task`` about its upright rest state.

    The step map (``frame_skip`` simulator steps with the control held) is linearised by central differences on
    a copy of the model, so the gain follows the task's kwargs (``frame_skip``, a changed model).
    """
    import mujoco  # the mujoco extra; importing the translators (e.g. to list them) does not need it

    model = task.model
    data = mujoco.MjData(model)
    rest, no_control = np.zeros(2 * model.nv), np.zeros(model.nu)

    def step(state: np.ndarray, control: np.ndarray) -> np.ndarray:
        data.qpos[:], data.qvel[:], data.ctrl[:] = state[:model.nv], state[model.nv:], control
        mujoco.mj_forward(model, data)
        for _ in range(task.frame_skip):
            mujoco.mj_step(model, data)
        return np.concatenate([data.qpos, data.qvel])

    eps = 1e-5
    a = np.stack([(step(rest + eps * e, no_control) - step(rest - eps * e, no_control)) / (2 * eps)
                  for e in np.eye(len(rest))], axis=1)
    b = np.stack([(step(rest, no_control + eps * e) - step(rest, no_control - eps * e)) / (2 * eps)
                  for e in np.eye(model.nu)], axis=1)
    p = scipy.linalg.solve_discrete_are(a, b, state_cost, control_cost)
    return np.linalg.solve(control_cost + b.T @ p @ b, b.T @ p @ a)
