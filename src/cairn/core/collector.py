"""Pausing Python's cyclic garbage collector around bulk work that builds no cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (reference counting still frees memory).

    Bulk steps (validating an upload, indexing its signatures, building a batch of 100,000
    leaves) allocate a great many short-lived containers while the node also holds millions of
    long-lived ones; each collection the allocations trigger would walk all of them again.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
