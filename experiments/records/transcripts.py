"""Transcripts: every LLM call of a run, in the run dir, written and read in one place.

Two files sit beside ``episodes.jsonl``:

- ``calls.jsonl``: one line per call record (one HTTP request, or one response-cache hit) with the episode
  identity (env, level, agent, seed, episode, train_seed, llm_model), ``call`` (its index in the episode),
  ``phase`` (``"reset"``: before the first step, ``"step"``, ``"end"``: after the last step), ``step`` (the index
  of the step it decided, or null), ``purpose`` (``action``, ``suggestion``, ``summary``, ``insight``,
  ``reflection``, ...), ``request`` (model, sampling parameters, ``messages: [{"role", "sha256"}]`` and
  ``response_format_sha256``), every returned text, ``usage`` (prompt, completion and cached prompt tokens),
  ``latency_s`` and ``from_cache``. An agent's requests repeat the episode's earlier turns, so an item of
  ``messages`` may instead be ``{"previous": [start, stop]}``: the messages ``start:stop`` of the episode's call
  before (on 200-step MountainCar episodes a call line then names about 4 items instead of 21).
- ``texts.jsonl``: each message text (and each response format, as canonical JSON) once per run dir, addressed by
  the sha256 of its UTF-8 bytes, so a long system prompt repeated on every step is stored once. A text is a line
  ``{"sha256", "text"}``; a long multi-line text (at least ``LINE_SPLIT_MIN_CHARS``) is instead
  ``{"sha256", "lines": [ref, ...]}``, its lines joined with newlines, each line a text of its own and ``ref`` the
  first ``LINE_REF_CHARS`` hex digits of that line's sha256, so long texts that differ in a few lines (a system
  prompt as the L3 memory grows) share the rest. On 200-step MountainCar episodes a step costs about 1.6 KB of
  transcript in all, at L1 and L5 alike. Line texts come before the texts made of them.

A shard of a run (see :class:`~experiments.records.results.Shard`) writes its own ``calls.shard<i>of<n>.jsonl`` and
``texts.shard<i>of<n>.jsonl``, so shards running at once never append to one file; readers take them all.

Crash safety follows the other result files: a finished episode's new texts are appended and fsynced first,
then its call lines, all before its ``episodes.jsonl`` line. On resume a torn last line is cut and the call lines
of episodes that never finished are dropped with them. Texts only they referenced may stay in ``texts.jsonl``:
nothing reads a text without a call pointing at it, and the rerun episode mostly reuses them.

Read with :func:`load_calls` (one episode) or :class:`Transcript` (many, sharing one text table); both return
calls with the message texts and response format resolved, so no caller needs to know this layout.
"""

from __future__ import annotations

import collections
import copy
import functools
import hashlib
import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from experiments.records.jsonl import append_bytes, cut_torn_line, iter_jsonl, json_line, keep_jsonl_rows, run_files
from experiments.records.keys import EpisodeKey

__all__ = ["CALLS_FILE", "TEXTS_FILE", "PHASES", "EpisodeCalls", "WrittenCalls", "TranscriptWriter", "Transcript",
           "load_calls", "tag_calls", "text_sha256"]

CALLS_FILE = "calls.jsonl"
TEXTS_FILE = "texts.jsonl"
TRANSCRIPT_SCHEMA_VERSION = 2  # 2: messages may name a run of the previous call's
PHASES = ("reset", "step", "end")
LINE_SPLIT_MIN_CHARS = 256  # shorter texts are stored whole: their line references would cost as much
LINE_REF_CHARS = 16  # 64 bits of a line's sha256: a clash is detected on write (the text is then stored whole)
FORMATS_REMEMBERED = 4  # reply schemas compared before one is encoded (most agents use one or two)
ADDRESSES_REMEMBERED = 512  # texts whose sha256 a process keeps: the system prompts and turns episodes repeat
IDENTITY_FIELDS = ("env", "level", "agent", "seed", "episode", "train_seed", "llm_model")
# Request fields that could carry credentials in a hand-made or third-party record: never written.
SECRET_FIELDS = frozenset({"api_key", "authorization", "headers", "extra_headers", "default_headers"})


