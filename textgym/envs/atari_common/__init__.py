"""What the Atari text envs share: the console's RAM read as named quantities, ALE's action names and timing.

Each game's translator names the RAM addresses its text is built from (``quantities``); the tests in
``tests/textgym/envs/test_atari_ram.py`` check every address's meaning against the rendered frame and the rewards.
The base task observes the RAM (``obs_type="ram"``, 128 bytes); the text carries the named quantities, which
:meth:`AtariRamTranslator.observation_values` lists in :meth:`~textgym.translator.Translator.read_observation`'s
order. Only the game's default mode and difficulty and its minimal action set are supported: the addresses and the
constants in the descriptions were checked for those.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from textgym.obfuscation import ObfuscationSpec, Quantity
from textgym.translator import Translator

__all__ = ["AtariRamTranslator", "signed", "bcd", "read_int", "OBFUSCATION_GIVEAWAYS"]


OBFUSCATION_GIVEAWAYS = ("atari", "2600", "console", "arcade", "ALE", "joystick", "stella", "paddle", "ball")
"""Words no obfuscated Atari text may use."""


def signed(byte: Any) -> int:
    """A RAM byte read as a two's-complement number (-128 to 127)."""
    value = int(byte)
    return value - 256 if value > 127 else value


def bcd(*digits_bytes: Any) -> int:
    """Bytes holding two decimal digits each (binary-coded decimal, most significant first) as one number.

    >>> bcd(0x01, 0x23)
    123
    """
    value = 0
    for byte in digits_bytes:
        value = value * 100 + (int(byte) >> 4) * 10 + (int(byte) & 0x0F)
    return value


def read_int(pattern: str, text: str) -> int:
    """The integer captured by ``pattern``'s first group in ``text``; a clear error when it is missing."""
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"no match for {pattern!r} in {text!r}")
    return int(match.group(1))


class AtariRamTranslator(Translator):
    """Speaks for an ALE game observed through its RAM.

    Subclasses set :attr:`action_names` (ALE's minimal action set, in ALE's order and spelling),
    :attr:`action_effects` (what each does in this game) and implement :meth:`quantities`.

    Raises:
        ValueError: if the base env does not observe the RAM, uses another action set, or another game mode
            or difficulty than the default.
    """

    action_effects: ClassVar[dict[str, str]] = {}
    """What each ALE action does in this game, for the action description."""
    obfuscation_objects: ClassVar[tuple[str, ...]] = ()
    """Roles the obfuscated variant gives invented names (the game's objects)."""
    obfuscation_labels: ClassVar[dict[str, str]] = {}
    """Neutral label of each RAM quantity (``{role}`` placeholders allowed), by :meth:`quantities`' name."""
    obfuscation_axes: ClassVar[dict[str, str]] = {}
    """Quantities measured along a screen axis (``"rows"``, ``"columns"``): they share that axis's map."""
    obfuscation_rates: ClassVar[dict[str, str]] = {}
    """Quantities that are speeds along a screen axis (scaled as the axis, no offset)."""
    obfuscation_words: ClassVar[tuple[str, ...]] = ()
    """Words that identify this game, beyond what every Atari game shares (:data:`OBFUSCATION_GIVEAWAYS`)."""

    def __init__(self, env: gym.Env) -> None:
        game: Any = env.unwrapped  # ale-py's AtariEnv (ale-py ships no types)
        if getattr(game, "_obs_type", None) != "ram":
            raise ValueError(f"{type(self).__name__} reads the console's RAM: make the base task with "
                             f"obs_type='ram', actually {getattr(game, '_obs_type', None)!r}")
        meanings = tuple(game.get_action_meanings())
        if meanings != self.action_names:
            raise ValueError(f"{type(self).__name__} speaks for the minimal action set {list(self.action_names)} "
                             f"(full_action_space=False), actually {list(meanings)}")
        for setting in ("mode", "difficulty"):
            value = getattr(game, f"_game_{setting}")
            if value is not None and value != getattr(game.ale, f"getAvailable{setting.capitalize()}s")()[0]:
                raise ValueError(f"{type(self).__name__} supports the game's default {setting} only (its RAM "
                                 f"addresses and constants were checked there), actually {setting}={value!r}")
        super().__init__(env)

    @abstractmethod
    def quantities(self, ram: Any) -> dict[str, int]:
        """The named RAM quantities the text is built from, in :meth:`read_observation`'s order."""

    def obfuscation_spec(self) -> ObfuscationSpec:
        """Each RAM quantity a count under its neutral label; each ALE action an invented name."""
        names = list(self.quantities(np.zeros(128, dtype=np.uint8)))
        actions = tuple(f"{{act{index}}}" for index in range(len(self.action_names)))
        return ObfuscationSpec(
            objects=(*self.obfuscation_objects, *(f"act{index}" for index in range(len(self.action_names)))),
            quantities=tuple(Quantity(self.obfuscation_labels[name], "count", axis=self.obfuscation_axes.get(name),
                                      rate_of=self.obfuscation_rates.get(name)) for name in names),
            actions=actions,
            giveaways=(*OBFUSCATION_GIVEAWAYS, *self.action_names, *self.obfuscation_words),
            templates=f"{self.template_folder()}/obfuscated",
            facts={"index": {name: index for index, name in enumerate(names)}})

    def observation_values(self, obs: Any) -> np.ndarray:
        return np.array(list(self.quantities(obs).values()), dtype=float)

    def template_context(self) -> dict[str, Any]:
        game = self.env
        frameskip = game._frameskip
        frames = (f"{frameskip} frames" if isinstance(frameskip, int)
                  else f"a random number of frames from {frameskip[0]} to {frameskip[1] - 1}")
        return {**super().template_context(), "frames_per_step": frames,
                "frameskip": frameskip if isinstance(frameskip, int) else None,
                "sticky": float(game.ale.getFloat("repeat_action_probability")),
                "action_effects": [self.action_effects[name] for name in self.action_names]}
