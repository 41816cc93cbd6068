"""A sliding-window rate limit: at most `limit` events per `window` seconds for each key.

Pure apart from the clock the caller passes in; one lock guards the whole table, because the
gateway serves calls from many threads. Keys with no event inside the window are forgotten, so
the table stays as small as the set of recent callers.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Hashable

from cairn.core.errors import RateLimited


class SlidingWindow:
    """Admit at most `limit` events per key in any `window` seconds; `limit` 0 admits all."""

    def __init__(self, limit: int, window: float, what: str) -> None:
        self.limit = limit
        self.window = window
        self.what = what  # how errors name the events ("free calls")
        self._events: dict[Hashable, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable, now: float, *, who: str) -> None:
        """Count one event for `key` at `now`, or raise `RateLimited` naming when to retry."""
        if self.limit <= 0:
            return
        with self._lock:
            times = self._events.setdefault(key, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                retry = times[0] + self.window - now
                raise RateLimited(
                    f"{who} made {len(times)} {self.what} in the last {self.window:.0f} s; the "
                    f"limit is {self.limit}: retry in {max(retry, 0.1):.0f} s, or use a priced "
                    "model with a prepaid balance"
                )
            times.append(now)
            if len(self._events) > 4 * self.limit + 1024:  # forget callers gone quiet
                for stale in [
                    k for k, t in self._events.items() if not t or t[-1] <= now - self.window
                ]:
                    del self._events[stale]