def text_sha256(text: str) -> str:
    """The content address of ``text`` (hex sha256 of its UTF-8 bytes)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Across episodes: every episode of a stream sends the same system prompt (kilobytes), and a short episode's calls
# are few, so hashing it anew each episode was a good part of building an episode's transcript lines.
_remembered_sha256 = functools.lru_cache(maxsize=ADDRESSES_REMEMBERED)(text_sha256)
# (reply schema, its sha256, its canonical text), newest first
_known_formats: collections.deque[tuple[Any, str, str]] = collections.deque(maxlen=FORMATS_REMEMBERED)


_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def tag_calls(records: Iterable[dict[str, Any]], phase: str, step: int | None = None) -> list[dict[str, Any]]:
    """Call records (as ``Agent.take_calls()`` returns them) marked with the episode ``phase`` and ``step``.

    Raises:
        ValueError: an unknown phase, or a step index outside the ``"step"`` phase.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, actually {phase!r}")
    if (step is None) != (phase != "step"):
        raise ValueError(f"a step index belongs to phase 'step' only, actually phase={phase!r}, step={step!r}")
    return [{**record, "phase": phase, "step": step} for record in records]


def _bad_record(record: Any) -> ValueError:
    """The error for a call record without a phase or without request.messages of {'role': str, 'content': str}."""
    request = record.get("request") if isinstance(record, dict) else record
    messages = request.get("messages") if isinstance(request, dict) else None
    if not (isinstance(messages, list) and all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                               and isinstance(m.get("content"), str) for m in messages)):
        return ValueError("a call record needs request.messages as a list of {'role': str, 'content': str}, "
                          f"actually {str(request)[:200]}")
    return ValueError(f"a call record needs a phase in {PHASES} (see tag_calls), actually {record.get('phase')!r}")


