"""One table of the text envs and one loop that registers them with gymnasium.

``import textgym`` runs this module, so ``gym.make("TextGym-CartPole-v0", level=3)`` works after it,
and ``gym.make("textgym:TextGym-CartPole-v0")`` imports it for you.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym

if TYPE_CHECKING:  # a type only: the translators import lazily, per env
    from textgym.translator import Translator

__all__ = ["EnvEntry", "ENVS", "EXTRAS", "MissingExtraError", "base_spec", "env_entry", "latest_base_id",
           "text_env_id", "register_envs"]

EXTRAS: dict[str, tuple[str, str]] = {
    "mujoco": ("mujoco", "MuJoCo"),
    "atari": ("ale_py", "the Arcade Learning Environment (ale-py, which ships the ROMs)"),
}
"""Optional extra -> (the module it installs, what it is): ``pip install "textgym[<extra>]"``."""


class MissingExtraError(gym.error.DependencyNotInstalled):
    """A text env was asked for whose optional extra (``textgym[mujoco]``, ``textgym[atari]``) is not installed."""


@dataclass(frozen=True)
class EnvEntry:
    """A text env: which Gym task it wraps and which translator speaks for it.

    Attributes:
        name: config name, e.g. ``"mountaincar_continuous"``.
        task: gymnasium's family name, e.g. ``"MountainCarContinuous"``; the newest registered version is used.
        translator: ``"module:Class"`` of the :class:`~textgym.translator.Translator`.
        max_episode_steps: step limit where the base task has none (``None``: keep the base one).
        base_kwargs: extra kwargs for the base task.
        base_family: gymnasium's id of the base task without its version, where it is not ``task``
            (``"ALE/Pong"``).
        extra: the optional extra the base task needs (a key of :data:`EXTRAS`), or ``None``.
        base_class: ``"module:Class"`` of a drop-in for the base task's env class that TextGym makes instead (the
            same observations, rewards and random draws for every seed and action, which its tests check against
            gymnasium's class; only faster), or ``None`` for gymnasium's own.
    """

    name: str
    task: str
    translator: str
    max_episode_steps: int | None = None
    base_kwargs: dict[str, Any] = field(default_factory=dict)
    base_family: str | None = None
    extra: str | None = None
    base_class: str | None = None

    @property
    def text_id(self) -> str:
        """The Gymnasium id, ``TextGym-<Task>-v0``."""
        return text_env_id(self.task)

    @property
    def family(self) -> str:
        """The base task's gymnasium id without its version: ``"CartPole"``, ``"ALE/Pong"``."""
        return self.base_family or self.task

    def missing_extra(self) -> str | None:
        """The extra this env needs and lacks (``"mujoco"``, ``"atari"``), or ``None`` when it can be made."""
        if self.extra is None or importlib.util.find_spec(EXTRAS[self.extra][0]) is not None:
            return None
        return self.extra

    def require_extra(self) -> None:
        """Raise :class:`MissingExtraError`, naming the extra to install, if the base task cannot be made."""
        extra = self.missing_extra()
        if extra is not None:
            module, what = EXTRAS[extra]
            raise MissingExtraError(
                f"{self.text_id} needs {what}, which is not installed: pip install \"textgym[{extra}]\" "
                f"(bash scripts/setup.sh installs every extra); the Python module {module!r} was not found")

    def translator_class(self) -> type[Translator]:
        """The translator class, imported now."""
        module, _, attribute = self.translator.partition(":")
        return getattr(importlib.import_module(module), attribute)


def _entry(name: str, task: str, **kwargs: Any) -> EnvEntry:
    return EnvEntry(name, task, f"textgym.envs.{name}:{task}Translator", **kwargs)


# ALE's own cap (max_num_frames_per_episode=108000 in its v5 specs) in agent steps at its default frameskip of 4;
# the v5 specs set no step limit of their own.
ATARI_MAX_EPISODE_STEPS = 27_000


