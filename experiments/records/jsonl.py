"""JSON-lines files, read and written in one place for every result file of a run dir.

Every result file (``episodes.jsonl``, ``steps.jsonl``, ``calls.jsonl``, ``texts.jsonl``) is append-only JSON
lines: a finished append is fsynced, so it survives a crash; a write killed midway leaves at most a torn last
line, which readers skip and writers cut before they append again. Many streams finishing episodes at once share
their fsyncs through a :class:`GroupCommit` (one fsync a file covers every line queued before its round).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["iter_jsonl", "append_jsonl", "append_bytes", "write_atomically", "json_line", "cut_torn_line",
           "keep_jsonl_rows", "run_files", "GroupCommit"]

# For what orjson does not write (an int beyond 64 bits, a key that is not a string); one encoder for all.
_LINE_ENCODER = json.JSONEncoder(ensure_ascii=False)


def json_line(row: dict[str, Any]) -> bytes:
    """``row`` as one UTF-8 JSON line, newline included.

    orjson because these lines (one per step and per LLM call) are built on the event loop and it takes a tenth
    of the standard encoder's time. It writes a NaN as null (standard JSON) where json.dumps wrote NaN.
    """
    try:
        return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (_LINE_ENCODER.encode(row) + "\n").encode("utf-8")


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file (none if it does not exist); a torn last line (killed mid-write) is skipped."""
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


def append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append ``rows`` as JSON lines (UTF-8), flushed and fsynced: a finished write survives a crash."""
    append_bytes(path, b"".join(map(json_line, rows)))


def append_bytes(path: Path, data: bytes) -> None:
    """Append ``data`` (whole JSON lines) to ``path``, flushed and fsynced."""
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (a reader sees the old file or the new one); makes its folder."""
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(data)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
    tmp.replace(path)


def _write_round(appends: list[tuple[Path, bytes]]) -> None:
    """One group-commit round: each file's appends in order, one fsync a file.

    Plain ``os`` calls on data made ready on the event loop: this runs in a thread, and every step of Python here
    takes the GIL back from the streams.
    """
    by_file: dict[Path, list[bytes]] = {}
    for path, data in appends:
        by_file.setdefault(path, []).append(data)
    for path, parts in by_file.items():
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            data = b"".join(parts)
            while data:  # a regular file takes all of it at once; a short write would be a full disk
                data = data[os.write(descriptor, data):]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class GroupCommit:
    """Group commit for the files of one writer on one event loop: one fsync a file covers many episodes.

    :meth:`submit` queues appends (whole JSON lines) and returns a future. A commit task
    writes everything queued so far in a thread (the event loop keeps serving the streams: no open, write or
    fsync on it), one append and one fsync per file in queue order, then resolves all those futures at once;
    what is queued meanwhile goes in the next round. So N episodes finishing within one round's time cost one
    fsync per file, not N each, and a future ends only once its lines are on disk. Lines reach the files in the
    order they were submitted, as if each had been appended on its own.

    Attributes:
        rounds: rounds written so far.
        submitted: :meth:`submit` calls answered so far.
    """

    def __init__(self) -> None:
        self._appends: list[tuple[Path, bytes]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._committer: asyncio.Task[None] | None = None
        self.rounds = 0
        self.submitted = 0

    def submit(self, appends: Iterable[tuple[Path, bytes]]) -> asyncio.Future[None]:
        """Queue ``(file, data)`` appends; the future ends once they are written and fsynced.

        The future raises the ``OSError`` of a failed write (a full or broken disk). Call it on the event loop.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._appends.extend(appends)
        self._waiters.append(waiter)
        if self._committer is None or self._committer.done():
            self._committer = loop.create_task(self._commit())
        return waiter

    async def _commit(self) -> None:
        while self._waiters:
            waiters, self._waiters = self._waiters, []
            appends, self._appends = self._appends, []
            try:
                await asyncio.to_thread(_write_round, appends)
            except Exception as error:  # noqa: BLE001 - handed to every waiter of this round, which raise it
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
                continue
            except BaseException:  # cancelled (the loop is going down): nobody of this round was written for sure
                for waiter in waiters + self._waiters:
                    waiter.cancel()
                raise
            self.rounds += 1
            self.submitted += len(waiters)
            for waiter in waiters:
                if not waiter.done():  # a waiter cancelled meanwhile has no one to wake
                    waiter.set_result(None)


def cut_torn_line(path: Path) -> None:
    """Drop a last line without its newline (a write killed midway), so the next append starts clean."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        with path.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def keep_jsonl_rows(path: Path, keep: Callable[[dict[str, Any]], bool]) -> None:
    """Rewrite ``path`` with only the rows ``keep`` accepts (atomically); untouched when it keeps them all."""
    if not path.exists():
        return
    rows = list(iter_jsonl(path))
    kept = [row for row in rows if keep(row)]
    if len(kept) != len(rows):
        write_atomically(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept).encode("utf-8"))


def run_files(run_dir: str | Path, name: str) -> list[Path]:
    """``run_dir/name`` and its shards' copies (``calls.jsonl``, ``calls.shard2of8.jsonl``, ...) that exist."""
    stem, _, extension = name.partition(".")
    pattern = re.compile(rf"{re.escape(stem)}(\.shard\d+of\d+)?\.{re.escape(extension)}")
    return sorted(path for path in Path(run_dir).glob(f"{stem}*.{extension}") if pattern.fullmatch(path.name))
