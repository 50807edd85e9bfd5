"""What names a result: an episode's key across reruns, and a shard of a run."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["EpisodeKey", "Shard"]


@dataclass(frozen=True)
class EpisodeKey:
    """What identifies an episode across reruns."""

    env: str
    level: int | None
    agent: str
    seed: int
    episode: int
    train_seed: int | None = None  # PPO runs with different training seeds are different episodes
    llm_model: str | None = None  # the same agent on two models: two different episodes
    obfuscation_seed: int | None = None  # the obfuscated text variant (experiments/variants.py); None = plain

    @classmethod
    def of(cls, row: dict[str, Any]) -> EpisodeKey:
        """The key of a result row (an episode, step or call line)."""
        return cls(row["env"], row["level"], row["agent"], int(row["seed"]), int(row["episode"]),
                   row.get("train_seed"), row.get("llm_model"), row.get("obfuscation_seed"))

    @property
    def stream(self) -> str:
        """File-name-safe id of this episode's stream (all episodes of one seed)."""
        variant = "" if self.obfuscation_seed is None else f"__obf{self.obfuscation_seed}"
        return f"{self.env}__L{self.level}__{self.agent}__s{self.seed}{variant}".replace("/", "_")

    @property
    def identity(self) -> dict[str, Any]:
        """The key as row fields (step lines carry it too; ``obfuscation_seed`` only for an obfuscated variant)."""
        identity = {"env": self.env, "level": self.level, "agent": self.agent, "seed": self.seed,
                    "episode": self.episode, "train_seed": self.train_seed, "llm_model": self.llm_model}
        if self.obfuscation_seed is not None:
            identity["obfuscation_seed"] = self.obfuscation_seed
        return identity


@dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count`` of one evaluation (1-based): ``shard=2/8`` on the command line.

    Shard ``i/n`` runs the seeds at positions ``i-1, i-1+n, i-1+2n, ...`` of the ``seeds`` list, i.e.
    ``seeds[i-1::n]``: balanced whatever the seed values, and stable when seeds are appended to the list.
    Each shard writes its own ``episodes.shard<i>of<n>.jsonl`` and ``steps.shard<i>of<n>.jsonl``.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (isinstance(self.index, int) and isinstance(self.count, int) and 1 <= self.index <= self.count):
            raise ValueError(f"shard must be i/n with 1 <= i <= n (e.g. shard=2/8), got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: object) -> Shard | None:
        """``None``/``"null"`` -> no sharding; ``"2/8"`` -> ``Shard(2, 8)``.

        Raises:
            ValueError: anything else, naming the expected form.
        """
        if text is None or str(text).strip().lower() in ("", "null", "none"):
            return None
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if match is None:
            raise ValueError(f"shard must be i/n with 1 <= i <= n (e.g. shard=2/8) or null, got {text!r}")
        return cls(int(match[1]), int(match[2]))

    def select(self, seeds: Sequence[int]) -> list[int]:
        """This shard's seeds, in list order."""
        return list(seeds[self.index - 1 :: self.count])

    @property
    def suffix(self) -> str:
        """What this shard's file names carry: ``.shard2of8``."""
        return f".shard{self.index}of{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
