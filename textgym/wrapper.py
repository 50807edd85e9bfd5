"""TextEnv: the one generic wrapper that makes any translated Gym task speak text.

Observations and actions are strings (:class:`gymnasium.spaces.Text`); the raw observation stays in
``info["raw_obs"]``. Unparsable action text never raises: the translator's documented fallback is
played and ``info["invalid_action"]`` is ``True``.
"""

from __future__ import annotations

import copy
import string
from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium import spaces

from textgym.levels import FEWSHOT_SEED, level_spec
from textgym.registration import env_entry, latest_base_id
from textgym.translator import Translator

__all__ = ["TextEnv", "make_text_env", "TEXT_CHARSET"]

TEXT_CHARSET = frozenset(string.printable)
"""Every character TextGym emits: printable ASCII plus whitespace (``spaces.Text`` defaults to alphanumerics)."""
MAX_OBSERVATION_CHARS = 4096
MAX_ACTION_CHARS = 4096


class TextEnv(gym.Wrapper[str, str, Any, Any]):
    """Wraps a base Gym env so that observations and actions are text.

    Args:
        env: the base env (numeric spaces).
        translator: the env's :class:`~textgym.translator.Translator`.
        level: domain-knowledge level 1-5 (see :mod:`textgym.levels`).
        fewshot_episodes: episodes shown at L2/L4/L5.
        fewshot_max_steps: steps shown per few-shot episode (returns cover the whole episode).
        fewshot_seed: first seed of the few-shot episodes; kept far from evaluation seeds.
        base_kwargs: the kwargs ``env`` was made with beyond the text env's defaults (e.g. ``map_name``),
            so that the few-shot episodes are played on the same task; ``None`` means none.

    Example:
        >>> import gymnasium as gym, textgym
        >>> env = gym.make("TextGym-CartPole-v0", level=2)
        >>> obs, info = env.reset(seed=0)
        >>> len(info["knowledge"]["fewshot_examples"]) > 0
        True
        >>> obs, reward, terminated, truncated, info = env.step("Action: 2")
        >>> info["invalid_action"], info["action"]
        (False, 1)
    """

    def __init__(
        self,
        env: gym.Env,
        translator: Translator,
        level: int = 1,
        fewshot_episodes: int = 2,
        fewshot_max_steps: int = 8,
        fewshot_seed: int = FEWSHOT_SEED,
        base_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.level = level_spec(level)
        for arg_name, value, minimum in (("fewshot_episodes", fewshot_episodes, 1),
                                         ("fewshot_max_steps", fewshot_max_steps, 1)):
            if not isinstance(value, int) or value < minimum:
                raise ValueError(f"{arg_name} must be an int >= {minimum}, actually {value!r}")
        super().__init__(env)
        self.translator = translator
        self.fewshot_episodes = fewshot_episodes
        self.fewshot_max_steps = fewshot_max_steps
        self.fewshot_seed = fewshot_seed
        self.base_kwargs = dict(base_kwargs or {})
        self.observation_space = spaces.Text(MAX_OBSERVATION_CHARS, charset=TEXT_CHARSET)
        self.action_space = spaces.Text(MAX_ACTION_CHARS, charset=TEXT_CHARSET)
        self._knowledge: dict[str, Any] | None = None

    @property
    def knowledge(self) -> dict[str, Any]:
        """The level's extra material, built once (few-shot rollouts are cached on disk too)."""
        if self._knowledge is None:
            # Imported here: trajectories builds envs through this module.
            from textgym.trajectories import fewshot_examples

            spec = self.level
            examples: list[str] = []
            if spec.fewshot_policy is not None:
                examples = fewshot_examples(
                    self.translator.name, spec.fewshot_policy, episodes=self.fewshot_episodes,
                    max_steps_shown=self.fewshot_max_steps, seed=self.fewshot_seed,
                    base_kwargs=self.base_kwargs,
                )
            self._knowledge = {
                "level": spec.level,
                "level_summary": spec.summary,
                "fewshot_policy": spec.fewshot_policy,
                "fewshot_examples": examples,
                "self_experience": spec.self_experience,
                "guidance": self.translator.guidance() if spec.guidance else None,
            }
        return self._knowledge

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        raw_obs, info = self.env.reset(seed=seed, options=options)
        info = {
            **info,
            **self._step_info(raw_obs, invalid_action=False),
            "level": self.level.level,
            "game_description": self.translator.game_description(),
            "goal_description": self.translator.goal_description(),
            "action_description": self.translator.action_description(),
            "action_spec": self.translator.action_spec(),
            # A copy: callers may keep or edit what reset returns (gymnasium's checker insists).
            "knowledge": copy.deepcopy(self.knowledge),
        }
        return self.translator.render_observation(raw_obs), info

    def step(self, action: str) -> tuple[str, SupportsFloat, bool, bool, dict[str, Any]]:
        parsed = self.translator.parse_action(action)
        raw_obs, reward, terminated, truncated, info = self.env.step(parsed.action)
        info = {
            **info,
            **self._step_info(raw_obs, invalid_action=not parsed.valid),
            "action": parsed.action,
            "action_text": self.translator.action_to_text(parsed.action),
        }
        return self.translator.render_observation(raw_obs), reward, terminated, truncated, info

    def _step_info(self, raw_obs: Any, invalid_action: bool) -> dict[str, Any]:
        return {
            "raw_obs": raw_obs,
            "valid_actions": self.translator.valid_actions(),
            "invalid_action": invalid_action,
        }


def make_base_env(env_name: str, render_mode: str | None = None, **base_kwargs: Any) -> gym.Env:
    """The base (numeric) env behind ``env_name``, without a step limit (the text spec sets it)."""
    entry = env_entry(env_name)
    return gym.make(
        latest_base_id(entry.task), max_episode_steps=-1, disable_env_checker=True, render_mode=render_mode,
        **{**entry.base_kwargs, **base_kwargs},
    )


def make_text_env(
    env_name: str,
    level: int = 1,
    render_mode: str | None = None,
    fewshot_episodes: int = 2,
    fewshot_max_steps: int = 8,
    fewshot_seed: int = FEWSHOT_SEED,
    **base_kwargs: Any,
) -> TextEnv:
    """Entry point of every ``TextGym-*-v0`` id; extra kwargs go to the base task (e.g. ``is_slippery``).

    The translator is built from the base env itself, so the text describes the task those kwargs
    make (``gym.make("TextGym-FrozenLake-v0", map_name="8x8")`` shows the 8x8 map), and the few-shot
    episodes are played on that task too.
    """
    level_spec(level)  # fail before building anything
    base = make_base_env(env_name, render_mode=render_mode, **base_kwargs)
    translator = env_entry(env_name).translator_class()(base)
    return TextEnv(base, translator, level=level, fewshot_episodes=fewshot_episodes,
                   fewshot_max_steps=fewshot_max_steps, fewshot_seed=fewshot_seed, base_kwargs=base_kwargs)
