"""TextEnv: the one generic wrapper that makes any translated Gym task speak text.

Observations and actions are strings (:class:`gymnasium.spaces.Text`); the raw observation stays in
``info["raw_obs"]``. Unparsable action text never raises: the translator's documented fallback is
played and ``info["invalid_action"]`` is ``True``. An integer action (``int`` or a numpy integer, as SB3 and
gymnasium code pass) is the base env's 0-based action index, not text.
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import numbers
import string
from collections.abc import Mapping, Sequence
from typing import Any, SupportsFloat, cast

import gymnasium as gym
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory

from textgym.factories import make_base_env, make_translator
from textgym.levels import (
    DEFAULT_FEWSHOT_EPISODES,
    DEFAULT_FEWSHOT_TOKEN_BUDGET,
    FEWSHOT_SEED,
    PolicyKind,
    level_spec,
)
from textgym.registration import base_spec, env_entry, text_env_id
from textgym.trajectories import FewshotTrajectories, fewshot_trajectories
from textgym.translator import ParsedAction, Translator

__all__ = ["TextEnv", "TextSpace", "SharedTexts", "make_text_env", "state_step_limit", "registered_step_limit",
           "make_base_env", "make_translator", "TEXT_CHARSET", "DEFAULT_FEWSHOT_EPISODES",
           "DEFAULT_FEWSHOT_TOKEN_BUDGET"]

TEXT_CHARSET = frozenset(string.printable)
"""Every character TextGym emits: printable ASCII plus whitespace (``spaces.Text`` defaults to alphanumerics)."""
MAX_OBSERVATION_CHARS = 4096
MAX_ACTION_CHARS = 4096


MIN_FEWSHOT_TOKEN_BUDGET = 100
"""Room for a trajectory's header, its last observation and a few steps."""


class TextSpace(spaces.Text):
    """TextGym's observation and action space: :class:`gymnasium.spaces.Text` that async vector envs can share.

    ``gym.make_vec(..., vectorization_mode="async")`` keeps observations in shared memory and reads them through
    the object it got when it started; gymnasium reads a plain ``Text`` buffer into strings right then, so every
    later observation came back as that first read (a string of tabs). This space's read is a view that decodes
    the buffer when indexed (:class:`SharedTexts`); ``copy=True`` (the default) hands out a tuple of strings.
    """


class SharedTexts(Sequence[str]):
    """The texts in an async vector env's shared memory, decoded on access; a deep copy is a tuple of strings."""

    def __init__(self, space: spaces.Text, shared_memory: Any, n: int) -> None:
        self._space, self._shared_memory, self._n = space, shared_memory, n

    def _texts(self) -> tuple[str, ...]:
        texts = read_from_shared_memory.dispatch(spaces.Text)(self._space, self._shared_memory, n=self._n)
        return cast(tuple[str, ...], texts)

    def __getitem__(self, index: Any) -> Any:
        return self._texts()[index]

    def __len__(self) -> int:
        return self._n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and self._texts() == tuple(other)

    __hash__ = None  # type: ignore[assignment]  # unhashable, as the sequences it equals are

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return self._texts()

    def __repr__(self) -> str:
        return repr(self._texts())


