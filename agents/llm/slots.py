"""llama.cpp slot pinning: which server slot each session's next request should name (``id_slot``)."""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["SlotTable"]


class SlotTable:
    """Which server slot each session's next request should name.

    A session keeps its slot while the slot is free: llama.cpp keeps the last prompt of each slot, so the
    session's next prompt, which starts with the previous one, is read only from where they differ. When
    its slot is busy (or it has none yet), it takes a free slot, one that no session owns if there is one,
    else the one used longest ago. ``claim`` is called under the transport's concurrency limit; when every
    slot is busy (more requests in flight than slots) it returns ``None`` and the server picks.

    Args:
        count: the server's decoding slots (llama.cpp's ``--parallel``).

    Example:
        >>> table = SlotTable(2)
        >>> table.claim("a"), table.claim("b")
        (0, 1)
        >>> table.release(0); table.claim("a")
        0
    """

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"expected slot_count >= 1 or None, actually {count}")
        self.busy = [0] * count
        self.owner: list[Hashable | None] = [None] * count  # the session whose prompt each slot holds
        self.last_used = [0] * count
        self._clock = 0

    def claim(self, session: Hashable | None) -> int | None:
        """The slot ``session``'s request should name (now busy until :meth:`release`), or None: all are busy."""
        slot = self.owner.index(session) if session is not None and session in self.owner else None
        if slot is None or self.busy[slot]:
            free = [index for index, busy in enumerate(self.busy) if not busy]
            if not free:
                return None
            if slot is not None:
                self.owner[slot] = None  # a session's prompt lives on in one slot: the one it moves to
            slot = min(free, key=lambda index: (self.owner[index] is not None, self.last_used[index]))
            if session is not None:
                self.owner[slot] = session
        self._clock += 1
        self.busy[slot] += 1
        self.last_used[slot] = self._clock
        return slot

    def release(self, slot: int) -> None:
        """The request that claimed ``slot`` is answered."""
        self.busy[slot] -= 1
