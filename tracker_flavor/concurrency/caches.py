"""Bounded, thread-safe caches for a long-lived process that runs many pipelines."""

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

CACHE_SIZE = 1024
"""Entries each cache keeps: far more than the pipeline runs one process works on at once."""


class BoundedCache(Generic[K, V]):
    """A thread-safe mapping that forgets its least recently used entries beyond `size`."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """Return the value of `key`, None if it is not (or no longer) cached."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def pop(self, key: K) -> V | None:
        """Forget `key`; return its value, None if it was not cached."""
        with self._lock:
            return self._items.pop(key, None)

    def put_new(self, key: K, value: V) -> bool:
        """Cache `value` under `key` unless it is cached; tell whether it was not."""
        with self._lock:
            if key in self._items:
                return False
            self._store(key, value)
            return True

    def put(self, key: K, value: V) -> None:
        """Cache `value` under `key`, forgetting the oldest entry when full."""
        with self._lock:
            self._store(key, value)

    def _store(self, key: K, value: V) -> None:
        """Cache `value` under `key` as the most recent entry, within the size (lock held)."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class Once:
    """Remembers which one-time events (warnings, mostly) already happened in the process."""

    def __init__(self) -> None:
        self._seen: BoundedCache[tuple[Hashable, ...], bool] = BoundedCache()

    def first(self, *event: Hashable) -> bool:
        """Tell whether `event` has not happened yet (and record that it now has)."""
        return self._seen.put_new(event, True)
