"""Content-addressed response cache on disk (SQLite).

The key covers only what changes the model's answer: model, base_url, messages, sampling parameters
and the response format; never timeouts, retries or concurrency. Several processes may share one file
(WAL mode); a write that loses a race simply keeps the first answer.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Literal

__all__ = ["ResponseCache", "CacheMode", "request_key"]

CacheMode = Literal["off", "read", "readwrite"]
CACHE_MODES: tuple[str, ...] = ("off", "read", "readwrite")


def request_key(request: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``request``."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseCache:
    """A SQLite table ``key -> response JSON``.

    Args:
        path: the database file (created with its folder).
        mode: ``"off"`` (never read or write), ``"read"`` (replay hits, store nothing new) or ``"readwrite"``.
        sampled: also serve sampled (temperature > 0) requests; their seed is in the key. Off by default: a
            sampled request is usually asked again to get another sample.

    Example:
        >>> import tempfile, os
        >>> cache = ResponseCache(os.path.join(tempfile.mkdtemp(), "c.sqlite"))
        >>> cache.put({"q": 1}, {"texts": ["a"]})
        >>> cache.get({"q": 1})
        {'texts': ['a']}
    """

    def __init__(self, path: str | Path, mode: CacheMode = "readwrite", sampled: bool = False) -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"unknown cache mode {mode!r}: expected one of {', '.join(CACHE_MODES)}")
        self.path = Path(path).expanduser()
        self.mode = mode
        self.sampled = sampled
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        if mode != "off":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT)")
            self._connection.commit()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its settings (a worker process opens its own connection)."""
        return (type(self), (self.path, self.mode, self.sampled))

    def get(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The stored response to ``request``, or ``None`` (off, or never stored)."""
        if self._connection is None:
            return None
        with self._lock:
            row = self._connection.execute("SELECT response FROM responses WHERE key = ?",
                                           (request_key(request),)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, request: dict[str, Any], response: dict[str, Any]) -> None:
        """Store ``response`` for ``request`` (in ``readwrite`` mode only)."""
        if self._connection is None or self.mode != "readwrite":
            return
        with self._lock:
            self._connection.execute("INSERT OR IGNORE INTO responses VALUES (?, ?)",
                                     (request_key(request), json.dumps(response)))
            self._connection.commit()

    def __len__(self) -> int:
        if self._connection is None:
            return 0
        with self._lock:
            return int(self._connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        """Close the database; the cache answers nothing after."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
