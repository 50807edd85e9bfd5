"""TextGym tasks as GEM environments (gem-llm 0.1.0, Python <= 3.12).

Install: ``pip install "textgym[gem]" && pip install --no-deps gem-llm==0.1.0`` (gem-llm pins ANTLR 4.13, which
Hydra 1.3 cannot run beside; the extra holds gem-llm's other requirements).

    >>> import gem
    >>> from textgym.integrations.gem import register
    >>> register()  # doctest: +SKIP
    >>> env = gem.make("textgym:CartPole-L1", seed=0)  # doctest: +SKIP
    >>> obs, info = env.reset()  # doctest: +SKIP
    >>> obs, reward, terminated, truncated, info = env.step('{"action": "push left"}')  # doctest: +SKIP
    >>> vec = gem.make_vec(["textgym:CartPole-L1"] * 4, async_mode=True, seed=0)  # doctest: +SKIP

Ids are ``textgym:<Task>-L<level>`` for every text env and every training level (1, 2, 4, 5; L3 is a protocol
across episodes, not a training level). Each env is a :class:`textgym.chat.ChatEnv`: its observation is the text
of the new chat turns (at reset the system briefing and the first state; later each step's user turn), and
``info["messages"]`` holds them as chat messages. GEM passes ``seed`` to the constructor (``make_vec`` gives env
``i`` ``seed + i``); the first reset without a seed uses it, later ones continue that env's random stream, as
GEM's autoreset expects.
"""

from __future__ import annotations

import json
import random
from typing import Any

from textgym.chat import ChatEnv
from textgym.integrations import require_extra
from textgym.integrations.common import messages_text
from textgym.levels import LEVELS
from textgym.registration import ENVS, env_entry

# gem-llm pins ANTLR 4.13, which Hydra cannot run beside, so the extra holds its requirements and not gem-llm itself.
gem: Any = require_extra("gem", "gem", "GEM (gem-llm)", then="pip install --no-deps gem-llm==0.1.0")  # untyped: Any

__all__ = ["TRAINING_LEVELS", "TextGymGemEnv", "gem_env_id", "register"]

TRAINING_LEVELS: tuple[int, ...] = tuple(level for level in LEVELS if level != 3)
"""Levels registered with GEM: L3 is a protocol across episodes, which a single-episode env cannot give."""


class TextGymGemEnv(gem.Env):
    """A TextGym chat env as a ``gem.Env``: text in, text out, rewards per turn.

    Args:
        env: a TextGym env name (``"cartpole"``) or text id (``"TextGym-CartPole-v0"``).
        level: the knowledge level (1, 2, 4 or 5).
        seed: the seed of the first reset that is given none (GEM's ``make_vec`` passes one per env).
        **chat_kwargs: passed on to :class:`textgym.chat.ChatEnv` (``action_format``, ``invalid_action``,
            ``format_penalty``, ``history``, base-task kwargs).
    """

    def __init__(self, env: str = "cartpole", level: int = 1, seed: int | None = None, **chat_kwargs: Any) -> None:
        super().__init__()
        self.chat = ChatEnv(env, level, **chat_kwargs)
        self.seed = seed
        self._seed_used = False  # the constructor's seed applies to the first reset only
        self._config = {"env": env, "level": level, **chat_kwargs}

    def reset(self, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode: the briefing and first state as one text; ``info["messages"]`` as chat messages."""
        if seed is None and not self._seed_used:
            seed = self.seed
        self._seed_used = True
        super().reset(seed)
        messages, info = self.chat.reset(seed=seed)
        return messages_text(messages), {**info, "messages": messages}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Play the model's reply; the observation is the text of the env's new turns."""
        messages, reward, terminated, truncated, info = self.chat.step(action)
        return messages_text(messages), float(reward), terminated, truncated, {**info, "messages": messages}

    def sample_random_action(self) -> str:
        """A uniformly random valid action, written as the JSON reply every action format accepts.

        That is ``{"action": ...}``, drawn from Python's ``random``, which GEM's ``reset(seed)`` seeds.
        """
        spec = self.chat.action_spec
        if spec["type"] == "discrete":
            action: Any = random.choice(spec["names"])
        elif spec["type"] == "continuous":
            action = round(random.uniform(spec["low"], spec["high"]), spec["digits"])
        else:
            action = {name: round(random.uniform(low, high), spec["digits"])
                      for name, low, high in zip(spec["names"], spec["low"], spec["high"], strict=True)}
        return json.dumps({"action": action})

    def spawn(self, same_state: bool = False, **kwargs: Any) -> TextGymGemEnv:
        """A new env with this one's configuration (``kwargs`` override it); ``same_state`` is not supported."""
        if same_state:
            raise NotImplementedError("TextGymGemEnv.spawn(same_state=True): a ChatEnv's episode cannot be copied; "
                                      "reset a spawned env with the same seed instead")
        return TextGymGemEnv(**{"seed": self.seed, **self._config, **kwargs})

    def close(self) -> None:
        """Close the underlying text env."""
        self.chat.close()


def gem_env_id(env: str, level: int) -> str:
    """GEM id of a TextGym env at a level: ``gem_env_id("cartpole", 1) == "textgym:CartPole-L1"``."""
    return f"textgym:{env_entry(env).task}-L{level}"


def register(envs: list[str] | None = None, levels: tuple[int, ...] = TRAINING_LEVELS) -> list[str]:
    """Register ``textgym:<Task>-L<level>`` ids with GEM (idempotent) and return them.

    Args:
        envs: TextGym env names or ids (default: every registered text env; those whose optional extra is
            missing are registered too and name it when made).
        levels: knowledge levels to register (default 1, 2, 4, 5).

    Returns:
        The GEM ids, in order.
    """
    ids = []
    for name in envs if envs is not None else list(ENVS):
        entry = env_entry(name)
        for level in levels:
            if level not in TRAINING_LEVELS:
                raise ValueError(f"level {level} cannot be registered with GEM: expected one of {TRAINING_LEVELS} "
                                 f"(L3 is a protocol across episodes, not a training level)")
            env_id = gem_env_id(entry.name, level)
            if env_id not in gem.envs.registration.ENV_REGISTRY:
                gem.register(env_id, TextGymGemEnv, env=entry.name, level=level)
            ids.append(env_id)
    return ids