def _atari(name: str, game: str) -> EnvEntry:
    # The text is read from the console's RAM, so the base task observes the RAM (128 bytes).
    return _entry(name, game, base_family=f"ALE/{game}", extra="atari", max_episode_steps=ATARI_MAX_EPISODE_STEPS,
                  base_kwargs={"obs_type": "ram"})


def _mujoco(name: str, task: str) -> EnvEntry:
    return _entry(name, task, extra="mujoco")


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
        _entry("blackjack", "Blackjack", max_episode_steps=100, base_class="textgym.envs.blackjack:BlackjackEnv"),
        _entry("taxi", "Taxi"),
        # CliffWalking has no step limit: a policy that never reaches the goal would never end.
        _entry("cliffwalking", "CliffWalking", max_episode_steps=200),
        _entry("frozenlake", "FrozenLake"),
        _atari("pong", "Pong"),
        _atari("breakout", "Breakout"),
        _atari("freeway", "Freeway"),
        _mujoco("inverted_pendulum", "InvertedPendulum"),
        _mujoco("inverted_double_pendulum", "InvertedDoublePendulum"),
        _mujoco("reacher", "Reacher"),
        _mujoco("pusher", "Pusher"),
        _mujoco("swimmer", "Swimmer"),
        _mujoco("hopper", "Hopper"),
        _mujoco("walker2d", "Walker2d"),
        _mujoco("half_cheetah", "HalfCheetah"),
        _mujoco("ant", "Ant"),
    )
}


def text_env_id(task: str) -> str:
    """``"CartPole"`` -> ``"TextGym-CartPole-v0"``."""
    return f"TextGym-{task}-v0"


def latest_base_id(task: str) -> str:
    """The newest version of ``task`` that the installed gymnasium registers, e.g. ``"Taxi-v4"``, ``"ALE/Pong-v5"``.

    For a text env's task this is its base task (``"Pong"`` -> ``"ALE/Pong-v5"``), and an optional extra it needs
    but lacks raises :class:`MissingExtraError` naming the extra.
    """
    entry = next((e for e in ENVS.values() if e.task == task), None)
    if entry is not None:
        entry.require_extra()
    return _newest_version(entry.family if entry is not None else task)


def base_spec(env_name: str) -> gym.envs.registration.EnvSpec:
    """The gymnasium spec of ``env_name``'s base task (:func:`latest_base_id`), naming the entry's ``base_class``."""
    entry = env_entry(env_name)
    spec = gym.spec(latest_base_id(entry.task))
    return spec if entry.base_class is None else dataclasses.replace(spec, entry_point=entry.base_class)


def _newest_version(family: str) -> str:
    if family.startswith("ALE/"):
        _register_ale()
    pattern = re.compile(rf"{re.escape(family)}-v(\d+)")
    versions = [int(m.group(1)) for env_id in gym.registry if (m := pattern.fullmatch(env_id))]
    if not versions:
        raise gym.error.Error(f"gymnasium {gym.__version__} registers no version of {family}")
    return f"{family}-v{max(versions)}"


def _register_ale() -> None:
    """ALE registers its games only when asked; imported on first use (0.3 s), not by ``import textgym``."""
    import ale_py

    if "ALE/Pong-v5" not in gym.registry:
        gym.register_envs(ale_py)


def env_entry(name: str) -> EnvEntry:
    """Look up an env by config name (``"cartpole"``) or text id; unknown names list what exists.

    >>> env_entry("cartpole").task
    'CartPole'
    """
    if name in ENVS:
        return ENVS[name]
    by_id = {entry.text_id: entry for entry in ENVS.values()}  # built only here: every gym.make asks a few times
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
        # ALE's specs set neither a step limit (the entry does) nor a reward threshold, so its games register
        # without importing ale-py, installed or not; making one without its extra raises MissingExtraError.
        base_spec = None if entry.extra == "atari" else gym.spec(_newest_version(entry.family))
        gym.register(
            id=entry.text_id,
            entry_point="textgym.wrapper:make_text_env",
            kwargs={"env_name": entry.name},
            max_episode_steps=entry.max_episode_steps or (base_spec.max_episode_steps if base_spec else None),
            reward_threshold=base_spec.reward_threshold if base_spec else None,
        )
