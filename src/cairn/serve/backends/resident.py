"""Loaded models kept in memory under a budget, the least recently used evicted first.

A node serves more models than fit in memory at once; most requests go to a few of them. So a
backend loads a model on first use and keeps it while the total size of the loaded models
stays within the budget. Loading one that would push the total over evicts the least recently
used others; a model bigger than the whole budget is still loaded, alone, with a warning
(refusing it would make the model unservable on this node).

Loading happens under one lock: two requests for the same cold model load it once, and a
request for a loaded model waits while another model loads (loads are rare; requests are not
slowed otherwise). A request still using an evicted model keeps its reference, so it finishes;
the memory is freed when it does.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class ResidentModels(Generic[T]):
    """An LRU of loaded models whose sizes add up to at most `budget_bytes` (but see above)."""

    def __init__(
        self,
        budget_bytes: int,
        size_of: Callable[[T], int],  # a loaded model's bytes in memory
    ) -> None:
        self.budget_bytes = budget_bytes
        self.size_of = size_of
        self._models: OrderedDict[Hashable, tuple[T, int]] = OrderedDict()  # oldest use first
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], T], name: str) -> T:
        """The model under `key`, loaded with `load` if it is not in memory; now most recent."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key][0]
            model = load()
            size = self.size_of(model)
            if size > self.budget_bytes:
                log.warning(
                    "%s is %d bytes, over the whole memory budget of %d bytes: serving it alone",
                    name,
                    size,
                    self.budget_bytes,
                )
            while self._models and self.total_bytes() + size > self.budget_bytes:
                old_key, (_, old_size) = self._models.popitem(last=False)
                log.info("evicting %s (%d bytes) to load %s", old_key, old_size, name)
            self._models[key] = (model, size)
            return model

    def total_bytes(self) -> int:
        """The size of every model in memory."""
        return sum(size for _, size in self._models.values())

    def keys(self) -> list[Hashable]:
        """The keys of the models in memory, least recently used first."""
        with self._lock:
            return list(self._models)
