"""One progress display for a whole command, however many groups (env x level x agent) run at once.

``textgym-compare`` runs several groups concurrently in one event loop; a tqdm bar per group made bars
fight over the terminal. Instead every group reports into one :class:`RunProgress`: a single tqdm bar of
all episodes (done / total, rate, ETA) whose status line shows the groups still running with their counts,
LLM requests in flight, cache hits and retries, refreshed once a second while a client is attached.

Where the display's stream is not a terminal (a log file, a pipe, CI), redraws would pile up as carriage returns
(226 KB of them in one logged ``textgym-compare``): there it prints one line per finished episode instead, and a
summary line (counts, rate, time left, the client's counters) every ``summary_every_s`` and at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["RunProgress", "is_terminal"]

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
        file: where to show it (default: stderr, as tqdm does). Not a terminal: lines instead of a bar.
        summary_every_s: in lines mode, the seconds between summary lines.

    Example:
        >>> progress = RunProgress(enabled=False)
        >>> progress.add_group("cartpole L1 naive", 4)
        >>> progress.episode_finished("cartpole L1 naive")
        >>> progress.summary()
        '1/4 episodes'
    """

    def __init__(self, enabled: bool = True, desc: str = "episodes", file: TextIO | None = None,
                 summary_every_s: float = 60.0) -> None:
        self.groups: dict[str, _Group] = {}
        self.client: Any | None = None  # an LLMClient whose counters the status line shows
        self.desc = desc
        self.file = file if file is not None else sys.stderr
        self.lines = enabled and not is_terminal(self.file)
        self.summary_every_s = summary_every_s
        self._started = self._last_summary = time.monotonic()
        self._closed = False
        self._bar = tqdm(total=0, desc=desc, unit="ep", disable=not enabled or self.lines, dynamic_ncols=True,
                         mininterval=0.5, file=self.file)

    def add_group(self, name: str, episodes_to_do: int) -> None:
        """A group joins with the episodes it still has to play (finished ones from earlier runs don't count)."""
        self.groups[name] = _Group(episodes_to_do)
        self._bar.total = sum(group.total for group in self.groups.values())
        self._refresh_status()

    def episode_finished(self, name: str, failed: bool = False) -> None:
        """Count one episode of group ``name`` as finished (or failed)."""
        group = self.groups[name]
        group.done += 1
        group.failed += int(failed)
        # The bar redraws at most every mininterval (and the ticker every second): forcing a redraw per episode
        # wrote to the terminal hundreds of times a second on short episodes.
        self._refresh_status(redraw=False)
        self._bar.update(1)
        if self.lines:
            done = sum(g.done for g in self.groups.values())
            total = sum(g.total for g in self.groups.values())
            self._print(f"{self.desc} {done}/{total}: {name} episode {group.done}/{group.total} "
                        f"{'failed' if failed else 'done'}")
            self._summary_if_due()

    def summary(self) -> str:
        """``done/total episodes`` and the failed ones."""
        done = sum(group.done for group in self.groups.values())
        failed = sum(group.failed for group in self.groups.values())
        total = sum(group.total for group in self.groups.values())
        return f"{done}/{total} episodes" + (f", {failed} failed" if failed else "")

    def status_line(self) -> str:
        """The summary with its elapsed time, rate, time left and the attached client's counters."""
        elapsed = time.monotonic() - self._started
        done = sum(group.done for group in self.groups.values())
        left = sum(group.total for group in self.groups.values()) - done
        parts = [self.summary(), f"{_duration(elapsed)} elapsed"]
        if done and left:
            parts.append(f"about {_duration(elapsed / done * left)} left")
        client = self.client
        if client is not None:  # in_flight and retries are LLMClient's; a custom backend may lack them
            parts.append(f"LLM requests in flight {getattr(client, 'in_flight', '?')}, cache hits "
                         f"{client.usage.cached_calls}, retries {sum(getattr(client, 'retries', {}).values())}")
        return f"{self.desc}: " + ", ".join(parts)

    def _print(self, line: str) -> None:
        print(line, file=self.file, flush=True)

    def _summary_if_due(self) -> None:
        if time.monotonic() - self._last_summary >= self.summary_every_s:
            self._last_summary = time.monotonic()
            self._print(self.status_line())

    def _refresh_status(self, redraw: bool = True) -> None:
        if self._bar.disable:
            return
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
        if redraw:
            self._bar.refresh()

    @contextlib.asynccontextmanager
    async def watching(self, client: Any | None, interval_s: float = 1.0) -> AsyncIterator[RunProgress]:
        """Show ``client``'s requests in flight, cache hits and retries, refreshed every ``interval_s``."""
        self.client = client

        async def tick() -> None:
            while True:
                await asyncio.sleep(interval_s)
                self._refresh_status()
                if self.lines:  # a long episode still gets its summary lines
                    self._summary_if_due()

        shown = not self._bar.disable or self.lines
        ticker = asyncio.create_task(tick()) if client is not None and shown else None
        try:
            yield self
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            self._refresh_status()

    def close(self) -> None:
        """End the display (off a terminal: with a last summary line)."""
        if self.lines and self.groups and not self._closed:
            self._print(self.status_line())
        self._closed = True
        self._bar.close()


def is_terminal(file: TextIO) -> bool:
    """Whether ``file`` is a terminal (progress bars redraw there; elsewhere they would fill a log with redraws)."""
    try:
        return file.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
