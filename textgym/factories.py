"""Factories for the two halves of a text env: the base (numeric) env and its translator.

They sit next to the registration table (:mod:`textgym.registration`), below both the wrapper and the
few-shot trajectories, which build envs through them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from textgym.obfuscation import ObfuscatedTranslator
from textgym.registration import ENVS, base_spec, env_entry
from textgym.translator import Translator

__all__ = ["make_base_env", "make_translator"]


def make_base_env(env_name: str, render_mode: str | None = None, **base_kwargs: Any) -> gym.Env:
    """The base (numeric) env behind ``env_name``, without a step limit (the text spec sets it)."""
    return gym.make(
        base_spec(env_name), max_episode_steps=-1, disable_env_checker=True, render_mode=render_mode,
        **{**env_entry(env_name).base_kwargs, **base_kwargs},
    )


def make_translator(env_name: str, base: gym.Env, map_visible: bool | None = None,
                    expert_policy_path: str | None = None, expert_policy_sha256: str | None = None,
                    obfuscate: bool = False, obfuscation_seed: int = 0) -> Translator:
    """The translator of ``env_name`` speaking for ``base``.

    Args:
        env_name: config name or text id of the env.
        base: the base env (see :func:`make_base_env`).
        map_visible: for envs whose text hides the map the base observation hides (FrozenLake,
            CliffWalking): show it. ``None`` keeps the env's default (hidden).
        expert_policy_path: a ``model.zip`` saved by ``textgym-ppo``, used as the expert (see
            :mod:`textgym.policy_file`).
        expert_policy_sha256: the SHA-256 the policy file must have (``None``: not checked).
        obfuscate: speak in neutral invented names and mapped numbers (:mod:`textgym.obfuscation`).
        obfuscation_seed: the seed of the invented names and maps.

    Raises:
        ValueError: if ``map_visible`` is not a bool, or is given for an env whose text hides no map; if the
            policy file is missing or changed; if ``obfuscate`` is not a bool or ``obfuscation_seed`` not an int >= 0.
    """
    translator = _translator(env_name, base, map_visible)
    if expert_policy_path is not None:
        translator.use_policy_file(expert_policy_path, expert_policy_sha256)
    if not isinstance(obfuscate, bool):
        raise ValueError(f"obfuscate must be true or false, actually {obfuscate!r}")
    return ObfuscatedTranslator(translator, obfuscation_seed) if obfuscate else translator


def _translator(env_name: str, base: gym.Env, map_visible: bool | None) -> Translator:
    translator_class = env_entry(env_name).translator_class()
    if map_visible is None:
        return translator_class(base)
    if not isinstance(map_visible, bool):
        raise ValueError(f"map_visible must be true or false, actually {map_visible!r}")
    if not translator_class.hides_map:
        hiding = [name for name, entry in ENVS.items() if entry.translator_class().hides_map]
        raise ValueError(f"map_visible applies only to {', '.join(hiding)}: the {translator_class.name} text "
                         f"hides no map, actually map_visible={map_visible!r}")
    return translator_class(base, map_visible=map_visible)  # type: ignore[call-arg]  # hides_map translators take it
