"""Translator: the env-specific half of a text env (the generic half is :class:`textgym.wrapper.TextEnv`).

A translator turns a raw observation into named values (:meth:`Translator.describe`), renders
them through the env's templates, reads action text back (:meth:`Translator.parse_action`) and
provides an expert policy for the L4 demonstrations. Adding an env means one subclass plus a
``templates/`` folder with ``game.j2``, ``goal.j2``, ``actions.j2``, ``observation.j2``,
``guidance.j2`` and ``teaching.j2`` (L5's worked examples) next to it.

What a text may say: the observation text carries what the base observation carries (read back by
:meth:`Translator.read_observation`), plus quantities computed from it and the task's published
constants; descriptions state the task's rules. Where the base observation hides part of the world (a
FrozenLake or CliffWalking map), the text hides it too unless the env is made with ``map_visible=True``.
"""

from __future__ import annotations

import functools
import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from textgym.action_parsing import parse_continuous_action, parse_discrete_action, parse_vector_action
from textgym.templating import PACKAGE_DIR, fixed, render

__all__ = ["Translator", "ParsedAction", "Policy", "step_limit_phrase"]

Policy = Callable[[Any], Any]
"""A policy maps a raw observation to a raw action of the base env."""


@dataclass(frozen=True)
class ParsedAction:
    """What the env made of an action text.

    Attributes:
        action: the raw action passed to the base env (the fallback when the text was not understood).
        valid: whether the text was understood.
    """

    action: Any
    valid: bool


