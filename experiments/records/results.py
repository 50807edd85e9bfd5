"""Result files, written and read in one place: ``episodes.jsonl``, ``steps.jsonl``, agent states.

Files are the source of truth. Each finished episode appends its step lines to ``steps.jsonl``, appends
the agent's state after it to its stream's ``agent_state/<stream>.jsonl``, then appends one line to
``episodes.jsonl`` (flushed and fsynced), so a killed run loses at most the episode in progress. On
restart the same run dir is read back: a torn last line is cut off, finished episodes are skipped, step
lines of unfinished ones are dropped, and each stream continues from the state saved after its last
finished episode. ``run_identity.json`` records the settings that change results; a run dir refuses to
resume under different ones, so old episodes are never mixed with new settings.

An episode that could not be finished (its LLM calls failed for good, the agent raised) is one
``episodes.jsonl`` row with ``status: "failed"``, ``error: "<type>: <message>"`` and ``return: null``
(plus the steps, tokens and dollars it got through); it has no step lines and no saved state. A failed
episode is never *done*: the next run retries it, and its later ``done`` row supersedes the failure (rows
are only appended; readers prefer the done row of a key). Rows of schema v2 read as ``status: "done"``.

A sharded run (``shard=2/8``, see :class:`Shard`) writes ``episodes.shard2of8.jsonl`` and
``steps.shard2of8.jsonl`` into the same run dir, so shards running at once never append to one file;
readers take every ``episodes*.jsonl`` of a run dir.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from experiments.records.jsonl import (
    GroupCommit,
    append_bytes,
    append_jsonl,
    cut_torn_line,
    iter_jsonl,
    json_line,
    keep_jsonl_rows,
    run_files,
)
from experiments.records.keys import EpisodeKey, Shard
from experiments.records.transcripts import CALLS_FILE, TEXTS_FILE, EpisodeCalls, TranscriptWriter, WrittenCalls

__all__ = ["SCHEMA_VERSION", "EpisodeKey", "ResultSink", "FinishedEpisode", "ResultsWriter", "RunIdentityError",
           "load_episodes", "iter_jsonl", "EPISODE_FIELDS", "episode_row", "error_text", "episode_files", "run_files",
           "append_jsonl", "cut_torn_line", "Shard", "DONE", "FAILED", "ENDED_BY_INVALID_REPLY"]

# 2: train_seed (PPO's training seed; null for language agents).
# 3: status ("done" | "failed") and error; notes (what the agent produced around the episode);
#    cached_prompt_tokens (prompt tokens the server served from its prefix cache).
# 4: obfuscation_seed (the obfuscated text variant the episode played, experiments/variants.py; null = plain).
SCHEMA_VERSION = 4
DONE, FAILED = "done", "failed"
# A row's notes["ended_by"] when an invalid reply ended the episode after its last env step (a rollout with
# invalid_action=terminate): the env itself did not end it.
ENDED_BY_INVALID_REPLY = "invalid_reply"
EPISODES_FILE = "episodes.jsonl"
STEPS_FILE = "steps.jsonl"
STATE_DIR = "agent_state"
IDENTITY_FILE = "run_identity.json"
EPISODE_FIELDS = (
    "schema_version", "kind", "env", "env_id", "level", "agent", "llm_model", "seed", "episode", "status", "return",
    "steps", "terminated", "invalid_actions", "invalid_replies", "llm_calls", "cached_calls", "prompt_tokens",
    "completion_tokens", "cached_prompt_tokens", "cost_usd", "llm_latency_s", "wall_time_s", "env_steps_trained",
    "train_seed", "obfuscation_seed", "error", "notes",
)
# What a contender without an LLM (random, PPO) or without training (language agents) leaves at rest.
EPISODE_DEFAULTS: dict[str, Any] = {
    "level": None, "llm_model": None, "status": DONE, "invalid_actions": 0, "invalid_replies": 0, "llm_calls": 0,
    "cached_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_prompt_tokens": 0, "cost_usd": 0.0,
    "llm_latency_s": 0.0, "env_steps_trained": None, "train_seed": None, "obfuscation_seed": None, "error": None,
    "notes": {},
}
ERROR_CHARS = 2_000  # a server may answer with a whole HTML page


def error_text(error: BaseException) -> str:
    """``"<type>: <message>"`` of an exception, on one line, as failed rows record it."""
    message = " ".join(str(error).split())
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 3] + "..."


def episode_row(episode_return: float | None, **fields: Any) -> dict[str, Any]:
    """One ``episodes.jsonl`` row in schema order; every field not given takes its default.

    A failed episode has ``status="failed"``, an ``error`` and ``episode_return=None``.

    Raises:
        ValueError: a field outside the schema, a required one missing, or a status that contradicts the row.
    """
    row = {**EPISODE_DEFAULTS, "notes": {}, **fields, "return": episode_return}
    if row["status"] not in (DONE, FAILED):
        raise ValueError(f"episode status must be {DONE!r} or {FAILED!r}, actually {row['status']!r}")
    if (row["status"] == FAILED) != (row["error"] is not None) or (row["status"] == DONE) == (episode_return is None):
        raise ValueError(f"a {row['status']} episode row needs {'an error and no' if row['status'] == FAILED else 'a'}"
                         f" return: got error={row['error']!r}, return={episode_return!r}")
    expected = set(EPISODE_FIELDS) - {"schema_version"}
    if set(row) != expected:
        raise ValueError(f"episode row fields: unknown {sorted(set(row) - expected)}, "
                         f"missing {sorted(expected - set(row))}")
    return {name: row[name] for name in EPISODE_FIELDS if name in row}


_EPISODE_FILE_NAME = re.compile(r"episodes(\.shard\d+of\d+)?\.jsonl")


def episode_files(path: Path, recursive: bool = True) -> list[Path]:
    """The ``episodes.jsonl`` and per-shard ``episodes.shard<i>of<n>.jsonl`` files in (or under) ``path``."""
    if path.is_file():
        return [path]
    found = path.rglob("episodes*.jsonl") if recursive else path.glob("episodes*.jsonl")
    return sorted(p for p in found if _EPISODE_FILE_NAME.fullmatch(p.name))


def _upgrade(row: dict[str, Any]) -> dict[str, Any]:
    """Rows written before schema v3 have no status: they were all finished episodes; before v4, all plain text."""
    for name in ("status", "error", "cached_prompt_tokens", "obfuscation_seed"):
        row.setdefault(name, EPISODE_DEFAULTS[name])
    row.setdefault("notes", {})
    return row


def load_episodes(paths: Iterable[str | Path], include_failed: bool = False) -> list[dict[str, Any]]:
    """Episode rows under ``paths`` (run dirs, sweep dirs or episodes files, shards included), one per key.

    A key's first ``done`` row wins. With ``include_failed``, keys that never finished also give their
    latest ``failed`` row (the reason it last failed); without it, only finished episodes are returned.
    """
    done: dict[EpisodeKey, dict[str, Any]] = {}
    failed: dict[EpisodeKey, dict[str, Any]] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"no results at {path}")
        for file in episode_files(path):
            for row in map(_upgrade, iter_jsonl(file)):
                key = EpisodeKey.of(row)
                if row["status"] == DONE:
                    done.setdefault(key, row)
                else:
                    failed[key] = row
    if include_failed:
        done.update({key: row for key, row in failed.items() if key not in done})
    return list(done.values())


class FinishedEpisode(NamedTuple):
    """A finished episode as a :class:`ResultSink` records it, and as a worker process sends it to the parent.

    Attributes:
        row: its ``episodes.jsonl`` row (``status: "done"``).
        steps: its ``steps.jsonl`` lines, without the key fields (the writer adds them).
        agent_state: the agent's state after it, or ``None`` for an agent without one.
        calls: its LLM calls: the records (``EpisodeCalls`` or dicts) or the lines built from them (``WrittenCalls``).
    """

    row: dict[str, Any]
    steps: list[dict[str, Any]]
    agent_state: dict[str, Any] | None
    calls: EpisodeCalls | WrittenCalls | Iterable[dict[str, Any]]


class ResultSink(Protocol):
    """Where a run's streams put their episodes: :class:`ResultsWriter` (the run dir) or a worker's forwarder.

    A new output format implements these four methods; the stream loop (``experiments/running/streams.py``) needs
    no more.
    """

    def is_done(self, key: EpisodeKey) -> bool:
        """Whether ``key`` finished already (in this run or an earlier one): it is skipped."""
        ...

    def load_state(self, key: EpisodeKey) -> dict[str, Any] | None:
        """The agent's state saved after episode ``key``, to resume its stream from; ``None`` if none."""
        ...

    def write_episode(self, row: dict[str, Any], steps: list[dict[str, Any]] = ...,
                      agent_state: dict[str, Any] | None = None,
                      calls: EpisodeCalls | WrittenCalls | Iterable[dict[str, Any]] = ...) -> None:
        """Record a finished episode (see :class:`FinishedEpisode` for the parts)."""
        ...

    def write_failure(self, row: dict[str, Any]) -> None:
        """Record an episode that could not finish (a ``status="failed"`` row with its error)."""
        ...

    def commit_episode(self, row: dict[str, Any], steps: list[dict[str, Any]] = ...,
                       agent_state: dict[str, Any] | None = None,
                       calls: EpisodeCalls | WrittenCalls | Iterable[dict[str, Any]] = ...) -> Awaitable[None]:
        """:meth:`write_episode` for a stream on an event loop: writes now, returns what to await until it is kept.

        The parts are taken (queued or sent) before this returns, so the caller may go on with the next episode at
        once; the awaitable ends once the episode is recorded for good, so a sink may share one disk flush among
        the episodes finished together.
        """
        ...


