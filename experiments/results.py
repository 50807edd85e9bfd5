"""Result files, written and read in one place: ``episodes.jsonl``, ``steps.jsonl``, agent states.

Files are the source of truth. Each finished episode appends its step lines to ``steps.jsonl``, saves
the agent's state after it (``agent_state/<stream>/ep<k>.json``), then appends one line to
``episodes.jsonl`` (flushed and fsynced), so a killed run loses at most the episode in progress. On
restart the same run dir is read back: a torn last line is cut off, finished episodes are skipped, step
lines of unfinished ones are dropped, and each stream continues from the state saved after its last
finished episode. ``run_identity.json`` records the settings that change results; a run dir refuses to
resume under different ones, so old episodes are never mixed with new settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA_VERSION", "EpisodeKey", "ResultsWriter", "RunIdentityError", "load_episodes", "iter_jsonl",
           "EPISODE_FIELDS", "episode_row"]

SCHEMA_VERSION = 2  # 2: train_seed (PPO's training seed; null for language agents)
EPISODES_FILE = "episodes.jsonl"
STEPS_FILE = "steps.jsonl"
STATE_DIR = "agent_state"
IDENTITY_FILE = "run_identity.json"
EPISODE_FIELDS = (
    "schema_version", "kind", "env", "env_id", "level", "agent", "llm_model", "seed", "episode", "return", "steps",
    "terminated", "invalid_actions", "invalid_replies", "llm_calls", "cached_calls", "prompt_tokens",
    "completion_tokens", "cost_usd", "llm_latency_s", "wall_time_s", "env_steps_trained", "train_seed",
)
# What a contender without an LLM (random, PPO) or without training (language agents) leaves at rest.
EPISODE_DEFAULTS: dict[str, Any] = {
    "level": None, "llm_model": None, "invalid_actions": 0, "invalid_replies": 0, "llm_calls": 0, "cached_calls": 0,
    "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "llm_latency_s": 0.0, "env_steps_trained": None,
    "train_seed": None,
}


def episode_row(episode_return: float, **fields: Any) -> dict[str, Any]:
    """One ``episodes.jsonl`` row in schema order; every field not given takes its default.

    Raises:
        ValueError: a field outside the schema, or a required one missing.
    """
    row = {**EPISODE_DEFAULTS, **fields, "return": episode_return}
    expected = set(EPISODE_FIELDS) - {"schema_version"}
    if set(row) != expected:
        raise ValueError(f"episode row fields: unknown {sorted(set(row) - expected)}, "
                         f"missing {sorted(expected - set(row))}")
    return {name: row[name] for name in EPISODE_FIELDS if name in row}


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

    @classmethod
    def of(cls, row: dict[str, Any]) -> EpisodeKey:
        return cls(row["env"], row["level"], row["agent"], int(row["seed"]), int(row["episode"]),
                   row.get("train_seed"), row.get("llm_model"))

    @property
    def stream(self) -> str:
        """File-name-safe id of this episode's stream (all episodes of one seed)."""
        return f"{self.env}__L{self.level}__{self.agent}__s{self.seed}".replace("/", "_")

    @property
    def identity(self) -> dict[str, Any]:
        """The key as row fields (step lines carry it too)."""
        return {"env": self.env, "level": self.level, "agent": self.agent, "seed": self.seed,
                "episode": self.episode, "train_seed": self.train_seed, "llm_model": self.llm_model}


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


def _cut_torn_line(path: Path) -> None:
    """Drop a last line without its newline (a write killed midway), so the next append starts clean."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


class RunIdentityError(ValueError):
    """A run dir holds results made with other settings."""


class ResultsWriter:
    """Append-only writer for one run dir, with resume.

    Args:
        run_dir: the Hydra output dir (created if missing).
        identity: the settings that change results (model, agent, env kwargs, ...). Seeds may grow between
            runs; anything here may not.

    Raises:
        RunIdentityError: the run dir was made with a different ``identity``.
    """

    def __init__(self, run_dir: str | Path, identity: dict[str, Any] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.episodes_path = self.run_dir / EPISODES_FILE
        self.steps_path = self.run_dir / STEPS_FILE
        if identity is not None:
            self._check_identity(identity)
        _cut_torn_line(self.episodes_path)
        _cut_torn_line(self.steps_path)
        self.done: set[EpisodeKey] = {EpisodeKey.of(row) for row in iter_jsonl(self.episodes_path)}
        self._drop_orphan_steps()

    def _check_identity(self, identity: dict[str, Any]) -> None:
        path = self.run_dir / IDENTITY_FILE
        current = json.loads(json.dumps(identity, sort_keys=True, default=str))
        if path.exists():
            recorded = json.loads(path.read_text())
            if recorded != current:
                changed = sorted(k for k in {*recorded, *current} if recorded.get(k) != current.get(k))
                raise RunIdentityError(
                    f"{self.run_dir} holds results made with other settings ({', '.join(changed)} differ: "
                    f"{ {k: recorded.get(k) for k in changed} } -> { {k: current.get(k) for k in changed} }). "
                    f"Resume only with the same settings, or pass another results_dir."
                )
        else:
            path.write_text(json.dumps(current, indent=1, sort_keys=True))

    def _drop_orphan_steps(self) -> None:
        """Steps of episodes that never finished are redone, so their old lines must go."""
        if not self.steps_path.exists():
            return
        rows = list(iter_jsonl(self.steps_path))
        kept = [row for row in rows if EpisodeKey.of(row) in self.done]
        if len(kept) != len(rows):
            tmp = self.steps_path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept))
            tmp.replace(self.steps_path)

    def is_done(self, key: EpisodeKey) -> bool:
        return key in self.done

    def write_episode(self, row: dict[str, Any], steps: list[dict[str, Any]] = (),  # type: ignore[assignment]
                      agent_state: dict[str, Any] | None = None) -> None:
        """Record a finished episode: its steps, the agent's state after it, then its summary line."""
        key = EpisodeKey.of(row)
        if key in self.done:
            return
        if steps:
            _append(self.steps_path, ({**key.identity, **step} for step in steps))
        if agent_state is not None:
            self.save_state(key, agent_state)
        _append(self.episodes_path, [{"schema_version": SCHEMA_VERSION, **row}])
        self.done.add(key)

    def state_path(self, key: EpisodeKey) -> Path:
        return self.run_dir / STATE_DIR / key.stream / f"ep{key.episode}.json"

    def save_state(self, key: EpisodeKey, state: dict[str, Any]) -> None:
        path = self.state_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, ensure_ascii=False))
        tmp.replace(path)

    def load_state(self, key: EpisodeKey) -> dict[str, Any] | None:
        """The agent's state saved after episode ``key.episode``, if any."""
        path = self.state_path(key)
        return json.loads(path.read_text()) if path.exists() else None