class Translator(ABC):
    """Env-specific translation between raw Gym values and text.

    Subclasses set :attr:`name` and implement :meth:`describe`, :meth:`read_observation` and
    :meth:`expert_policy`. Discrete envs set :attr:`action_names`; continuous envs (a ``Box`` of one
    number) get number parsing with clipping to the bounds read from the space; vector envs (a ``Box`` of
    n > 1 numbers, one per actuator) set :attr:`action_names` to the actuators' names and get one clipped
    number per actuator (:func:`~textgym.action_parsing.parse_vector_action`).

    A translator speaks for one base env instance: bounds come from its spaces, and facts that the
    spaces do not hold (a map, a goal position, link lengths, constants set by ``gym.make`` kwargs)
    are read from :attr:`env`, so the text describes the task the agent really plays.

    Args:
        env: the base (numeric) env, wrapped or not; spaces are read from it, other facts from ``env.unwrapped``.

    Raises:
        TypeError: if ``env`` is not a ``gym.Env`` or its action space is neither ``Discrete`` nor a flat ``Box``.
        ValueError: if :attr:`action_names` does not match a ``Discrete`` or vector ``Box`` action space.

    Example:
        >>> from textgym.envs.cartpole import CartPoleTranslator
        >>> from textgym.wrapper import make_base_env
        >>> translator = CartPoleTranslator(make_base_env("cartpole"))
        >>> translator.action_to_text(1), translator.parse_action("push left").action
        ('2: push right', 0)
    """

    name: ClassVar[str]
    """Short env name used in configs and template paths, e.g. ``"cartpole"``."""
    action_names: ClassVar[tuple[str, ...]] = ()
    """Discrete actions in words, index = raw action; a vector action's actuators in order. Empty for one number."""
    fallback_action_index: ClassVar[int] = 0
    """Discrete action played when the text is not understood (documented in each env's actions.j2)."""
    action_digits: ClassVar[int] = 2
    """Decimals printed for a continuous (or vector) action."""
    has_controller: ClassVar[bool] = True
    """TextGym has an expert of its own for this task (else L4 needs a policy file, see :meth:`use_policy_file`)."""
    hides_map: ClassVar[bool] = False
    """The text hides the layout the base observation hides (holes, cliff, goal) unless ``map_visible=True``."""

    def __init__(self, env: gym.Env) -> None:
        if not isinstance(env, gym.Env):
            raise TypeError(f"{type(self).__name__} expected the base gym.Env, actually {env!r}")
        self.env: Any = env.unwrapped
        """The unwrapped base env: the source of every fact the spaces do not hold."""
        self.options: dict[str, Any] = {}
        """Text options the translator was built with (``{"map_visible": ...}`` where :attr:`hides_map`, the policy
        file's ``expert_policy_path`` and ``expert_policy_sha256``)."""
        self.policy_file: Any = None
        """The :class:`~textgym.policy_file.PolicyFile` that replaces the expert, or ``None``."""
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        action_space = self.action_space
        if isinstance(action_space, spaces.Discrete):
            if len(self.action_names) != int(action_space.n):
                raise ValueError(
                    f"{type(self).__name__}.action_names has {len(self.action_names)} names, "
                    f"expected {int(action_space.n)} for {action_space}"
                )
        elif isinstance(action_space, spaces.Box) and action_space.shape == (1,):
            self.action_low = float(action_space.low[0])
            self.action_high = float(action_space.high[0])
        elif isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
            if len(self.action_names) != action_space.shape[0]:
                raise ValueError(f"{type(self).__name__}.action_names has {len(self.action_names)} names, "
                                 f"expected one per actuator of {action_space}")
            self.action_lows = tuple(float(low) for low in action_space.low)
            self.action_highs = tuple(float(high) for high in action_space.high)
        else:
            raise TypeError(f"{type(self).__name__} expected a Discrete or flat Box action space, "
                            f"actually {action_space}")

    # ------------------------------------------------------------------ observations
    @abstractmethod
    def describe(self, obs: Any) -> dict[str, Any]:
        """Named values for ``observation.j2`` (e.g. ``cart_velocity``, not ``obs[1]``)."""

    @abstractmethod
    def read_observation(self, text: str) -> np.ndarray:
        """Recover the raw observation (to the printed precision) from :meth:`render_observation`'s text.

        Used by the faithfulness tests: a translator that drops a sign or a value fails them.
        """

    def observation_values(self, obs: Any) -> np.ndarray:
        """The raw values the text carries, in :meth:`read_observation`'s order: here the whole observation.

        A translator whose text carries named parts of a larger observation (an Atari game's RAM quantities)
        returns those; the faithfulness tests compare :meth:`read_observation` with this.
        """
        return np.asarray(obs, dtype=float).reshape(-1)

    @property
    def observation_precision(self) -> float:
        """Largest error :meth:`read_observation` may make (half a unit in the last printed digit)."""
        return 0.0

    def render_observation(self, obs: Any) -> str:
        """The observation as text."""
        return self._render("observation", **self.describe(obs))

    def step_note(self, previous_obs: Any, action: Any, reward: float, obs: Any) -> str:
        """What a step touched that the new observation does not show (a fall off CliffWalking's cliff); "" here."""
        return ""

    def render_step(self, previous_obs: Any, action: Any, reward: float, obs: Any, *,
                    for_trajectory: bool = False) -> str:
        """The observation text after a step.

        :meth:`step_note` (if any) and then :meth:`render_observation` (:meth:`trajectory_observation` with
        ``for_trajectory``).
        """
        note = self.step_note(previous_obs, action, reward, obs)
        text = self.trajectory_observation(obs) if for_trajectory else self.render_observation(obs)
        return f"{note} {text}" if note else text

    # ------------------------------------------------------------------ trajectories (L2/L4)
    def trajectory_observation(self, obs: Any) -> str:
        """An observation as L2/L4 trajectories write it: as the agent sees it (:meth:`render_observation`) here.

        A translator whose texts are long (MuJoCo's) writes a compact form instead, so that a trajectory shows
        enough steps within its token budget; :meth:`trajectory_legend` then says how to read it.
        """
        return self.render_observation(obs)

    def trajectory_action(self, action: Any) -> str:
        """An action as L2/L4 trajectories write it: :meth:`action_to_text` here."""
        return self.action_to_text(action)

    def trajectory_legend(self) -> str:
        """How a trajectory's compact steps read, said once before them.

        "" when they are written as the agent sees them (the default).
        """
        return ""

    # ------------------------------------------------------------------ descriptions
    @property
    def is_discrete(self) -> bool:
        """Whether the actions are a ``Discrete`` space (named actions)."""
        return isinstance(self.action_space, spaces.Discrete)

    @property
    def is_vector(self) -> bool:
        """One number per actuator (a ``Box`` of more than one number)."""
        return not self.is_discrete and self.action_space.shape != (1,)

    def template_context(self) -> dict[str, Any]:
        """Values every description template may use (bounds, action names, the fallback)."""
        context: dict[str, Any] = {"action_names": list(self.action_names)}
        if self.is_discrete:
            context["fallback_action"] = self.action_to_text(self.fallback_action_index)
        elif self.is_vector:
            context.update(action_lows=list(self.action_lows), action_highs=list(self.action_highs),
                           action_digits=self.action_digits,
                           example_action=self.action_to_text(self._box_action([0.0] * len(self.action_names))),
                           fallback_action=self.action_to_text(self._box_action([0.0] * len(self.action_names))))
        else:
            context.update(action_low=self.action_low, action_high=self.action_high,
                           action_digits=self.action_digits)
        return context

    def game_description(self) -> str:
        """The rules of the game (the ``game`` template)."""
        return self._render("game")

    def goal_description(self, step_limit: int | None = None) -> str:
        """The goal, stating the episode's step limit (``None``: the env sets none)."""
        return self._render("goal", step_limit=step_limit, step_limit_phrase=step_limit_phrase(step_limit))

    def action_description(self) -> str:
        """The actions and how to write one (the ``actions`` template)."""
        return self._render("actions")

    def guidance(self) -> str:
        """Hand-written expert guidance for L5."""
        return self._render("guidance")

    @property
    def teaching_states(self) -> list[Any]:
        """Raw states of L5's worked examples, in :meth:`teaching_env`, from the JSON in ``teaching_states.j2``.

        ``teaching.j2`` reasons about each in turn; the states sit in a template file next to it so that
        the prose and the states it describes are edited together.
        """
        return json.loads(render(f"{self.template_folder()}/teaching_states.j2"))

    def teaching_env(self) -> gym.Env:
        """The task L5's worked examples are set in: this one, or a practice layout where the text hides the map."""
        return self.env

    def teaching_examples(self) -> list[str]:
        """L5's hand-written worked examples: a state as the agent would see it, expert reasoning, the action.

        Each ends with an ``Action: ...`` line that :meth:`parse_action` reads; tests check it is the expert's
        action on that state.
        """
        env = self.teaching_env()
        speaker = self if env is self.env else type(self)(env, **self.options)
        action_texts = ([self.action_to_text(index) for index in range(len(self.action_names))]
                        if self.is_discrete else [])
        return [self._render("teaching", number=number, observation=speaker.render_observation(state),
                             state=speaker.describe(state), action_texts=action_texts, **self.teaching_context())
                for number, state in enumerate(self.teaching_states, start=1)]

    def teaching_context(self) -> dict[str, Any]:
        """Extra values for ``teaching.j2``, e.g. the practice layout the examples are set on."""
        return {}

    def valid_actions(self) -> list[str]:
        """The valid actions in words, as shown to agents."""
        if self.is_discrete:
            return list(self.action_names)
        if self.is_vector:  # one text naming every actuator and its range
            return [", ".join(f"{name}: {fixed(low, self.action_digits)} to {fixed(high, self.action_digits)}"
                              for name, low, high in zip(self.action_names, self.action_lows, self.action_highs,
                                                         strict=True))]
        low, high = fixed(self.action_low, self.action_digits), fixed(self.action_high, self.action_digits)
        return [f"a number from {low} to {high}"]

    def action_spec(self) -> dict[str, Any]:
        """The action set as data, for agents that constrain their replies (e.g. with a JSON schema).

        ``{"type": "discrete", "names": [...]}``, ``{"type": "continuous", "low": ..., "high": ..., "digits": ...}``
        or ``{"type": "vector", "names": [...], "low": [...], "high": [...], "digits": ...}`` (one number per
        actuator, in ``names`` order).
        """
        if self.is_discrete:
            return {"type": "discrete", "names": list(self.action_names)}
        if self.is_vector:
            return {"type": "vector", "names": list(self.action_names), "low": list(self.action_lows),
                    "high": list(self.action_highs), "digits": self.action_digits}
        return {"type": "continuous", "low": self.action_low, "high": self.action_high, "digits": self.action_digits}

    # ------------------------------------------------------------------ actions
    def parse_action(self, text: Any) -> ParsedAction:
        """Read an action from text; never raises, whatever ``text`` is. The rules: :mod:`textgym.action_parsing`.

        Text that names or numbers no real action plays the fallback and is invalid. A continuous action's
        finite number outside the bounds is valid and clipped to them; the fallback there is 0 (clipped too).
        A vector action needs a finite number for every actuator; each is clipped, and the fallback is 0 for
        every actuator.
        """
        if self.is_discrete:
            index = parse_discrete_action(text, self.action_names)
            if index is None:
                return ParsedAction(self.fallback_action_index, valid=False)
            return ParsedAction(index, valid=True)
        if self.is_vector:
            values = parse_vector_action(text, self.action_names)
            if values is None:
                return ParsedAction(self._box_action([0.0] * len(self.action_names)), valid=False)
            return ParsedAction(self._box_action(values), valid=True)
        value = parse_continuous_action(text)
        if value is None:
            return ParsedAction(self._box_action(0.0), valid=False)
        return ParsedAction(self._box_action(value), valid=True)

    def action_to_text(self, action: Any) -> str:
        """The canonical text of a raw action: ``"2: push right"``, ``"0.50"`` or ``{"thigh": 0.30, ...}``.

        It parses back to ``action`` (to the printed digits).
        """
        if self.is_discrete:
            index = int(action)
            return f"{index + 1}: {self.action_names[index]}"
        values = np.asarray(action, dtype=float).reshape(-1)
        if self.is_vector:
            pairs = (f'"{name}": {fixed(value, self.action_digits)}'
                     for name, value in zip(self.action_names, values, strict=True))
            return "{" + ", ".join(pairs) + "}"
        return fixed(float(values[0]), self.action_digits)

    def _box_action(self, value: float | list[float]) -> np.ndarray:
        """``value`` clipped to the bounds, as the base env's action; the parser only gives finite numbers."""
        if self.is_vector:
            return np.clip(np.asarray(value, dtype=float), self.action_lows, self.action_highs).astype(
                self.action_space.dtype)
        clipped = min(max(float(value), self.action_low), self.action_high)  # type: ignore[arg-type]  # one number here
        return np.array([clipped], dtype=self.action_space.dtype)

    # ------------------------------------------------------------------ policies
    def use_policy_file(self, path: str, sha256: str | None = None) -> None:
        """Let a PPO policy saved by ``textgym-ppo`` (``model.zip``) be this task's expert (L4's trajectories)."""
        from textgym.policy_file import PolicyFile

        self.policy_file = PolicyFile(path, sha256)
        self.options.update(self.policy_file.options())

    @property
    def has_expert(self) -> bool:
        """An expert exists: TextGym's own controller, or a policy file."""
        return self.policy_file is not None or self.has_controller

    @classmethod
    def has_teaching(cls) -> bool:
        """L5's hand-written teaching exists (only where an honest expert checks its worked examples)."""
        return (PACKAGE_DIR / "envs" / cls.template_folder() / "teaching.j2").exists()

    def expert(self, env: gym.Env) -> Policy:
        """The expert that L4's trajectories show: the policy file if one was given, else :meth:`expert_policy`."""
        if self.policy_file is not None:
            return self.policy_file.policy(env)
        return self.expert_policy(env)

    @abstractmethod
    def expert_policy(self, env: gym.Env) -> Policy:
        """An expert policy for ``env``: the env this translator speaks for, or another instance of the same task.

        ``env.unwrapped`` gives model access for DP and heuristics.
        """

    # ------------------------------------------------------------------ obfuscation (textgym.obfuscation)
    def obfuscation_spec(self) -> Any:
        """This env's :class:`~textgym.obfuscation.ObfuscationSpec`: what ``obfuscate=True`` renames and maps."""
        raise NotImplementedError(f"{type(self).__name__} declares no obfuscated variant (obfuscation_spec)")

    def obfuscation_values(self, obs: Any) -> np.ndarray:
        """The quantities the obfuscated text shows, in the spec's order: :meth:`observation_values` here.

        A grid world splits its cell number into row and column (so the grid can be mirrored and transposed).
        """
        return self.observation_values(obs)

    def observation_from_obfuscation_values(self, values: np.ndarray) -> np.ndarray:
        """:meth:`observation_values` from :meth:`obfuscation_values`' output (its inverse; identity here)."""
        return np.asarray(values, dtype=float)

    # ------------------------------------------------------------------ helpers
    @classmethod
    def template_folder(cls) -> str:
        """Template folder relative to ``textgym/envs``, e.g. ``"cartpole/templates"``."""
        return _template_folder(cls)

    def _render(self, part: str, **values: Any) -> str:
        return render(f"{self.template_folder()}/{part}.j2", **self.template_context(), **values)


def step_limit_phrase(step_limit: int | None) -> str:
    """How a goal text names the step limit: ``"the step limit of 500 steps"``."""
    return "the step limit (none is set)" if step_limit is None else f"the step limit of {step_limit:,} steps"


@functools.cache
def _template_folder(translator_class: type) -> str:
    # Cached: every observation render asks, and resolving the path costs a few system calls.
    return f"{Path(inspect.getfile(translator_class)).resolve().parent.name}/templates"