class TranscriptWriter:
    """Appends finished episodes' calls to one run dir (or shard); drops the calls of unfinished ones on start.

    :class:`~experiments.records.results.ResultsWriter` owns one and calls it from ``write_episode``.

    Args:
        calls_path: this writer's ``calls.jsonl`` (or its shard's copy).
        texts_path: this writer's ``texts.jsonl`` (or its shard's copy); only texts found here are reused,
            since another shard's file may still be growing or be repaired by its own writer.
        finished: the episodes whose ``episodes.jsonl`` line exists; call lines of any other episode are
            left over from a killed run and are dropped, as their step lines are.
    """

    def __init__(self, calls_path: str | Path, texts_path: str | Path, finished: Collection[EpisodeKey]) -> None:
        self.calls_path = Path(calls_path)
        self.texts_path = Path(texts_path)
        cut_torn_line(self.texts_path)
        cut_torn_line(self.calls_path)
        self._known: set[str] = set()
        # Reference -> sha256 of the first whole text in this file that has it, as a reader resolves them.
        self._line_refs: dict[str, str] = {}
        for entry in iter_jsonl(self.texts_path):
            self._known.add(entry["sha256"])
            if "text" in entry:
                self._line_refs.setdefault(entry["sha256"][:LINE_REF_CHARS], entry["sha256"])
        keep_jsonl_rows(self.calls_path, lambda row: EpisodeKey.of(row) in finished)

    def write_episode(self, key: EpisodeKey, calls: EpisodeCalls | WrittenCalls | Iterable[dict[str, Any]]) -> None:
        """Record the calls of the finished episode ``key``, in order (each tagged by :func:`tag_calls`).

        ``calls``: an :class:`EpisodeCalls` that took them as they came, the :class:`WrittenCalls` it built, or the
        records.

        Raises:
            ValueError: a record without messages or phase; nothing is written then.
        """
        for path, data in self.episode_appends(key, calls):
            append_bytes(path, data)

    def episode_appends(self, key: EpisodeKey,
                        calls: EpisodeCalls | WrittenCalls | Iterable[dict[str, Any]]) -> list[tuple[Path, bytes]]:
        """What recording ``key``'s calls appends, as ``(file, lines)`` in writing order; the texts count as stored.

        For a caller that writes them itself (``ResultsWriter.commit_episode``, in its group commit): it must write
        them all, in this order, before it writes anything else through this writer.

        Raises:
            ValueError: a record without messages or phase; nothing is counted then.
        """
        episode = calls if isinstance(calls, (EpisodeCalls, WrittenCalls)) else EpisodeCalls(calls)
        if not episode.lines:
            return []
        new_texts: dict[str, dict[str, Any]] = {}
        for sha, text in episode.texts.items():
            if sha not in self._known and sha not in new_texts:
                self._store(text, sha, new_texts)
        appends = []
        # Texts first: a call line never points at a text that is not on disk.
        if new_texts:
            appends.append((self.texts_path, b"".join(json_line({"sha256": sha, **entry})
                                                      for sha, entry in new_texts.items())))
            self._known.update(new_texts)
        head = {"schema_version": TRANSCRIPT_SCHEMA_VERSION, **key.identity}
        appends.append((self.calls_path, b"".join(json_line({**head, **line}) for line in episode.lines)))
        return appends

    def _store(self, text: str, sha: str, new_texts: dict[str, dict[str, Any]]) -> None:
        """Add the new ``text`` to ``new_texts``: whole, or as references to its lines when it is long."""
        lines = text.split("\n")
        refs = []
        if len(text) >= LINE_SPLIT_MIN_CHARS and len(lines) > 1:
            for line in lines:
                line_sha = self._whole(line, new_texts)
                if self._line_refs[line_sha[:LINE_REF_CHARS]] != line_sha:
                    break  # two texts share this reference: keep the text whole
                refs.append(line_sha[:LINE_REF_CHARS])
        if len(refs) == len(lines):
            new_texts[sha] = {"lines": refs}
        else:
            self._whole(text, new_texts, sha)

    def _whole(self, text: str, new_texts: dict[str, dict[str, Any]], sha: str | None = None) -> str:
        sha = sha or text_sha256(text)
        if sha not in self._known and sha not in new_texts:
            new_texts[sha] = {"text": text}
            self._line_refs.setdefault(sha[:LINE_REF_CHARS], sha)  # registered in file order, as readers do
        return sha


@dataclass(frozen=True)
class WrittenCalls:
    """What :class:`EpisodeCalls` built for the transcript files, without the records it built them from.

    What a worker process sends the run's one writer (the lines are ready, so the writer does not build them again).
    """

    lines: list[dict[str, Any]]  # without the schema version and the episode identity
    texts: dict[str, str]  # sha256 -> text, in the order the lines first name them