class RunIdentityError(ValueError):
    """A run dir holds results made with other settings."""


class ResultsWriter:
    """Append-only writer for one run dir (or one shard of it), with resume.

    Args:
        run_dir: the Hydra output dir (created if missing).
        identity: the settings that change results (model, agent, env kwargs, ...). Seeds may grow between
            runs; anything here may not. Shards of one run share it.
        shard: write this shard's own files (``episodes.shard<i>of<n>.jsonl``, ...); ``None``: the plain ones.

    Attributes:
        done: keys of finished episodes, read from every episodes file of the run dir (all shards).
        failed: keys that failed in an earlier run and never finished since, with their last error.

    Raises:
        RunIdentityError: the run dir was made with a different ``identity``.
    """

    def __init__(self, run_dir: str | Path, identity: dict[str, Any] | None = None,
                 shard: Shard | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.shard = shard
        self.episodes_path = self.shard_file(EPISODES_FILE)
        self.steps_path = self.shard_file(STEPS_FILE)
        if identity is not None:
            self._check_identity(identity)
        # Only this writer's own files are repaired: another shard may be appending to its files right now.
        cut_torn_line(self.episodes_path)
        cut_torn_line(self.steps_path)
        self.done: set[EpisodeKey] = set()
        self.failed: dict[EpisodeKey, str] = {}
        for file in episode_files(self.run_dir, recursive=False):
            for row in map(_upgrade, iter_jsonl(file)):
                if row["status"] == DONE:
                    self.done.add(EpisodeKey.of(row))
                else:
                    self.failed[EpisodeKey.of(row)] = row["error"]
        self.failed = {key: error for key, error in self.failed.items() if key not in self.done}
        # Steps of episodes that never finished are redone, so their old lines must go.
        keep_jsonl_rows(self.steps_path, lambda row: EpisodeKey.of(row) in self.done)
        self.transcripts = TranscriptWriter(self.shard_file(CALLS_FILE), self.shard_file(TEXTS_FILE), self.done)
        self._commits = GroupCommit()
        self._committing: set[EpisodeKey] = set()  # written by commit_episode, its episodes line not yet on disk
        self._state_files: dict[str, Path] = {}  # by stream: the state files checked for a torn line (see state_file)
        self._states_saved: dict[str, bytes] = {}  # by stream: the state this writer last appended, encoded

    def shard_file(self, name: str) -> Path:
        """``run_dir/name``, or this shard's own copy of it (``steps.jsonl`` -> ``steps.shard2of8.jsonl``)."""
        if self.shard is None:
            return self.run_dir / name
        stem, dot, extension = name.partition(".")
        return self.run_dir / f"{stem}{self.shard.suffix}{dot}{extension}"

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
        else:  # shards may start at once: write atomically, so none reads a half-written file
            tmp = path.with_name(f"{IDENTITY_FILE}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(current, indent=1, sort_keys=True))
            tmp.replace(path)

    def is_done(self, key: EpisodeKey) -> bool:
        """Whether ``key`` finished, in this run or an earlier one."""
        return key in self.done

    def write_episode(self, row: dict[str, Any], steps: list[dict[str, Any]] = (),  # type: ignore[assignment]  # empty, never mutated
                      agent_state: dict[str, Any] | None = None,
                      calls: EpisodeCalls | WrittenCalls | Iterable[dict[str, Any]] = ()) -> None:
        """Record a finished episode: its steps, LLM calls, the agent's state after it, then its summary line.

        The calls are the records or the lines built from them (``experiments/records/transcripts.py``).
        """
        key = self._check_new(row)
        if key is None:
            return
        appends, episode_line = self._episode_parts(key, row, steps, agent_state, calls)
        try:
            for path, data in appends:
                append_bytes(path, data)
            append_bytes(self.episodes_path, episode_line)
        except BaseException:
            self._forget_saved_state(key)
            raise
        self._mark_done(key)

    def commit_episode(self, row: dict[str, Any], steps: list[dict[str, Any]] = (),  # type: ignore[assignment]  # empty, never mutated
                       agent_state: dict[str, Any] | None = None,
                       calls: EpisodeCalls | WrittenCalls | Iterable[dict[str, Any]] = ()) -> Awaitable[None]:
        """:meth:`write_episode` with its disk work off the event loop and shared among episodes (group commit).

        The lines and the state are built now (the caller's agent may change from here on) and queued; the returned
        coroutine, awaited on this writer's one event loop, ends once the episode is on disk. The files get the same
        lines in the same order as :meth:`write_episode` would write, with the same crash safety: the steps, calls,
        texts and state are written and fsynced before the ``episodes.jsonl`` line is queued, and that line is
        fsynced before the coroutine ends. Episodes finishing while a round is written share the next round.
        """
        key = self._check_new(row)
        if key is None:
            return asyncio.sleep(0)
        appends, episode_line = self._episode_parts(key, row, steps, agent_state, calls)
        self._committing.add(key)
        return self._commit(key, self._commits.submit(appends), episode_line)

    def _episode_parts(self, key: EpisodeKey, row: dict[str, Any], steps: list[dict[str, Any]],
                       agent_state: dict[str, Any] | None,
                       calls: EpisodeCalls | WrittenCalls | Iterable[dict[str, Any]],
                       ) -> tuple[list[tuple[Path, bytes]], bytes]:
        """A finished episode's bytes, in writing order, for :meth:`write_episode` and :meth:`commit_episode`.

        The appends (steps, then texts and calls, then the agent's state), and last its ``episodes.jsonl`` line,
        which goes only once the rest is on disk.

        Raises:
            ValueError: a call record without messages or phase; nothing is built (or written) then.
        """
        appends = []
        if steps:
            appends.append((self.steps_path, b"".join(json_line({**key.identity, **step}) for step in steps)))
        appends += self.transcripts.episode_appends(key, calls)
        if agent_state is not None:
            line = _state_line(key, agent_state)
            state = line.partition(b",")[2]  # the line without its episode number
            # A state like the one saved after an earlier episode is not written again (load_state reads the last
            # line at or before an episode): agents that learn nothing at this level add no disk work per episode.
            if self._states_saved.get(key.stream) != state:
                appends.append((self._state_file_to_append(key), line))
                self._states_saved[key.stream] = state
        return appends, json_line({"schema_version": SCHEMA_VERSION, **row})

    async def _commit(self, key: EpisodeKey, parts_written: Awaitable[None], episode_line: bytes) -> None:
        try:
            await parts_written
            await self._commits.submit([(self.episodes_path, episode_line)])
        except BaseException:
            self._forget_saved_state(key)
            raise
        finally:
            self._committing.discard(key)
        self._mark_done(key)

    def _forget_saved_state(self, key: EpisodeKey) -> None:
        # The episode's parts may not be on disk: the stream's next state is written whatever it is.
        self._states_saved.pop(key.stream, None)

    def _mark_done(self, key: EpisodeKey) -> None:
        self.done.add(key)
        self.failed.pop(key, None)

    def _check_new(self, row: dict[str, Any]) -> EpisodeKey | None:
        """The key of a finished episode's ``row`` to write, or ``None`` if it is recorded (or being recorded)."""
        key = EpisodeKey.of(row)
        if key in self.done or key in self._committing:
            return None
        if row.get("status", DONE) != DONE:
            raise ValueError(f"write_episode records finished episodes; use write_failure for {key}")
        return key

    def write_failure(self, row: dict[str, Any]) -> None:
        """Record an episode that could not finish (a ``status="failed"`` row): no steps, no state."""
        key = EpisodeKey.of(row)
        if row.get("status") != FAILED or not row.get("error"):
            raise ValueError(f"write_failure needs a row with status={FAILED!r} and an error, got {row!r}")
        if key in self.done:
            return
        append_jsonl(self.episodes_path, [{"schema_version": SCHEMA_VERSION, **row}])
        self.failed[key] = row["error"]

    def _state_file_to_append(self, key: EpisodeKey) -> Path:
        """``key``'s stream state file, its folder made and a torn last line cut the first time this writer uses it.

        Only here: a stream is played by one writer (shard), and another shard may be appending to its own streams'
        files right now.
        """
        path = self._state_files.get(key.stream)
        if path is None:
            path = self._state_files[key.stream] = state_file(self.run_dir, key)
            path.parent.mkdir(exist_ok=True)
            cut_torn_line(path)
        return path

    def load_state(self, key: EpisodeKey) -> dict[str, Any] | None:
        """The agent's state saved after episode ``key.episode``, if any."""
        return load_state(self.run_dir, key)


def _state_line(key: EpisodeKey, state: dict[str, Any]) -> bytes:
    return json_line({"episode": key.episode, "state": state})


def state_file(run_dir: Path, key: EpisodeKey) -> Path:
    """The file in ``run_dir`` that keeps the agent's state after each episode of ``key``'s stream.

    A JSON line ``{"episode": k, "state": {...}}`` after each episode that changed the state (and after the first
    episode a writer records of the stream), appended with the episode's other lines (and fsynced with them, before
    its ``episodes.jsonl`` line). One file a stream, lines only for changes: a file an episode cost a new file (and
    inode) per episode, and a line an episode an fsync of every stream's file per group-commit round, a good part
    of a short episode's disk work.
    """
    return Path(run_dir) / STATE_DIR / f"{key.stream}.jsonl"


def load_state(run_dir: Path, key: EpisodeKey) -> dict[str, Any] | None:
    """The agent's state saved in ``run_dir`` after episode ``key.episode``, if any.

    That is the last line for the latest episode up to ``key.episode``: a state is written only when it changed, and
    lines of episodes after ``key.episode`` (written before a crash cut their episode short) are not its.
    """
    state, saved_after = None, -1
    for line in iter_jsonl(state_file(run_dir, key)):
        episode = line.get("episode")
        if isinstance(episode, int) and saved_after <= episode <= key.episode:
            state, saved_after = line["state"], episode
    if state is None:  # a run dir from before the per-stream files: one file an episode
        old = Path(run_dir) / STATE_DIR / key.stream / f"ep{key.episode}.json"
        state = json.loads(old.read_text()) if old.exists() else None
    return state
