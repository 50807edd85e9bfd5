"""JSON-lines files, read and written in one place for every result file of a run dir.

Every result file (``episodes.jsonl``, ``steps.jsonl``, ``calls.jsonl``, ``texts.jsonl``) is append-only JSON
lines: a finished append is fsynced, so it survives a crash; a write killed midway leaves at most a torn last
line, which readers skip and writers cut before they append again.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["iter_jsonl", "append_jsonl", "json_line", "cut_torn_line", "keep_jsonl_rows", "run_files"]

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
    with path.open("ab") as handle:
        for row in rows:
            handle.write(json_line(row))
        handle.flush()
        os.fsync(handle.fileno())


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
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in kept))
        tmp.replace(path)


def run_files(run_dir: str | Path, name: str) -> list[Path]:
    """``run_dir/name`` and its shards' copies (``calls.jsonl``, ``calls.shard2of8.jsonl``, ...) that exist."""
    stem, _, extension = name.partition(".")
    pattern = re.compile(rf"{re.escape(stem)}(\.shard\d+of\d+)?\.{re.escape(extension)}")
    return sorted(path for path in Path(run_dir).glob(f"{stem}*.{extension}") if pattern.fullmatch(path.name))