@read_from_shared_memory.register(TextSpace)
def _read_shared_texts(space: TextSpace, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(space, shared_memory, n)


class TextEnv(gym.Wrapper[str, str, Any, Any]):
    """Wraps a base Gym env so that observations and actions are text.

    ``info["knowledge"]`` (at reset) holds what the level allows: ``level``, ``level_summary``,
    ``fewshot_policy`` (``"random"``, ``"expert"`` or ``None``), ``fewshot_examples`` (one text per offline
    trajectory, each a whole episode within the token budget), ``fewshot_returns`` and ``fewshot_lengths``
    (each episode's return and steps), ``self_experience`` (L3), ``guidance`` (L5's hand-written guidance, or
    ``None``) and ``teaching_examples`` (L5's worked examples: state, reasoning, action).

    Args:
        env: the base env (numeric spaces).
        translator: the env's :class:`~textgym.translator.Translator`.
        level: domain-knowledge level 1-5 (see :mod:`textgym.levels`).
        fewshot_episodes: whole trajectories shown at L2/L4.
        fewshot_token_budget: estimated tokens (characters / 4) per rendered trajectory; a longer one keeps
            its first and last steps and says how many between them were left out.
        fewshot_seed: first seed of the few-shot episodes; kept far from evaluation seeds.
        teaching_with_trajectories: at L5, add L4's expert trajectories to the teaching (no effect elsewhere).
        base_kwargs: the kwargs ``env`` was made with beyond the text env's defaults (e.g. ``map_name``),
            so that the few-shot episodes are played on the same task; ``None`` means none.

    Example:
        >>> import gymnasium as gym, textgym
        >>> env = gym.make("TextGym-CartPole-v0", level=2)
        >>> obs, info = env.reset(seed=0)
        >>> len(info["knowledge"]["fewshot_examples"]), len(info["knowledge"]["fewshot_returns"])
        (5, 5)
        >>> obs, reward, terminated, truncated, info = env.step("Action: 2")
        >>> info["invalid_action"], info["action"]
        (False, 1)

    Actions: text is read by the translator, whose action texts number actions from 1 (``"2: push right"``).
    An integer (``int`` or a numpy integer, as SB3 and gymnasium code pass) is the base env's action index,
    from 0, exactly as the base env takes it: ``env.step(1)`` pushes right on CartPole. An integer outside
    the base action space raises ``ValueError`` (it is not a guess to be read as text).

    The goal description states the step limit, :attr:`step_limit`: the one registered for the env. Gymnasium
    applies ``gym.make(..., max_episode_steps=n)`` outside this wrapper, unseen by it: pass the made env to
    :func:`state_step_limit` (TextGym's runners do), which sets :attr:`step_limit` to the limit it enforces.
    """

    def __init__(
        self,
        env: gym.Env,
        translator: Translator,
        level: int = 1,
        fewshot_episodes: int = DEFAULT_FEWSHOT_EPISODES,
        fewshot_token_budget: int = DEFAULT_FEWSHOT_TOKEN_BUDGET,
        fewshot_seed: int = FEWSHOT_SEED,
        teaching_with_trajectories: bool = False,
        base_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.level = level_spec(level)
        for arg_name, value, minimum in (("fewshot_episodes", fewshot_episodes, 1),
                                         ("fewshot_token_budget", fewshot_token_budget, MIN_FEWSHOT_TOKEN_BUDGET),
                                         ("fewshot_seed", fewshot_seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{arg_name} must be an int >= {minimum}, actually {value!r}")
        if not isinstance(teaching_with_trajectories, bool):
            raise ValueError("teaching_with_trajectories must be true or false, "
                             f"actually {teaching_with_trajectories!r}")
        super().__init__(env)
        self.translator = translator
        self.fewshot_episodes = fewshot_episodes
        self.fewshot_token_budget = fewshot_token_budget
        self.fewshot_seed = fewshot_seed
        self.teaching_with_trajectories = teaching_with_trajectories
        self.base_kwargs = dict(base_kwargs or {})
        self.observation_space = _text_space(MAX_OBSERVATION_CHARS)
        self.action_space = _text_space(MAX_ACTION_CHARS)
        self._knowledge: dict[str, Any] | None = None
        self._raw_obs: Any = None
        # The reset info's description texts, with the translator and step limit they were rendered for.
        self._descriptions: tuple[Translator, int | None, dict[str, str]] | None = None
        self.step_limit: int | None = registered_step_limit(translator.name)
        """The step limit the goal description states (see the class docstring)."""

    @property
    def fewshot_policy(self) -> PolicyKind | None:
        """Whose trajectories this env shows: the level's, or the expert's at L5 with ``teaching_with_trajectories``."""
        if self.level.teaching and self.teaching_with_trajectories:
            return "expert"
        return self.level.fewshot_policy

    @property
    def knowledge(self) -> dict[str, Any]:
        """The level's extra material, built once (few-shot rollouts are cached on disk too)."""
        if self._knowledge is None:

            spec, policy = self.level, self.fewshot_policy
            fewshot = FewshotTrajectories([], [], [])
            if policy is not None:
                fewshot = fewshot_trajectories(
                    self.translator.name, policy, episodes=self.fewshot_episodes,
                    token_budget=self.fewshot_token_budget, seed=self.fewshot_seed,
                    base_kwargs=self.base_kwargs, text_options=self.translator.options,
                )
            self._knowledge = {
                "level": spec.level,
                "level_summary": spec.summary,
                "fewshot_policy": policy,
                "fewshot_examples": list(fewshot.examples),
                "fewshot_returns": list(fewshot.returns),
                "fewshot_lengths": list(fewshot.lengths),
                "self_experience": spec.self_experience,
                "guidance": self.translator.guidance() if spec.teaching else None,
                "teaching_examples": self.translator.teaching_examples() if spec.teaching else [],
            }
        return self._knowledge

    def _description_texts(self) -> dict[str, str]:
        """The game, goal and action descriptions of the reset info, for the current :attr:`step_limit`.

        They depend only on the translator (its env's constants and text options) and the step limit, so they are
        rendered again only when one of those changes (:func:`state_step_limit`, a replaced translator), not on every
        reset (a short episode's reset spent most of its time rendering them).
        """
        translator, step_limit = self.translator, self.step_limit
        if self._descriptions is None or self._descriptions[0] is not translator or self._descriptions[1] != step_limit:
            texts = {"game_description": translator.game_description(),
                     "goal_description": translator.goal_description(step_limit),
                     "action_description": translator.action_description()}
            self._descriptions = (translator, step_limit, texts)
        return self._descriptions[2]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Reset the base env; the observation is its text, ``info`` carries the descriptions and action spec."""
        raw_obs, info = self.env.reset(seed=seed, options=options)
        self._raw_obs = raw_obs
        info = {
            **info,
            **self._step_info(raw_obs, invalid_action=False),
            "level": self.level.level,
            **self._description_texts(),
            "action_spec": self.translator.action_spec(),
            # A copy: callers may keep or edit what reset returns (gymnasium's checker insists).
            "knowledge": _copied(self.knowledge),
        }
        return self.translator.render_observation(raw_obs), info

    def step(self, action: str | int) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        """Play ``action`` (its text, or an action index) in the base env; the observation is the new state's text."""
        parsed = self._index_action(action) if _is_integer(action) else self.translator.parse_action(action)
        raw_obs, reward, terminated, truncated, info = self.env.step(parsed.action)
        text = self.translator.render_step(self._raw_obs, parsed.action, float(reward), raw_obs)
        self._raw_obs = raw_obs
        info = {
            **info,
            **self._step_info(raw_obs, invalid_action=not parsed.valid),
            "action": parsed.action,
            "base_action": parsed.action,  # what the base env received, the same with or without obfuscation
            "action_text": self.translator.action_to_text(parsed.action),
        }
        return text, reward, terminated, truncated, info

    def _index_action(self, index: Any) -> ParsedAction:
        """An integer action: the base env's action index (see the class docstring)."""
        space = self.env.action_space
        if not isinstance(space, spaces.Discrete):
            return self.translator.parse_action(index)  # a number for a continuous action: the same value as text
        if not space.contains(int(index)):
            raise ValueError(f"action {index!r} is not an action index of {self.translator.name}: an integer action is "
                             f"the base env's index, {space.start} to {space.start + space.n - 1} (text actions count "
                             "from 1, e.g. \"1\")")
        return ParsedAction(int(index), valid=True)

    def _step_info(self, raw_obs: Any, invalid_action: bool) -> dict[str, Any]:
        return {
            "raw_obs": raw_obs,
            "valid_actions": self.translator.valid_actions(),
            "invalid_action": invalid_action,
        }


@functools.cache
def _text_space_prototype(max_length: int) -> TextSpace:
    return TextSpace(max_length, charset=TEXT_CHARSET)


def _text_space(max_length: int) -> TextSpace:
    """A :class:`TextSpace` of :data:`TEXT_CHARSET`: a shallow copy of one built once.

    Building one indexes its charset (~50 us), and every stream's env needs two; a copy shares only those read-only
    tables, and seeds and draws from a generator of its own.
    """
    return copy.copy(_text_space_prototype(max_length))


def state_step_limit(env: gym.Env) -> gym.Env:
    """Make the goal description of ``env`` (from ``gym.make``) state the step limit it enforces; returns ``env``.

    Overrides (``max_episode_steps=n``, ``-1`` for none) included.
    """
    env.set_wrapper_attr("step_limit", env.spec.max_episode_steps if env.spec is not None else None)
    return env


_ATOMS = frozenset((str, int, float, bool, type(None)))
"""Immutable types a deep copy returns as they are."""


def _copied(value: Any) -> Any:
    """A deep copy of ``value``.

    Dicts and lists of plain values are copied directly, several times faster than :func:`copy.deepcopy` (which a
    reset paid for the level's knowledge); anything else goes to :func:`copy.deepcopy`.
    """
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _ATOMS else _copied(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _ATOMS else _copied(item) for item in value]
    return value if kind in _ATOMS else copy.deepcopy(value)


def _is_integer(action: Any) -> bool:
    return isinstance(action, numbers.Integral) and not isinstance(action, bool)


def registered_step_limit(env_name: str) -> int | None:
    """The step limit ``gym.make`` applies to ``env_name``'s text env by default (``None``: none)."""
    text_id = env_entry(env_name).text_id
    return gym.spec(text_id).max_episode_steps if text_id in gym.registry else None


def _named_parameters(creator: Any) -> list[str] | None:
    """The keyword names ``creator`` accepts, following ``**kwargs`` up a class's ``__init__`` chain.

    (MuJoCo's tasks hand theirs to ``MujocoEnv``.) ``None`` where the chain ends in ``**kwargs`` nobody names.
    """
    names: list[str] = []
    for init in ([vars(klass)["__init__"] for klass in creator.__mro__ if "__init__" in vars(klass)]
                 if isinstance(creator, type) else [creator]):
        parameters = list(inspect.signature(init).parameters.values())
        names += [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name != "self" and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names
    return None


@functools.cache
def _base_parameters(env_name: str) -> tuple[str, list[str] | None]:
    """The base env id of ``env_name`` and the keyword names its constructor takes (see :func:`_named_parameters`).

    Cached: every ``gym.make`` checks its kwargs, and reading the signatures cost a good part of making an env.
    """
    spec = base_spec(env_name)
    entry_point = spec.entry_point
    return spec.id, _named_parameters(entry_point if callable(entry_point)
                                      else gym.envs.registration.load_env_creator(str(entry_point)))


def _check_kwargs(env_name: str, base_kwargs: Mapping[str, Any]) -> None:
    """An unknown kwarg fails here, in one line naming TextGym's kwargs and the base env's.

    Not deep in its ``__init__``. A base env whose constructor takes ``**kwargs`` that no ``__init__`` names checks its
    own.
    """
    entry = env_entry(env_name)
    base_id, parameters = _base_parameters(env_name)
    if parameters is None:
        return
    base_names = [name for name in parameters if name not in entry.base_kwargs and name != "render_mode"]
    unknown = [name for name in base_kwargs if name not in base_names]
    if not unknown:
        return
    own = [name for name, p in inspect.signature(make_text_env).parameters.items()
           if name != "env_name" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    close = difflib.get_close_matches(unknown[0], [*own, *base_names], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown kwarg {unknown[0]!r} for {text_env_id(entry.task)}{hint}: TextGym's own kwargs are "
                     f"{', '.join(own)}; the base env {base_id} takes {', '.join(base_names) or 'none'}")


def make_text_env(
    env_name: str,
    level: int = 1,
    render_mode: str | None = None,
    fewshot_episodes: int = DEFAULT_FEWSHOT_EPISODES,
    fewshot_token_budget: int = DEFAULT_FEWSHOT_TOKEN_BUDGET,
    fewshot_seed: int = FEWSHOT_SEED,
    teaching_with_trajectories: bool = False,
    map_visible: bool | None = None,
    expert_policy_path: str | None = None,
    obfuscate: bool = False,
    obfuscation_seed: int = 0,
    **base_kwargs: Any,
) -> TextEnv:
    """Entry point of every ``TextGym-*-v0`` id; extra kwargs go to the base task (e.g. ``is_slippery``).

    The translator is built from the base env itself, so the text describes the task those kwargs
    make (``gym.make("TextGym-FrozenLake-v0", map_name="8x8")`` plays the 8x8 lake), and the few-shot
    episodes are played on that task too. FrozenLake and CliffWalking hide their map, as the base
    observation does; ``map_visible=True`` shows it. ``expert_policy_path`` (a ``model.zip`` from
    ``textgym-ppo``) is the expert of a task TextGym has none for (see :mod:`textgym.policy_file`).
    ``obfuscate=True`` plays the same task in neutral words and mapped numbers (:mod:`textgym.obfuscation`),
    seeded by ``obfuscation_seed``.

    Raises:
        ValueError: for an unknown kwarg (naming TextGym's kwargs and the base env's); for a level whose
            knowledge does not exist for this env: L4 without an expert, L5 without hand-written teaching.
    """
    level_spec(level)  # fail before building anything
    if "fewshot_max_steps" in base_kwargs:
        raise ValueError("fewshot_max_steps was replaced by fewshot_token_budget (estimated tokens per whole "
                         f"trajectory, default {DEFAULT_FEWSHOT_TOKEN_BUDGET})")
    _check_kwargs(env_name, base_kwargs)
    base = make_base_env(env_name, render_mode=render_mode, **base_kwargs)
    translator = make_translator(env_name, base, map_visible=map_visible, expert_policy_path=expert_policy_path,
                                 obfuscate=obfuscate, obfuscation_seed=obfuscation_seed)
    _check_knowledge_exists(translator, level_spec(level), teaching_with_trajectories)
    return TextEnv(base, translator, level=level, fewshot_episodes=fewshot_episodes,
                   fewshot_token_budget=fewshot_token_budget, fewshot_seed=fewshot_seed,
                   teaching_with_trajectories=teaching_with_trajectories, base_kwargs=base_kwargs)


def _check_knowledge_exists(translator: Translator, spec: Any, teaching_with_trajectories: bool) -> None:
    """A level that needs an expert or teaching the env lacks fails here, saying how to provide it."""
    name = translator.name
    if spec.teaching and not translator.has_teaching():
        raise ValueError(f"level {spec.level} needs hand-written teaching (guidance and worked examples checked "
                         f"against an expert), and none is written for {name}: use levels 1-4 (level 4 with an "
                         "expert_policy_path where TextGym has no expert)")
    wants_expert = spec.fewshot_policy == "expert" or (spec.teaching and teaching_with_trajectories)
    if wants_expert and not translator.has_expert:
        raise ValueError(f"level {spec.level} shows expert trajectories and TextGym has no expert for {name}: "
                         f"train one with `textgym-ppo env={name}` and pass its model file, e.g. "
                         f"gym.make(..., expert_policy_path='runs/ppo/{name}-s0/model.zip') (and "
                         f"`textgym-trajectories --env {name} --expert-policy-path ...` to prebuild the trajectories)")
