"""RandomAgent: a uniform random valid action each step; no LLM (the normalized-score zero)."""

from __future__ import annotations

import json
import random as _random
from typing import Any

from agents.base import Agent, EpisodeContext

__all__ = ["RandomAgent"]


class RandomAgent(Agent):
    """Picks uniformly among the valid actions, seeded.

    A uniform number for continuous actions, one per actuator for vector actions.
    """

    name = "random"
    uses_llm = False

    def __init__(self, llm: object | None = None, seed: int = 0, name: str | None = None) -> None:
        super().__init__(None, seed, name)
        self._rng = _random.Random(seed)

    async def _reset(self, context: EpisodeContext) -> None:
        self._rng = _random.Random(f"{self.seed}-{context.episode_index}")

    async def _act(self, observation: str, info: dict[str, Any]) -> str:
        assert self.context is not None
        spec = self.context.action_spec
        digits = spec.get("digits", 2)
        if spec["type"] == "discrete":
            return self._rng.choice(spec["names"])
        if spec["type"] == "vector":  # one number per actuator, as the JSON object the env reads by names
            return json.dumps({name: round(self._rng.uniform(low, high), digits)
                               for name, low, high in zip(spec["names"], spec["low"], spec["high"], strict=True)})
        return f"{self._rng.uniform(spec['low'], spec['high']):.{digits}f}"
