"""One progress display for a whole command, however many groups (env x level x agent) run at once.

``textgym-compare`` runs several groups concurrently in one event loop; a tqdm bar per group made bars
fight over the terminal. Instead every group reports into one :class:`RunProgress`: a single tqdm bar of
all episodes (done / total, rate, ETA) whose status line shows the groups still running with their counts,
LLM requests in flight, cache hits and retries, refreshed once a second while a client is attached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

__all__ = ["RunProgress"]

MAX_GROUPS_SHOWN = 3


@dataclass
class _Group:
    total: int
    done: int = 0
    failed: int = 0


class RunProgress:
    """Overall episode progress with per-group detail.

    Args:
        enabled: show anything at all (``progress=false`` turns it off).
        desc: the bar's label.

    Example:
        >>> progress = RunProgress(enabled=False)
        >>> progress.add_group("cartpole L1 naive", 4)
        >>> progress.episode_finished("cartpole L1 naive")
        >>> progress.summary()
        '1/4 episodes'
    """

    def __init__(self, enabled: bool = True, desc: str = "episodes") -> None:
        self.groups: dict[str, _Group] = {}
        self.client: Any | None = None  # an LLMClient whose counters the status line shows
        self._bar = tqdm(total=0, desc=desc, unit="ep", disable=not enabled, dynamic_ncols=True, mininterval=0.5)

    def add_group(self, name: str, episodes_to_do: int) -> None:
        """A group joins with the episodes it still has to play (finished ones from earlier runs don't count)."""
        self.groups[name] = _Group(episodes_to_do)
        self._bar.total = sum(group.total for group in self.groups.values())
        self._refresh_status()

    def episode_finished(self, name: str, failed: bool = False) -> None:
        group = self.groups[name]
        group.done += 1
        group.failed += int(failed)
        self._bar.update(1)
        self._refresh_status()

    def summary(self) -> str:
        done = sum(group.done for group in self.groups.values())
        failed = sum(group.failed for group in self.groups.values())
        total = sum(group.total for group in self.groups.values())
        return f"{done}/{total} episodes" + (f", {failed} failed" if failed else "")

    def _refresh_status(self) -> None:
        running = [f"{name} {g.done}/{g.total}" for name, g in self.groups.items() if 0 < g.total != g.done]
        parts = running[:MAX_GROUPS_SHOWN] + ([f"+{len(running) - MAX_GROUPS_SHOWN} more"]
                                              if len(running) > MAX_GROUPS_SHOWN else [])
        failed = sum(group.failed for group in self.groups.values())
        if failed:
            parts.append(f"{failed} failed")
        client = self.client
        if client is not None:  # a ChatModel; in_flight and retries are LLMClient's, a custom backend may lack them
            if hasattr(client, "in_flight"):
                parts.append(f"in flight {client.in_flight}")
            parts.append(f"cache hits {client.usage.cached_calls}")
            retries = sum(getattr(client, "retries", {}).values())
            if retries:
                parts.append(f"retries {retries}")
        self._bar.set_postfix_str(" | ".join(parts), refresh=False)
        self._bar.refresh()

    @contextlib.asynccontextmanager
    async def watching(self, client: Any | None, interval_s: float = 1.0) -> AsyncIterator[RunProgress]:
        """Show ``client``'s requests in flight, cache hits and retries, refreshed every ``interval_s``."""
        self.client = client

        async def tick() -> None:
            while True:
                await asyncio.sleep(interval_s)
                self._refresh_status()

        ticker = asyncio.create_task(tick()) if client is not None and not self._bar.disable else None
        try:
            yield self
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            self._refresh_status()

    def close(self) -> None:
        self._bar.close()
