"""Obfuscated variants: the same decision problem in words a language model cannot have memorised.

``gym.make("TextGym-CartPole-v0", obfuscate=True, obfuscation_seed=0)`` plays the very same base task (same seeds,
same dynamics, same rewards and step limit) but every text is neutral: the task and its objects get invented names
(:data:`INVENTED_WORDS`), each observed quantity is shown through a seeded affine map ``shown = scale * raw +
offset`` (:class:`AffineMap`), discrete actions are renamed and their order permuted, continuous actions keep their
bounds through their own affine map, and the descriptions come from neutral templates that state the same rules in
the new terms. Grid worlds get mirrored (a negative scale) and transposed (the display order is permuted) grids.

What stays the same: the raw observation in ``info["raw_obs"]`` and ``info["base_action"]``, the rewards, and the
meaning of an integer action (the base env's index). Every shown number is the raw value rounded as the plain text
rounds it, then mapped, and printed with enough decimals to be exact, so :meth:`ObfuscatedTranslator.
read_observation` recovers exactly what the plain text's read-back recovers (tests in
``tests/textgym/test_obfuscation.py``).

Adding an env: its translator returns an :class:`ObfuscationSpec` from ``obfuscation_spec()`` (objects to rename,
quantities in observation order, neutral action names, giveaway words) and its package gets
``templates/obfuscated/{game,goal,guidance}.j2`` (or shares a family's, as MuJoCo's ``mujoco_common`` does).

What it cannot hide: the shape of the dynamics (how many quantities, which move together, how rewards come),
the step limit and the rewards themselves, which are part of the task.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from textgym.action_parsing import parse_continuous_action, parse_discrete_action, parse_vector_action
from textgym.templating import PACKAGE_DIR, fixed, render
from textgym.translator import ParsedAction, Policy, Translator

__all__ = ["Quantity", "ObfuscationSpec", "AffineMap", "Obfuscation", "ObfuscatedTranslator", "INVENTED_WORDS",
           "giveaway_pattern"]

INVENTED_WORDS = (
    "zelm", "quorv", "mibbet", "daxil", "fepra", "lorvin", "tivok", "wumbel", "yatter", "brexol", "koshta", "nifel",
    "plundo", "gardix", "hixom", "jumtra", "rovid", "sutrel", "vekko", "zorbin", "ablet", "cindro", "dovrak", "elmix",
    "fornil", "glimto", "havrel", "ixtol", "jorvel", "lumrek", "mossik", "nadrel", "ovtar", "pelkin", "qualix",
    "ristan", "sobrel", "trevik", "ulmar", "vintro", "wexel", "yorbel", "zanthe", "bimrol", "cavund", "drelix",
)
"""Invented names for a task's objects; drawn without replacement, seeded by ``obfuscation_seed``."""
SCALES = (1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
"""Scales of real quantities' maps: at most two decimals, so a value rounded to d decimals maps exactly to d plus
the scale's decimals; none below 1, so no reading needs more digits than the plain text to show a change."""
EXTRA_DIGITS = 2
"""Decimals a continuous action's text gets beyond the plain one's (the most a scale needs)."""
COUNT_OFFSETS = (100, 900)
"""Counts (cards, cells, RAM bytes) move into the hundreds, so no small famous number (21, a grid size) shows."""


@dataclass(frozen=True)
class Quantity:
    """One number of the observation as the obfuscated text shows it.

    Attributes:
        label: its neutral name; ``{role}`` placeholders become the invented name of an object role.
        kind: ``"real"`` (seeded scale and offset), ``"count"`` (an integer: scale +-1, an offset in the
            hundreds) or ``"category"`` (an index shown as one of ``categories``).
        categories: the neutral names of a category's values, in index order (placeholders allowed).
        axis: quantities measured along the same axis (a screen's rows) share one map, so they compare directly.
        rate_of: a rate along ``axis``: the axis's scale and no offset, so rates add to positions as raw ones do.
    """

    label: str
    kind: Literal["real", "count", "category"] = "real"
    categories: tuple[str, ...] = ()
    axis: str | None = None
    rate_of: str | None = None


@dataclass(frozen=True)
class ObfuscationSpec:
    """What an env's obfuscated variant renames and maps (declared next to its translator).

    Attributes:
        objects: roles that get an invented name each (``"cart"``, ``"stand0"``); templates, labels and action
            names refer to them as ``{cart}`` (labels) or ``obj.cart`` (templates).
        quantities: the observed quantities, in :meth:`Translator.obfuscation_values` order.
        actions: neutral names of the base actions (discrete, base index order) or actuators (vector).
        giveaways: words and numbers that identify the task; none may appear in any obfuscated text.
        templates: the folder (relative to ``textgym/envs``) of ``game.j2``, ``goal.j2``, ``guidance.j2`` and
            optionally ``actions.j2``/``note.j2``.
        action_effects: per discrete base action, ``(quantity index, raw change)`` pairs it makes (grid moves).
        facts: env-specific values for the templates (e.g. where a MuJoCo task's quantities sit).
        shared_templates: a family's folder (``"mujoco_common/templates/obfuscated"``) for the templates
            ``templates`` lacks.
    """

    objects: tuple[str, ...]
    quantities: tuple[Quantity, ...]
    actions: tuple[str, ...]
    giveaways: tuple[str, ...]
    templates: str
    action_effects: tuple[tuple[tuple[int, float], ...], ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    shared_templates: str | None = None


@dataclass(frozen=True)
class AffineMap:
    """``shown = scale * round(raw, raw_digits) + offset``, printed with ``text_digits`` decimals (exactly).

    Attributes:
        scale: nonzero; negative mirrors.
        offset: added after scaling.
        raw_digits: decimals the raw value is rounded to first (the plain text's precision).
        text_digits: decimals of the shown value (enough to be exact).
    """

    scale: float
    offset: float
    raw_digits: int
    text_digits: int

    def forward(self, raw: float) -> float:
        """The mapped value of ``raw`` (read at the raw precision first)."""
        return self.scale * float(fixed(raw, self.raw_digits)) + self.offset

    def text(self, raw: float) -> str:
        """The mapped value of ``raw`` as shown, with the decimals its scale needs."""
        return fixed(self.forward(raw), self.text_digits)

    def inverse(self, shown: float) -> float:
        """The raw value (rounded to ``raw_digits``) behind a shown value."""
        return round((float(shown) - self.offset) / self.scale, self.raw_digits)

    def change(self, raw_delta: float) -> str:
        """A raw change as a shown change, with its sign (``"+1"``, ``"-2.50"``)."""
        text = fixed(self.scale * raw_delta, self.text_digits)
        return text if text.startswith("-") else f"+{text}"


def giveaway_pattern(words: Sequence[str]) -> re.Pattern[str]:
    """A case-insensitive pattern matching any of ``words`` as a whole word (numbers as whole numbers)."""
    parts = [rf"(?<![\w.]){re.escape(word)}(?![\w]|\.\d)" for word in words]
    return re.compile("|".join(parts), re.IGNORECASE)


class Obfuscation:
    """The seeded choices of one obfuscated variant: invented names, maps and orders.

    Args:
        spec: the env's :class:`ObfuscationSpec`.
        seed: ``obfuscation_seed``; with the env name it seeds every choice.
        env_name: mixed into the seed so two envs with the same seed differ.
        raw_digits: decimals of the plain text's real quantities.
        action_digits: decimals of a continuous action in the plain text.
        actuators: number of continuous actuators (0 for a discrete action).
        discrete_actions: number of discrete actions (0 for a continuous one).
    """

    def __init__(self, spec: ObfuscationSpec, seed: int, env_name: str, raw_digits: int, action_digits: int,
                 actuators: int, discrete_actions: int) -> None:
        rng = np.random.default_rng([int(seed), zlib.crc32(env_name.encode())])
        words = rng.permutation(len(INVENTED_WORDS))[:len(spec.objects) + 1]
        self.task_name = INVENTED_WORDS[words[0]]
        self.names = {role: INVENTED_WORDS[index] for role, index in zip(spec.objects, words[1:], strict=True)}
        self.labels = [quantity.label.format(**self.names) for quantity in spec.quantities]
        self.categories = [[c.format(**self.names) for c in quantity.categories] for quantity in spec.quantities]
        axes: dict[str, AffineMap | None] = {}
        self.maps: list[AffineMap | None] = []
        for quantity in spec.quantities:
            axis = quantity.axis or quantity.rate_of
            if axis is not None and axis not in axes:
                axes[axis] = self._map(rng, quantity.kind, raw_digits)
            mapping = axes[axis] if axis is not None else self._map(rng, quantity.kind, raw_digits)
            if quantity.rate_of is not None and mapping is not None:
                mapping = AffineMap(mapping.scale, 0.0, mapping.raw_digits, mapping.text_digits)
            self.maps.append(mapping)
        self.display_order = [int(i) for i in rng.permutation(len(spec.quantities))]
        self.action_names = [name.format(**self.names) for name in spec.actions]
        count = discrete_actions or actuators
        self.action_order = [int(i) for i in rng.permutation(count)] if count > 1 else list(range(count))
        self.action_maps = [self._action_map(rng, action_digits) for _ in range(actuators or (0 if count else 1))]

    @classmethod
    def _action_map(cls, rng: np.random.Generator, action_digits: int) -> AffineMap:
        """A continuous action's map, printed with :data:`EXTRA_DIGITS` more decimals than the plain text."""
        mapping = cls._map(rng, "real", action_digits)
        assert mapping is not None
        return AffineMap(mapping.scale, mapping.offset, action_digits, action_digits + EXTRA_DIGITS)

    @staticmethod
    def _map(rng: np.random.Generator, kind: str, raw_digits: int) -> AffineMap | None:
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if kind == "category":
            return None
        if kind == "count":
            return AffineMap(sign, float(rng.integers(*COUNT_OFFSETS)), 0, 0)
        scale = sign * float(SCALES[rng.integers(len(SCALES))])
        offset = float(rng.integers(1_000, 9_000)) / 100 * (1.0 if rng.random() < 0.5 else -1.0)
        scale_digits = len(f"{abs(scale):g}".partition(".")[2])
        return AffineMap(scale, offset, raw_digits, max(raw_digits + scale_digits, 2))  # the offset has 2 decimals


class ObfuscatedTranslator(Translator):
    """Speaks for the same base env as ``inner``, in neutral words and mapped numbers.

    Args:
        inner: the env's plain translator (its facts, expert and teaching states are reused).
        seed: ``obfuscation_seed``.

    Raises:
        ValueError: if the env declares no obfuscation, or if its plain text shows the map
            (``map_visible=True``), which the obfuscated text does not draw.
    """

    def __init__(self, inner: Translator, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"obfuscation_seed must be an int >= 0, actually {seed!r}")
        if inner.options.get("map_visible"):
            raise ValueError(f"obfuscate=True hides {inner.name}'s map: use map_visible=false (the default) with it")
        spec = inner.obfuscation_spec()
        self.inner = inner
        self.spec = spec
        self.name = inner.name  # type: ignore[misc]  # the env it speaks for: trajectories rebuild it by name
        self.seed = seed
        precision = inner.observation_precision
        raw_digits = round(-np.log10(2 * precision)) if precision > 0 else 0
        space = inner.action_space
        discrete = int(space.n) if isinstance(space, gym.spaces.Discrete) else 0
        actuators = 0 if discrete else int(np.prod(space.shape))  # type: ignore[arg-type]  # a Box has a shape
        self.obfuscation = Obfuscation(spec, seed, inner.name, raw_digits, inner.action_digits,
                                       actuators if actuators > 1 else 0, discrete)
        names = self.obfuscation.action_names
        self.action_names = tuple(names[i] for i in self.obfuscation.action_order)  # type: ignore[misc]  # per variant
        self.action_digits = inner.action_digits + EXTRA_DIGITS  # type: ignore[misc]  # per variant
        self.fallback_action_index = inner.fallback_action_index  # type: ignore[misc]  # per variant
        self.has_controller = inner.has_controller  # type: ignore[misc]  # per variant
        super().__init__(inner.env)
        self.options = {**inner.options, "obfuscate": True, "obfuscation_seed": seed}
        self.policy_file = inner.policy_file

    # ------------------------------------------------------------------ observations
    def describe(self, obs: Any) -> dict[str, Any]:
        values = self.inner.obfuscation_values(obs)
        ob = self.obfuscation
        readings = []
        for index in ob.display_order:
            mapping = ob.maps[index]
            shown = ob.categories[index][int(values[index])] if mapping is None else mapping.text(values[index])
            readings.append({"label": ob.labels[index], "value": shown})
        return {"readings": readings}

    def render_observation(self, obs: Any) -> str:
        return render("obfuscated_observation.j2", **self.describe(obs))

    def read_observation(self, text: str) -> np.ndarray:
        ob = self.obfuscation
        values = np.zeros(len(ob.labels))
        for index, label in enumerate(ob.labels):
            match = re.search(rf"(?:: |; ){re.escape(label)} = ([^;]+?)(?:;|\.$|\. )", text)
            if match is None:
                raise ValueError(f"no {label!r} in {text!r}")
            shown = match.group(1)
            mapping = ob.maps[index]
            values[index] = ob.categories[index].index(shown) if mapping is None else mapping.inverse(float(shown))
        return np.asarray(self.inner.observation_from_obfuscation_values(values), dtype=float).reshape(-1)

    def observation_values(self, obs: Any) -> np.ndarray:
        return self.inner.observation_values(obs)

    @property
    def observation_precision(self) -> float:
        return self.inner.observation_precision

    def step_note(self, previous_obs: Any, action: Any, reward: float, obs: Any) -> str:
        """The plain text's note (a fall), told in neutral words where the env writes ``note.j2``."""
        if not self.inner.step_note(previous_obs, action, reward, obs):
            return ""
        return self._render("note", reward=reward)

    def trajectory_observation(self, obs: Any) -> str:
        if len(self.obfuscation.labels) <= 8:
            return self.render_observation(obs)
        return " ".join(reading["value"] for reading in self.describe(obs)["readings"])

    def trajectory_legend(self) -> str:
        if len(self.obfuscation.labels) <= 8:
            return ""
        order = ", ".join(self.obfuscation.labels[index] for index in self.obfuscation.display_order)
        return f"Each step's readings are written as numbers only, in this order: {order}."

    # ------------------------------------------------------------------ descriptions
    def template_context(self) -> dict[str, Any]:
        ob, inner = self.obfuscation, self.inner
        context: dict[str, Any] = {
            "task_name": ob.task_name, "obj": ob.names, "facts": dict(self.spec.facts),
            "labels": ob.labels, "display_order": ob.display_order,
            "value": lambda index, raw: self._shown(index, raw),
            "change": lambda index, raw_delta: ob.maps[index].change(raw_delta),  # type: ignore[union-attr]  # mapped
            "trend": self._trend, "between": self._between, "rate": self._rate, "beyond": self._beyond,
            "raw": self._raw_formula, "action_maps": ob.action_maps, "action_order": ob.action_order,
            "motors": [(self.action_names[position], ob.action_maps[actuator])
                       for position, actuator in enumerate(ob.action_order)] if self.is_vector else [],
            "base": inner.template_context(),
            "action_names": list(self.action_names), "action_digits": self.action_digits,
        }
        if self.is_discrete:
            context["fallback_action"] = self.action_to_text(self.fallback_action_index)
            context["action"] = self.action_to_text
            context["effects"] = [
                (self.action_to_text(base), [(ob.labels[q], ob.maps[q].change(delta))
                                             for q, delta in self.spec.action_effects[base]])
                for base in ob.action_order] if self.spec.action_effects else []
        else:
            zero = self._box_action([0.0] * max(1, len(self.action_names)) if self.is_vector else 0.0)
            context["fallback_action"] = self.action_to_text(zero)
            lows, highs = self._shown_bounds()
            context.update(action_lows=lows, action_highs=highs, action_low=lows[0], action_high=highs[0])
            context["example_action"] = context["fallback_action"]
            context["effects"] = []
        return context

    def _shown(self, index: int, raw: float) -> str:
        mapping = self.obfuscation.maps[index]
        return self.obfuscation.categories[index][int(raw)] if mapping is None else mapping.text(raw)

    def _trend(self, index: int, raw_sign: float, rises: str = "rises", falls: str = "falls") -> str:
        """The word for a raw change of sign ``raw_sign`` as the shown quantity ``index`` moves."""
        mapping = self.obfuscation.maps[index]
        return rises if raw_sign * mapping.scale > 0 else falls  # type: ignore[union-attr]  # a mapped quantity

    def _between(self, index: int, raw_low: float, raw_high: float) -> str:
        """``"between A and B"`` for a raw range, smaller shown end first (a negative scale swaps them)."""
        low, high = sorted((self._shown(index, raw_low), self._shown(index, raw_high)), key=float)
        return f"between {low} and {high}"

    def _rate(self, index: int, raw_rate: float, digits: int = 2) -> str:
        """A raw rate of change of quantity ``index`` (per step) in shown units, signed: ``"+0.50"``."""
        text = fixed(self.obfuscation.maps[index].scale * raw_rate, digits)  # type: ignore[union-attr]  # mapped
        return text if text.startswith("-") else f"+{text}"

    def _beyond(self, index: int, raw: float) -> str:
        """``"at least A"`` for ``raw value >= raw``, in shown terms (``"at most A"`` where the scale is negative)."""
        mapping = self.obfuscation.maps[index]
        return f"{'at least' if mapping.scale > 0 else 'at most'} {mapping.text(raw)}"  # type: ignore[union-attr]  # mapped

    def _raw_formula(self, index: int) -> str:
        """How the raw value behind reading ``index`` is computed from it, e.g. ``"(zelm drift - 12.5) / 2.5"``."""
        mapping = self.obfuscation.maps[index]
        assert mapping is not None, "a category has no raw formula"
        sign = "-" if mapping.offset >= 0 else "+"
        return f"({self.obfuscation.labels[index]} {sign} {fixed(abs(mapping.offset), 2)}) / {fixed(mapping.scale, 2)}"

    def _shown_bounds(self) -> tuple[list[float], list[float]]:
        """Each actuator's bounds in shown units, in display order (a negative scale swaps them)."""
        lows = self.inner.action_lows if self.is_vector else (self.inner.action_low,)
        highs = self.inner.action_highs if self.is_vector else (self.inner.action_high,)
        shown_lows, shown_highs = [], []
        for actuator in (self.obfuscation.action_order if self.is_vector else [0]):
            mapping = self.obfuscation.action_maps[actuator]
            ends = sorted((mapping.forward(lows[actuator]), mapping.forward(highs[actuator])))
            shown_lows.append(ends[0])
            shown_highs.append(ends[1])
        return shown_lows, shown_highs

    def _template(self, part: str) -> str | None:
        """The env's own template for ``part``, else its family's, else ``None``."""
        for folder in (self.spec.templates, self.spec.shared_templates):
            if folder is not None and (PACKAGE_DIR / "envs" / folder / f"{part}.j2").exists():
                return f"{folder}/{part}.j2"
        return None

    def _render(self, part: str, **values: Any) -> str:
        template = self._template(part) or f"obfuscated_{part}.j2"
        return render(template, **self.template_context(), **values)

    def goal_description(self, step_limit: int | None = None) -> str:
        """The goal in the new terms, stating the episode's step limit (``None``: the env sets none)."""
        phrase = "the step limit (none is set)" if step_limit is None else f"the step limit of {step_limit:,} steps"
        return self._render("goal", step_limit=step_limit, step_limit_phrase=phrase)

    def action_description(self) -> str:
        return self._render("actions")

    @property
    def teaching_states(self) -> list[Any]:
        return self.inner.teaching_states

    def teaching_env(self) -> gym.Env:
        return self.inner.teaching_env()

    def has_teaching(self) -> bool:  # type: ignore[override]  # per instance: it reads this variant's templates
        """L5 exists where the plain env has teaching and the obfuscated guidance is written."""
        return self.inner.has_teaching() and self._template("guidance") is not None

    def teaching_examples(self) -> list[str]:
        """L5's worked examples in the new terms.

        Each teaching state as the agent would see it and the expert's action on it (the plain examples' reasoning names
        the task's objects, so the neutral guidance stands for it).
        """
        env = self.teaching_env()
        if env is self.env:
            speaker = self
        else:
            speaker = ObfuscatedTranslator(type(self.inner)(env, **self.inner.options), self.seed)
        expert = self.inner.expert(env)
        teaching = self.inner.teaching_context()  # e.g. the practice layout the examples are set on
        return [self._render("teaching", number=number, observation=speaker.render_observation(state),
                             action_text=self.action_to_text(expert(state)), teaching=teaching)
                for number, state in enumerate(self.teaching_states, start=1)]

    def valid_actions(self) -> list[str]:
        if self.is_discrete:
            return list(self.action_names)
        lows, highs = self._shown_bounds()
        if self.is_vector:
            return [", ".join(f"{name}: {fixed(low, self.action_digits)} to {fixed(high, self.action_digits)}"
                              for name, low, high in zip(self.action_names, lows, highs, strict=True))]
        return [f"a number from {fixed(lows[0], self.action_digits)} to {fixed(highs[0], self.action_digits)}"]

    def action_spec(self) -> dict[str, Any]:
        if self.is_discrete:
            return {"type": "discrete", "names": list(self.action_names)}
        lows, highs = self._shown_bounds()
        if self.is_vector:
            return {"type": "vector", "names": list(self.action_names), "low": lows, "high": highs,
                    "digits": self.action_digits}
        return {"type": "continuous", "low": lows[0], "high": highs[0], "digits": self.action_digits}

    # ------------------------------------------------------------------ actions
    def parse_action(self, text: Any) -> ParsedAction:
        """Read an action in the new terms; an ``int`` is the base env's action index, as in the plain env."""
        ob = self.obfuscation
        if self.is_discrete:
            if isinstance(text, int | np.integer) and not isinstance(text, bool):
                index = int(text)
                if 0 <= index < len(self.action_names):
                    return ParsedAction(index, valid=True)
                return ParsedAction(self.fallback_action_index, valid=False)
            shown = parse_discrete_action(text, self.action_names)
            if shown is None:
                return ParsedAction(self.fallback_action_index, valid=False)
            return ParsedAction(ob.action_order[shown], valid=True)
        if self.is_vector:
            shown_values = parse_vector_action(text, self.action_names)
            if shown_values is None:
                return ParsedAction(self._box_action([0.0] * len(self.action_names)), valid=False)
            raw = [0.0] * len(shown_values)
            for position, actuator in enumerate(ob.action_order):
                raw[actuator] = ob.action_maps[actuator].inverse(shown_values[position])
            return ParsedAction(self._box_action(raw), valid=True)
        value = parse_continuous_action(text)
        if value is None:
            return ParsedAction(self._box_action(0.0), valid=False)
        return ParsedAction(self._box_action(ob.action_maps[0].inverse(value)), valid=True)

    def action_to_text(self, action: Any) -> str:
        ob = self.obfuscation
        if self.is_discrete:
            index = int(action)
            position = ob.action_order.index(index)
            return f"{position + 1}: {self.action_names[position]}"
        values = np.asarray(action, dtype=float).reshape(-1)
        if self.is_vector:
            pairs = (f'"{self.action_names[position]}": {ob.action_maps[actuator].text(values[actuator])}'
                     for position, actuator in enumerate(ob.action_order))
            return "{" + ", ".join(pairs) + "}"
        return ob.action_maps[0].text(float(values[0]))

    def trajectory_action(self, action: Any) -> str:
        return self.action_to_text(action)

    # ------------------------------------------------------------------ policies
    def use_policy_file(self, path: str, sha256: str | None = None) -> None:
        self.inner.use_policy_file(path, sha256)
        self.policy_file = self.inner.policy_file
        self.options.update(self.inner.options)

    def expert(self, env: gym.Env) -> Policy:
        return self.inner.expert(env)

    def expert_policy(self, env: gym.Env) -> Policy:
        return self.inner.expert_policy(env)

    def giveaways(self) -> re.Pattern[str]:
        """The pattern of this env's giveaway words (for tests and audits)."""
        return giveaway_pattern(self.spec.giveaways)
