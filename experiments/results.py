"""Result files, written and read in one place: ``episodes.jsonl``, ``steps.jsonl``, agent states.

Files are the source of truth. Each finished episode appends its step lines to ``steps.jsonl`` and
then one line to ``episodes.jsonl`` (flushed and fsynced), so a killed run loses at most the episode in
progress. On restart the same run dir is read back: finished episodes are skipped, step lines of
unfinished ones are dropped, and each stream's agent state is restored from ``agent_state/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "EpisodeKey", "ResultsWriter", "load_episodes", "iter_jsonl", "EPISODE_FIELDS"]

SCHEMA_VERSION = 2  # 2: train_seed (PPO's training seed; null for language agents)
EPISODES_FILE = "episodes.jsonl"
STEPS_FILE = "steps.jsonl"
STATE_DIR = "agent_state"
EPISODE_FIELDS = (
    "schema_version", "kind", "env", "env_id", "level", "agent", "llm_model", "seed", "episode", "return", "steps",
    "terminated", "invalid_actions", "invalid_replies", "llm_calls", "cached_calls", "prompt_tokens",
    "completion_tokens", "cost_usd", "llm_latency_s", "wall_time_s", "env_steps_trained", "train_seed",
)


@dataclass(frozen=True)
class EpisodeKey:
    """What identifies an episode across reruns."""

    env: str
    level: int | None
    agent: str
    seed: int
    episode: int
    train_seed: int | None = None  # PPO runs with different training seeds are different episodes

    @classmethod
    def of(cls, row: dict[str, Any]) -> EpisodeKey:
        return cls(row["env"], row["level"], row["agent"], int(row["seed"]), int(row["episode"]),
                   row.get("train_seed"))

    @property
    def stream(self) -> str:
        """File-name-safe id of this episode's stream (all episodes of one seed)."""
        return f"{self.env}__L{self.level}__{self.agent}__s{self.seed}".replace("/", "_")


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (killed mid-write) is skipped."""
    if not path.exists():
        return
    with path.open() as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def load_episodes(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Every episode row under ``paths`` (run dirs, sweep dirs or ``episodes.jsonl`` files), deduplicated."""
    rows: dict[EpisodeKey, dict[str, Any]] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"no results at {path}")
        files = [path] if path.is_file() else sorted(path.rglob(EPISODES_FILE))
        for file in files:
            for row in iter_jsonl(file):
                rows.setdefault(EpisodeKey.of(row), row)
    return list(rows.values())


def _append(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("a") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class ResultsWriter:
    """Append-only writer for one run dir, with resume.

    Args:
        run_dir: the Hydra output dir (created if missing).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.episodes_path = self.run_dir / EPISODES_FILE
        self.steps_path = self.run_dir / STEPS_FILE
        self.done: set[EpisodeKey] = {EpisodeKey.of(row) for row in iter_jsonl(self.episodes_path)}
        self._drop_orphan_steps()

    def _drop_orphan_steps(self) -> None:
        """Steps of episodes that never finished are redone, so their old lines must go."""
        if not self.steps_path.exists():
            return
        rows = list(iter_jsonl(self.steps_path))
        kept = [row for row in rows if EpisodeKey.of(row) in self.done]
        if len(kept) != len(rows) or self.steps_path.stat().st_size and not rows:
            tmp = self.steps_path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept))
            tmp.replace(self.steps_path)

    def is_done(self, key: EpisodeKey) -> bool:
        return key in self.done

    def write_episode(self, row: dict[str, Any], steps: list[dict[str, Any]] = (),  # type: ignore[assignment]
                      agent_state: dict[str, Any] | None = None) -> None:
        """Record a finished episode: its steps, then its summary line, then the stream's agent state."""
        key = EpisodeKey.of(row)
        if key in self.done:
            return
        identity = {"env": key.env, "level": key.level, "agent": key.agent, "seed": key.seed, "episode": key.episode}
        if steps:
            _append(self.steps_path, ({**identity, **step} for step in steps))
        _append(self.episodes_path, [{"schema_version": SCHEMA_VERSION, **row}])
        self.done.add(key)
        if agent_state is not None:
            self.save_state(key, agent_state)

    def state_path(self, key: EpisodeKey) -> Path:
        return self.run_dir / STATE_DIR / f"{key.stream}.json"

    def save_state(self, key: EpisodeKey, state: dict[str, Any]) -> None:
        path = self.state_path(key)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"after_episode": key.episode, "state": state}, ensure_ascii=False))
        tmp.replace(path)

    def load_state(self, key: EpisodeKey) -> tuple[int, dict[str, Any]] | None:
        """``(last finished episode, state)`` of ``key``'s stream, if saved."""
        path = self.state_path(key)
        if not path.exists():
            return None
        payload = json.loads(path.read_text())
        return int(payload["after_episode"]), payload["state"]