class EpisodeCalls:
    """One episode's call records, turned into transcript lines as they come (:meth:`add`).

    So writing the finished episode (:meth:`TranscriptWriter.write_episode`) only stores what is new. Iterating
    gives the records.

    Each message is checked, hashed and keyed once: by its dict (the same dict in several calls of an episode is
    one message, unless its content was replaced) and by its text. A call's messages that repeat a run of the
    previous call's become ``{"previous": [start, stop]}``.
    """

    def __init__(self, records: Iterable[dict[str, Any]] = ()) -> None:
        self.records: list[dict[str, Any]] = []
        self.lines: list[dict[str, Any]] = []  # without the schema version and the episode identity
        self.texts: dict[str, str] = {}  # sha256 -> text, in the order the lines first name them
        self._addresses: dict[str, str] = {}  # text -> sha256
        self._keys_of: dict[int, tuple[str, str, str]] = {}  # id of a message dict -> (content, role, sha256)
        self._previous = _MessageKeys([])
        self.add(records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def written(self) -> WrittenCalls:
        """The lines and texts so far, as the transcript files take them."""
        return WrittenCalls(self.lines, self.texts)

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        """Take the next calls of the episode, in order.

        Raises:
            ValueError: a record without messages or phase; none of ``records`` is taken then.
        """
        records = list(records)
        keys_of = self._keys_of
        keyed_anew: dict[int, tuple[str, str, str]] = {}  # message dicts of these records not keyed before
        taken = []  # per record: its messages' (role, sha256) keys and the texts it names first
        for record in records:
            keys, texts = [], []
            try:
                if record["phase"] not in PHASES:
                    raise TypeError
                for m in record["request"]["messages"]:
                    content, role = m["content"], m["role"]
                    known = keys_of.get(id(m)) or keyed_anew.get(id(m))
                    # The records hold their dicts, so an id names one dict; a content replaced in place is new.
                    # Only a dict not keyed before is checked: the others were, with this content.
                    if known is None or known[0] is not content or known[1] != role:
                        if not (isinstance(content, str) and isinstance(role, str)):
                            raise TypeError
                        known = keyed_anew[id(m)] = (content, role, self._address(content))
                        texts.append(known)
                    keys.append(known[1:])
            except (TypeError, KeyError, IndexError):
                raise _bad_record(record) from None
            taken.append((keys, texts))
        keys_of.update(keyed_anew)  # all records are valid: now they are taken
        for record, (keys, texts) in zip(records, taken, strict=True):
            for content, _, sha in texts:
                self.texts.setdefault(sha, content)
            compact, self._previous = self._previous.compact(keys)
            self.lines.append(self._line(record, compact))
            self.records.append(record)

    def _address(self, text: str) -> str:
        sha = self._addresses.get(text)  # an episode's calls repeat its turns: each is looked up once
        if sha is None:
            sha = self._addresses[text] = _remembered_sha256(text)
        return sha

    def _format_address(self, response_format: Any) -> str:
        # Calls share a few reply schemas, in an episode and across a run's episodes: comparing one is cheaper than
        # encoding it on every call.
        for known, sha, text in _known_formats:
            if known == response_format:
                self.texts.setdefault(sha, text)
                return sha
        text = _canonical_json(response_format)
        sha = self._address(text)
        self.texts.setdefault(sha, text)
        # A copy: a caller that changes its dict in place later must not match the old one. A schema is JSON
        # (it was sent as such), and an orjson round trip copies it in a hundredth of deepcopy's time.
        try:
            snapshot = orjson.loads(orjson.dumps(response_format))
        except TypeError:
            snapshot = copy.deepcopy(response_format)
        _known_formats.appendleft((snapshot, sha, text))
        return sha

    def _line(self, record: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
        request = {name: value for name, value in record["request"].items() if name.lower() not in SECRET_FIELDS}
        del request["messages"]  # given as ``messages``: addressed and compacted
        response_format = request.pop("response_format", None)
        request["messages"] = messages
        request["response_format_sha256"] = None if response_format is None else self._format_address(
            response_format)
        return {
            "call": len(self.lines), "phase": record["phase"],
            "step": record.get("step"), "purpose": record.get("purpose"), "request": request,
            "texts": list(record.get("texts", [])), "usage": dict(record.get("usage", {})),
            "latency_s": record.get("latency_s"), "from_cache": bool(record.get("from_cache", False)),
        }


class Transcript:
    """Reader of one run dir's transcripts; loads the text table once and resolves calls against it.

    Args:
        run_dir: a run dir holding ``calls.jsonl`` and ``texts.jsonl`` (a run dir without them has no calls).

    Example:
        >>> import tempfile
        >>> Transcript(tempfile.mkdtemp()).episodes()
        []
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    @functools.cached_property
    def _text_tables(self) -> tuple[dict[str, str], dict[str, list[str]]]:
        # Read on first use: what needs no texts (the calls' usage) costs only the calls files.
        texts: dict[str, str] = {}
        line_texts: dict[str, list[str]] = {}
        for path in run_files(self.run_dir, TEXTS_FILE):
            refs: dict[str, str] = {}  # a file's references name texts of that file (shards are apart)
            for entry in iter_jsonl(path):
                sha = entry["sha256"]
                if "text" in entry:
                    texts.setdefault(sha, entry["text"])
                    refs.setdefault(sha[:LINE_REF_CHARS], sha)
                else:
                    line_texts.setdefault(sha, [refs.get(ref, f"missing line {ref}") for ref in entry["lines"]])
        return texts, line_texts

    @property
    def texts(self) -> dict[str, str]:
        """Whole texts by sha256 (short texts, and the lines of long ones)."""
        return self._text_tables[0]

    @property
    def line_texts(self) -> dict[str, list[str]]:
        """Long texts by sha256, as the sha256s of their lines (join their texts with newlines)."""
        return self._text_tables[1]

    def text(self, sha: str) -> str:
        """The text stored under ``sha`` (a long one put back together from its lines).

        Raises:
            KeyError: no such text in the run dir's texts files.
        """
        if sha in self.texts:
            return self.texts[sha]
        return "\n".join(self.texts[line] for line in self.line_texts[sha])

    def usages(self) -> Iterator[tuple[EpisodeKey, dict[str, Any]]]:
        """Each stored call's episode and ``usage`` (tokens as the server reported them), in file order.

        Cheap: neither texts nor messages are read back.
        """
        for path in run_files(self.run_dir, CALLS_FILE):
            for line in iter_jsonl(path):
                yield EpisodeKey.of(line), line.get("usage") or {}

    def raw_calls(self) -> Iterator[dict[str, Any]]:
        """Call lines as stored, file by file (shards in name order).

        Each message is ``{"role", "sha256"}`` (runs named from the previous call put back).
        """
        for path in run_files(self.run_dir, CALLS_FILE):
            previous: dict[EpisodeKey, list[dict[str, str]]] = {}  # an episode's calls are in one file, in order
            for line in iter_jsonl(path):
                key = EpisodeKey.of(line)
                messages = _expand(line["request"]["messages"], previous.get(key, []) if line["call"] else [])
                previous[key] = messages
                yield {**line, "request": {**line["request"], "messages": messages}}

    def resolve(self, line: dict[str, Any]) -> dict[str, Any]:
        """A stored call line with its message texts and response format put back in place.

        Raises:
            KeyError: the line names a text that ``texts.jsonl`` lacks (a damaged run dir).
        """
        request = dict(line["request"])
        try:
            request["messages"] = [{"role": m["role"], "content": self.text(m["sha256"])} for m in request["messages"]]
            sha = request.pop("response_format_sha256", None)
            request["response_format"] = None if sha is None else json.loads(self.text(sha))
        except KeyError as missing:
            raise KeyError(f"{self.run_dir}'s texts files lack text {missing} named by a call of "
                           f"{EpisodeKey.of(line)}") from None
        return {**line, "request": request}

    def episodes(self) -> list[EpisodeKey]:
        """The episodes that have calls, in file order."""
        return list(dict.fromkeys(EpisodeKey.of(line) for line in self.raw_calls()))

    def calls_by_episode(self) -> dict[EpisodeKey, list[dict[str, Any]]]:
        """Every episode's resolved calls in order (one pass over the file)."""
        grouped: dict[EpisodeKey, list[dict[str, Any]]] = {}
        for line in self.raw_calls():
            grouped.setdefault(EpisodeKey.of(line), []).append(self.resolve(line))
        for calls in grouped.values():
            calls.sort(key=lambda call: call["call"])
        return grouped

    def calls(self, seed: int, episode: int, **key: Any) -> list[dict[str, Any]]:
        """The resolved calls of one episode, in order. See :func:`load_calls`."""
        unknown = set(key) - set(IDENTITY_FIELDS)
        if unknown:
            raise ValueError(f"unknown episode fields {sorted(unknown)}: expected some of {list(IDENTITY_FIELDS)}")
        wanted = {"seed": seed, "episode": episode, **key}
        lines = [line for line in self.raw_calls() if all(line.get(k) == v for k, v in wanted.items())]
        matching = list(dict.fromkeys(EpisodeKey.of(line) for line in lines))
        if len(matching) > 1:
            raise ValueError(f"{len(matching)} episodes in {self.run_dir} match {wanted}; narrow it down with "
                             f"env=, level=, agent=, train_seed= or llm_model=: {matching}")
        return [self.resolve(line) for line in sorted(lines, key=lambda line: line["call"])]


class _MessageKeys:
    """A call's messages as (role, sha256) keys, with where each key occurs.

    Used as the previous call of the next one, to compact it (:meth:`compact`).
    """

    __slots__ = ("keys", "positions")

    def __init__(self, keys: list[tuple[str, str]], positions: dict[tuple[str, str], list[int]] | None = None,
                 start: int = 0) -> None:
        """``positions`` holds those of ``keys[:start]`` (taken over, not copied)."""
        self.keys = keys
        self.positions = {} if positions is None else positions
        for position in range(start, len(keys)):
            self.positions.setdefault(keys[position], []).append(position)

    def compact(self, keys: list[tuple[str, str]]) -> tuple[list[dict[str, Any]], _MessageKeys]:
        """The next call's messages (``keys``) compacted against this call's, and the next call's own keys.

        Messages are ``{"role", "sha256"}``, with each run of two or more that this call also sent (in the same
        order) replaced by ``{"previous": [start, stop]}``, its place here (the longest run wins where a message
        occurs twice). This object is spent.
        """
        previous_keys, positions = self.keys, self.positions
        compact: list[dict[str, Any]] = []
        i = 0
        grew = len(previous_keys) >= 2 and keys[:len(previous_keys)] == previous_keys
        if grew:  # a conversation that grew by its new turns: the run from 0 is the longest one at 0
            compact.append({"previous": [0, len(previous_keys)]})
            i = len(previous_keys)
        while i < len(keys):
            start, length = 0, 0
            for j in positions.get(keys[i], ()):
                run = 1
                while i + run < len(keys) and j + run < len(previous_keys) and keys[i + run] == previous_keys[j + run]:
                    run += 1
                if run > length:
                    start, length = j, run
            if length >= 2:
                compact.append({"previous": [start, start + length]})
                i += length
            else:
                compact.append({"role": keys[i][0], "sha256": keys[i][1]})
                i += 1
        # Grown: the shared start's positions are the same, so they are taken over rather than rebuilt.
        return compact, (_MessageKeys(keys, positions, len(previous_keys)) if grew else _MessageKeys(keys))


def _expand(messages: list[dict[str, Any]], previous: list[dict[str, str]]) -> list[dict[str, str]]:
    expanded: list[dict[str, str]] = []
    for item in messages:
        if "previous" in item:
            start, stop = item["previous"]
            if stop > len(previous):
                raise KeyError(f"a call names messages {start}:{stop} of a previous call that has {len(previous)}")
            expanded += previous[start:stop]
        else:
            expanded.append(item)
    return expanded


def load_calls(run_dir: str | Path, seed: int, episode: int, **key: Any) -> list[dict[str, Any]]:
    """The LLM calls of episode ``episode`` of stream ``seed`` in ``run_dir``, in the order they were made.

    Each call is a dict with the episode identity, ``call``, ``phase``, ``step``, ``purpose``, ``request``
    (``messages`` as ``[{"role", "content"}]``, ``response_format`` as sent), ``texts``, ``usage``,
    ``latency_s`` and ``from_cache``. An episode without calls (or not in the run dir) gives ``[]``.

    Args:
        run_dir: the run dir.
        seed: the stream's seed.
        episode: the episode index in the stream.
        **key: more of the episode identity (``env``, ``level``, ``agent``, ``train_seed``, ``llm_model``),
            needed only when several episodes of the run dir share ``seed`` and ``episode``.

    Raises:
        ValueError: an unknown identity field, or several episodes match.
    """
    return Transcript(run_dir).calls(seed, episode, **key)
