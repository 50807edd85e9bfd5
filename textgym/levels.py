"""The five domain-knowledge levels, as one table of data.

The wrapper reads :data:`LEVELS` and hands agents what a level allows in ``info["knowledge"]`` at
reset; no code branches on the level number elsewhere. Offline knowledge (L2/L4 trajectories, L5
teaching) is given at the start of every episode; only a level with ``self_experience`` lets an agent
carry what it learned from one of its own episodes into the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["LevelSpec", "LEVELS", "level_spec", "FEWSHOT_SEED", "DEFAULT_FEWSHOT_EPISODES",
           "DEFAULT_FEWSHOT_TOKEN_BUDGET", "PolicyKind"]

FEWSHOT_SEED = 1_000_000_000
"""First seed of the few-shot episodes: far from any evaluation seed, so no example replays a test episode."""
DEFAULT_FEWSHOT_EPISODES = 5
"""Offline trajectories at L2/L4, as in the original study."""
DEFAULT_FEWSHOT_TOKEN_BUDGET = 400
"""Estimated tokens per rendered trajectory (characters / 4): five fit the embedded model's 4,096-token slots
beside the descriptions and ten steps of history. Raise it for long-context models."""


PolicyKind = Literal["random", "expert"]
"""Whose trajectories a level shows as examples."""


@dataclass(frozen=True)
class LevelSpec:
    """What an agent may know at one level.

    Attributes:
        level: 1-5.
        summary: one line for docs and reports.
        fewshot_policy: whose whole trajectories are shown as examples (``None``: none).
        self_experience: the agent may learn from its own earlier episodes.
        teaching: hand-written expert teaching (guidance and worked examples) is included.
    """

    level: int
    summary: str
    fewshot_policy: PolicyKind | None = None
    self_experience: bool = False
    teaching: bool = False


LEVELS: dict[int, LevelSpec] = {
    spec.level: spec
    for spec in (
        LevelSpec(1, "game, goal and action descriptions only (zero-shot)"),
        LevelSpec(2, "L1 + whole trajectories of a random policy", fewshot_policy="random"),
        LevelSpec(3, "L1 + learning from the agent's own earlier episodes", self_experience=True),
        LevelSpec(4, "L1 + whole trajectories of an expert policy", fewshot_policy="expert"),
        LevelSpec(5, "L1 + hand-written expert teaching: guidance and two worked examples", teaching=True),
    )
}


def level_spec(level: object) -> LevelSpec:
    """The :class:`LevelSpec` for ``level``; a clear ``ValueError`` for anything else.

    >>> level_spec(5).teaching, level_spec(5).fewshot_policy
    (True, None)
    """
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        allowed = ", ".join(str(n) for n in LEVELS)
        raise ValueError(f"unknown level {level!r}: the level must be an int, one of {allowed}")
    return LEVELS[level]
