"""Garbage-collector settings while streams play: fewer and shorter pauses (see :func:`streaming_gc`)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["STREAMING_GC_THRESHOLDS", "streaming_gc"]

# Young generation collected every 20,000 allocations (not 700) and a full collection only after 100 (not 10)
# middle ones.
STREAMING_GC_THRESHOLDS = (20_000, 10, 100)
_open_blocks: list[tuple[int, int, int]] = []  # the thresholds before the first open block, per block


@contextlib.contextmanager
def streaming_gc() -> Iterator[None]:
    """Fewer and shorter garbage-collector pauses for the block (the streams of a run).

    A full collection stops every stream at once: at 64 streams its pauses of 100-140 ms, three per 12,800
    decisions, cost more throughput than all of our JSON. So what exists when the streams start (modules,
    configs, templates: 130k objects) is frozen out of the collector's scans (``gc.freeze``), and the
    thresholds are raised; a decision's own garbage is freed by reference counting anyway. Both are undone when
    the last open block ends (blocks may overlap: runs played side by side in one event loop).
    """
    if not _open_blocks:
        gc.freeze()
        _open_blocks.append(gc.get_threshold())
        gc.set_threshold(*STREAMING_GC_THRESHOLDS)
    else:
        _open_blocks.append(_open_blocks[0])
    try:
        yield
    finally:
        previous = _open_blocks.pop()
        if not _open_blocks:
            gc.set_threshold(*previous)
            gc.unfreeze()
