"""One table of the text envs and one loop that registers them with gymnasium.

``import textgym`` runs this module, so ``gym.make("TextGym-CartPole-v0", level=3)`` works after it,
and ``gym.make("textgym:TextGym-CartPole-v0")`` imports it for you.
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

__all__ = ["EnvEntry", "ENVS", "env_entry", "latest_base_id", "text_env_id", "register_envs"]


@dataclass(frozen=True)
class EnvEntry:
    """A text env: which Gym task it wraps and which translator speaks for it.

    Attributes:
        name: config name, e.g. ``"mountaincar_continuous"``.
        task: gymnasium's family name, e.g. ``"MountainCarContinuous"``; the newest registered version is used.
        translator: ``"module:Class"`` of the :class:`~textgym.translator.Translator`.
        max_episode_steps: step limit where the base task has none (``None``: keep the base one).
        base_kwargs: extra kwargs for the base task.
    """

    name: str
    task: str
    translator: str
    max_episode_steps: int | None = None
    base_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def text_id(self) -> str:
        return text_env_id(self.task)

    def translator_class(self) -> type:
        module, _, attribute = self.translator.partition(":")
        return getattr(importlib.import_module(module), attribute)


def _entry(name: str, task: str, **kwargs: Any) -> EnvEntry:
    return EnvEntry(name, task, f"textgym.envs.{name}:{task}Translator", **kwargs)


ENVS: dict[str, EnvEntry] = {
    entry.name: entry
    for entry in (
        _entry("cartpole", "CartPole"),
        _entry("acrobot", "Acrobot"),
        _entry("mountaincar", "MountainCar"),
        _entry("mountaincar_continuous", "MountainCarContinuous"),
        _entry("pendulum", "Pendulum"),
        _entry("lunarlander", "LunarLander"),
        # Blackjack has no step limit either; a hand never lasts 100 steps, so this only guards runaway loops.
        _entry("blackjack", "Blackjack", max_episode_steps=100),
        _entry("taxi", "Taxi"),
        # CliffWalking has no step limit: a policy that never reaches the goal would never end.
        _entry("cliffwalking", "CliffWalking", max_episode_steps=200),
        _entry("frozenlake", "FrozenLake"),
    )
}


def text_env_id(task: str) -> str:
    """``"CartPole"`` -> ``"TextGym-CartPole-v0"``."""
    return f"TextGym-{task}-v0"


def latest_base_id(task: str) -> str:
    """The newest version of ``task`` that the installed gymnasium registers, e.g. ``"Taxi-v4"``."""
    pattern = re.compile(rf"{re.escape(task)}-v(\d+)")
    versions = [int(m.group(1)) for env_id in gym.registry if (m := pattern.fullmatch(env_id))]
    if not versions:
        raise gym.error.Error(f"gymnasium {gym.__version__} registers no version of {task}")
    return f"{task}-v{max(versions)}"


def env_entry(name: str) -> EnvEntry:
    """Look up an env by config name (``"cartpole"``) or text id; unknown names list what exists.

    >>> env_entry("cartpole").task
    'CartPole'
    """
    by_id = {entry.text_id: entry for entry in ENVS.values()}
    if name in ENVS:
        return ENVS[name]
    if name in by_id:
        return by_id[name]
    close = difflib.get_close_matches(str(name), [*ENVS, *by_id], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown env {name!r}: expected one of {', '.join(ENVS)}.{hint}")


def register_envs() -> None:
    """Register ``TextGym-<Task>-v0`` for every entry (idempotent)."""
    for entry in ENVS.values():
        if entry.text_id in gym.registry:
            continue
        base_spec = gym.spec(latest_base_id(entry.task))
        gym.register(
            id=entry.text_id,
            entry_point="textgym.wrapper:make_text_env",
            kwargs={"env_name": entry.name},
            max_episode_steps=entry.max_episode_steps or base_spec.max_episode_steps,
            reward_threshold=base_spec.reward_threshold,
        )
